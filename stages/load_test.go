package stages

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path"
	"strings"
	"syscall"
	"testing"
	"testing/fstest"
	"time"
)

const targets = `linux/amd64:
  arch: x86_64
  triple: x86_64-serpent-linux-musl
linux/arm64:
  arch: aarch64
  triple: aarch64-serpent-linux-musl
`

const goodSum = "4b7add2f2076c1ba6978b2cfb15af529102ac41c01cc376700202247cc35f440"

func set(files map[string]string) fstest.MapFS {
	fsys := fstest.MapFS{"targets.yaml": {Data: []byte(targets)}}
	for name, body := range files {
		fsys[name] = &fstest.MapFile{Data: []byte(body)}
	}
	return fsys
}

const one = `from: image:busybox
runs-on: host
output: layer
platforms: [linux/arm64]
script: one.sh
`

func TestLoadValidSet(t *testing.T) {
	s, err := Load(set(map[string]string{
		"one.yaml": one, "one.sh": "true\n", "patches/fix.patch": "--- a\n",
		"two.yaml": `description: second
from: one
runs-on: target
output:
  rootfs: /out/
  packages: /pkgs/
platforms: [linux/arm64, aarch64]
sources:
  - name: greeting
    url: https://example.invalid/dl/greeting.txt?x=1
    sha256: ` + goodSum + `
  - name: llvm
    sha256: ` + goodSum[:63] + `0
    debian: {package: llvm-toolchain-14, version: "1:14.0.6-12", file: llvm-toolchain-14_14.0.6.orig.tar.xz}
    version: 14.0.6
files: [patches]
env: {CFLAGS: -O2}
run: echo hi
`}))
	if err != nil {
		t.Fatal(err)
	}
	two := s.Recipes["two"]
	if two.From != (From{Kind: FromStage, Ref: "one"}) || two.RunsOn != OnTarget || two.Output != (Output{Kind: Rootfs, Dir: "/out", Packages: "/pkgs"}) {
		t.Errorf("two: from %v, runs-on %v, output %v", two.From, two.RunsOn, two.Output)
	}
	if two.Sources[0].File != "greeting.txt" || two.Sources[1].File != "llvm-toolchain-14_14.0.6.orig.tar.xz" {
		t.Errorf("source file names: %q, %q", two.Sources[0].File, two.Sources[1].File)
	}
	// A script reads where each source is, and its version where the recipe gives one.
	if got := strings.Join(append(two.Sources[0].Env(), two.Sources[1].Env()...), " "); got != "SERPENT_SOURCE_GREETING=/sources/greeting.txt SERPENT_SOURCE_LLVM=/sources/llvm-toolchain-14_14.0.6.orig.tar.xz SERPENT_VERSION_LLVM=14.0.6" {
		t.Errorf("the sources' environment: %s", got)
	}
	if _, ok := two.Files["patches/fix.patch"]; !ok || len(s.Recipes["one"].Files) != 1 {
		t.Errorf("files given to the stages: two %v, one %v", two.Files, s.Recipes["one"].Files)
	}
	if got := s.Targets["linux/arm64"].Env(); strings.Join(got, " ") != "SERPENT_TARGET=linux/arm64 SERPENT_TARGET_ARCH=aarch64 SERPENT_TARGET_TRIPLE=aarch64-serpent-linux-musl" {
		t.Errorf("target env: %v", got)
	}
}

func TestLoadRejects(t *testing.T) {
	withOne := func(name, body string) map[string]string {
		return map[string]string{"one.yaml": one, "one.sh": "true", name: body}
	}
	tests := []struct {
		name  string
		files map[string]string
		want  string
	}{
		{"unknown field", withOne("two.yaml", "from: one\nruns-on: host\noutput: layer\nplatforms: [linux/arm64]\nrun: x\nbogus: 1\n"),
			"two.yaml:6: bogus: unknown field (known here: accelerate, annotate, base-target, cache, description, distribute, env, files, from, name, network, output, packages, platforms, run, runs-on, script, sources, tools)"},
		{"unknown source field", withOne("two.yaml", "from: one\nruns-on: host\noutput: layer\nplatforms: [linux/arm64]\nrun: x\nsources:\n  - name: a\n    sha: x\n"),
			"two.yaml:8: sources[0].sha: unknown field (known here: debian, file, license, name, sha256, url, version)"},
		{"a version a script would read as more than a word", withOne("two.yaml", "from: one\nruns-on: host\noutput: layer\nplatforms: [linux/arm64]\nrun: x\nsources:\n  - name: a\n    file: a.tar\n    sha256: "+goodSum+"\n    version: \"1.0; rm -rf /\"\n"),
			`two.yaml:10: sources[0].version: "1.0; rm -rf /" is not a version (a digit first, then letters, digits and . + ~ _ -, at most 64)`},
		{"two names one in the environment", withOne("two.yaml", "from: one\nruns-on: host\noutput: layer\nplatforms: [linux/arm64]\nrun: x\nsources:\n  - name: make-diff\n    file: a.tar\n    sha256: "+goodSum+"\n  - name: make.diff\n    file: b.tar\n    sha256: "+goodSum+"\n"),
			`two.yaml:10: sources[1].name: "make-diff" and "make.diff" are one name in a script's environment (SERPENT_SOURCE_MAKE_DIFF)`},
		{"unknown debian field", withOne("two.yaml", "from: one\nruns-on: host\noutput: layer\nplatforms: [linux/arm64]\nrun: x\nsources:\n  - name: a\n    debian: {package: a, release: b}\n"),
			"two.yaml:8: sources[0].debian.release: unknown field (known here: file, package, version)"},
		{"a mapping for a list", withOne("two.yaml", "from: one\nruns-on: host\noutput: layer\nplatforms: {linux: arm64}\nrun: x\n"),
			"two.yaml:4: platforms: want a list, got a mapping"},
		{"a list for a value", withOne("two.yaml", "from: [one]\nruns-on: host\noutput: layer\nplatforms: [linux/arm64]\nrun: x\n"),
			"two.yaml:1: from: want a single value, got a list"},
		{"a base for the host under an image", withOne("two.yaml", "from: image:busybox\nbase-target: host\nruns-on: host\noutput: layer\nplatforms: [linux/arm64]\nrun: x\n"),
			"two.yaml:2: base-target: host: only a base that is a stage is built for a target (from: STAGE)"},
		{"a base for the host under a target stage", withOne("two.yaml", "from: one\nbase-target: host\nruns-on: target\noutput: layer\nplatforms: [linux/arm64]\nrun: x\n"),
			"two.yaml:2: base-target: host: a base built for the host runs on the host (runs-on: host)"},
		{"a base for something else", withOne("two.yaml", "from: one\nbase-target: linux/arm64\nruns-on: host\noutput: layer\nplatforms: [linux/arm64]\nrun: x\n"),
			"two.yaml:2: base-target: \"linux/arm64\": the one value is host (the base stage as built for the host itself)"},
		{"host tools from a stage on the target", withOne("two.yaml", "from: one\nruns-on: target\noutput: {rootfs: /out, for: host}\nplatforms: [linux/arm64]\nrun: x\n"),
			"two.yaml:3: output: for: host: an image of host tools is made by a stage that runs on the host (runs-on: host)"},
		{"an output directory twice", withOne("two.yaml", "from: one\nruns-on: host\noutput: {rootfs: /out, rootfs: /other}\nplatforms: [linux/arm64]\nrun: x\n"),
			"two.yaml:3: output: rootfs: given twice"},
		{"packages of a stage that makes none", withOne("two.yaml", "from: packages:one\nruns-on: target\noutput: layer\nplatforms: [linux/arm64]\nrun: x\n"),
			"two.yaml:1: from: packages:one: stage one makes no packages (its output names no packages: DIR)"},
		{"packages of no stage", withOne("two.yaml", "from: \"packages:\"\nruns-on: target\noutput: layer\nplatforms: [linux/arm64]\nrun: x\n"),
			"two.yaml:1: from: packages:: want packages:STAGE, a stage of the set that makes packages"},
		{"packages inside the root", withOne("two.yaml", "from: one\nruns-on: host\noutput: {rootfs: /out, packages: /out/pkgs}\nplatforms: [linux/arm64]\nrun: x\n"),
			"two.yaml:3: output: packages: /out/pkgs: want a directory apart from rootfs: /out (the packages are not files of the root)"},
		{"a root inside the packages", withOne("two.yaml", "from: one\nruns-on: host\noutput: {rootfs: /pkgs/out, packages: /pkgs}\nplatforms: [linux/arm64]\nrun: x\n"),
			"two.yaml:3: output: packages: /pkgs: want a directory apart from rootfs: /pkgs/out"},
		{"packages of host tools", withOne("two.yaml", "from: one\nruns-on: host\noutput: {rootfs: /out, packages: /pkgs, for: host}\nplatforms: [linux/arm64]\nrun: x\n"),
			"two.yaml:3: output: packages: an image of host tools has no packages (for: host)"},
		{"packages without a root", withOne("two.yaml", "from: one\nruns-on: host\noutput: {packages: /pkgs}\nplatforms: [linux/arm64]\nrun: x\n"),
			"two.yaml:3: output: want layer, or rootfs: DIR"},
		{"relative packages", withOne("two.yaml", "from: one\nruns-on: host\noutput: {rootfs: /out, packages: pkgs}\nplatforms: [linux/arm64]\nrun: x\n"),
			`two.yaml:3: output: packages: "pkgs": want an absolute directory other than /`},
		{"an output for nothing known", withOne("two.yaml", "from: one\nruns-on: host\noutput: {rootfs: /out, for: moon}\nplatforms: [linux/arm64]\nrun: x\n"),
			`two.yaml:3: output: for: "moon": want target (the default: an image of the target's root) or host (an image of tools the host runs)`},
		{"accelerate on the host", withOne("two.yaml", "from: one\nruns-on: host\noutput: layer\nplatforms: [linux/arm64]\nrun: x\naccelerate: true\n"),
			"two.yaml:6: accelerate: only a stage that runs on the target (runs-on: target) is run emulated, and so can be accelerated"},
		{"a word for true or false", withOne("two.yaml", "from: one\nruns-on: host\noutput: layer\nplatforms: [linux/arm64]\nrun: x\nnetwork: yes\n"),
			`two.yaml:6: network: want true or false, got "yes"`},
		{"a list for an env value", withOne("two.yaml", "from: one\nruns-on: host\noutput: layer\nplatforms: [linux/arm64]\nrun: x\nenv:\n  A: [1]\n"),
			"two.yaml:7: env.A: want a single value, got a list"},
		{"missing checksum", withOne("two.yaml", "from: one\nruns-on: host\noutput: layer\nplatforms: [linux/arm64]\nrun: x\nsources:\n  - name: a\n    url: https://e.invalid/a.tar\n"),
			"two.yaml:7: sources[0].sha256: missing"},
		{"bad checksum", withOne("two.yaml", "from: one\nruns-on: host\noutput: layer\nplatforms: [linux/arm64]\nrun: x\nsources:\n  - name: a\n    url: https://e.invalid/a.tar\n    sha256: ABC\n"),
			"two.yaml:9: sources[0].sha256: \"ABC\" is not 64 lower-case hex digits"},
		{"incomplete debian origin", withOne("two.yaml", "from: one\nruns-on: host\noutput: layer\nplatforms: [linux/arm64]\nrun: x\nsources:\n  - name: a\n    url: https://e.invalid/a.tar\n    sha256: "+goodSum+"\n    debian: {package: a, file: a.tar}\n"),
			"sources[0].debian: needs package, version and file"},
		{"debian file out of the download directory", withOne("two.yaml", "from: one\nruns-on: host\noutput: layer\nplatforms: [linux/arm64]\nrun: x\nsources:\n  - name: a\n    file: a.tar\n    sha256: "+goodSum+"\n    debian: {package: hello, version: 1.0-1, file: ../../etc/passwd}\n"),
			"sources[0].debian.file: \"../../etc/passwd\" is not a plain file name"},
		{"debian package that is an option", withOne("two.yaml", "from: one\nruns-on: host\noutput: layer\nplatforms: [linux/arm64]\nrun: x\nsources:\n  - name: a\n    sha256: "+goodSum+"\n    debian: {package: --help, version: 1.0-1, file: a.tar}\n"),
			"sources[0].debian.package: \"--help\" is not a Debian package name"},
		{"debian version with a space", withOne("two.yaml", "from: one\nruns-on: host\noutput: layer\nplatforms: [linux/arm64]\nrun: x\nsources:\n  - name: a\n    sha256: "+goodSum+"\n    debian: {package: hello, version: \"1.0 -o Dir=/\", file: a.tar}\n"),
			"sources[0].debian.version: \"1.0 -o Dir=/\" is not a Debian version"},
		{"file name with a newline", withOne("two.yaml", "from: one\nruns-on: host\noutput: layer\nplatforms: [linux/arm64]\nrun: x\nsources:\n  - name: a\n    file: \"a\\nb\"\n    url: https://e.invalid/a.tar\n    sha256: "+goodSum+"\n"),
			"sources[0].file: \"a\\nb\" is not a plain file name"},
		{"no origin and no file", withOne("two.yaml", "from: one\nruns-on: host\noutput: layer\nplatforms: [linux/arm64]\nrun: x\nsources:\n  - name: a\n    sha256: "+goodSum+"\n"),
			"sources[0].file: missing"},
		{"from names no stage", withOne("two.yaml", "from: zero\nruns-on: host\noutput: layer\nplatforms: [linux/arm64]\nrun: x\n"),
			`two.yaml:1: from: no stage is named "zero" (stages: one, two; an image is written image:REF)`},
		{"from scratch", withOne("two.yaml", "from: scratch\nruns-on: host\noutput: layer\nplatforms: [linux/arm64]\nrun: x\n"),
			"two.yaml:1: from: a stage runs its script inside its base, and scratch has no shell"},
		{"cycle", map[string]string{
			"a.yaml": "from: b\nruns-on: host\noutput: layer\nplatforms: [linux/arm64]\nrun: x\n",
			"b.yaml": "from: c\nruns-on: host\noutput: layer\nplatforms: [linux/arm64]\nrun: x\n",
			"c.yaml": "from: a\nruns-on: host\noutput: layer\nplatforms: [linux/arm64]\nrun: x\n"},
			"a.yaml:1: from: cycle: a → b → c → a"},
		{"missing script", map[string]string{"one.yaml": one}, "one.yaml:5: script: one.sh does not exist beside the recipe"},
		{"script and run", withOne("two.yaml", "from: one\nruns-on: host\noutput: layer\nplatforms: [linux/arm64]\nrun: x\nscript: one.sh\n"),
			"two.yaml:6: script: give script or run, not both"},
		{"unsupported platform", withOne("two.yaml", "from: one\nruns-on: host\noutput: layer\nplatforms: [linux/arm64, linux/riscv64]\nrun: x\n"),
			"two.yaml:4: platforms[1]: linux/riscv64 has no row in targets.yaml"},
		{"bad runs-on", withOne("two.yaml", "from: one\nruns-on: elsewhere\noutput: layer\nplatforms: [linux/arm64]\nrun: x\n"),
			`two.yaml:2: runs-on: "elsewhere": want host or target`},
		{"bad output", withOne("two.yaml", "from: one\nruns-on: host\noutput:\n  rootfs: relative\nplatforms: [linux/arm64]\nrun: x\n"),
			`two.yaml:3: output: rootfs: "relative": want an absolute directory`},
		{"name differs from file", withOne("two.yaml", "name: three\nfrom: one\nruns-on: host\noutput: layer\nplatforms: [linux/arm64]\nrun: x\n"),
			`two.yaml:1: name: "three" differs from the file name "two"`},
		{"missing files entry", withOne("two.yaml", "from: one\nruns-on: host\noutput: layer\nplatforms: [linux/arm64]\nrun: x\nfiles: [patches]\n"),
			"two.yaml:6: files[0]: patches: file does not exist"},
		{"two bad env names", withOne("two.yaml", "from: one\nruns-on: host\noutput: layer\nplatforms: [linux/arm64]\nrun: x\nenv: {2B: x, 1A: y}\n"),
			`two.yaml:6: env: "1A" is not a variable name`},
		{"relative cache", withOne("two.yaml", "from: one\nruns-on: host\noutput: layer\nplatforms: [linux/arm64]\nrun: x\ncache: [var/cache]\n"),
			`two.yaml:6: cache[0]: "var/cache": want an absolute path in the stage's container`},
		{"cache over a runner mount", withOne("two.yaml", "from: one\nruns-on: host\noutput: layer\nplatforms: [linux/arm64]\nrun: x\ncache: [/ccache, /sources/x]\n"),
			`two.yaml:6: cache[1]: "/sources/x": overlaps /sources, which the runner mounts itself`},
		{"cache inside a cache", withOne("two.yaml", "from: one\nruns-on: host\noutput: layer\nplatforms: [linux/arm64]\nrun: x\ncache: [/var/cache, /var/cache/ccache]\n"),
			`two.yaml:6: cache[1]: "/var/cache/ccache": overlaps the cache /var/cache`},
		{"cache not clean", withOne("two.yaml", "from: one\nruns-on: host\noutput: layer\nplatforms: [linux/arm64]\nrun: x\ncache: [/var/../etc]\n"),
			`two.yaml:6: cache[0]: "/var/../etc": want it written plainly (/etc)`},
		{"cache of the root", withOne("two.yaml", "from: one\nruns-on: host\noutput: layer\nplatforms: [linux/arm64]\nrun: x\ncache: [/]\n"),
			`two.yaml:6: cache[0]: "/": the root cannot be a cache`},
		{"host packages with a script", withOne("seed.yaml", "from: host-packages\nruns-on: host\nplatforms: [linux/arm64]\npackages: [clang-14]\nrun: x\n"),
			`seed.yaml:5: run: a from: host-packages stage has no run: it is its packages`},
		{"host packages on the target", withOne("seed.yaml", "from: host-packages\nruns-on: target\nplatforms: [linux/arm64]\npackages: [clang-14]\n"),
			`seed.yaml:2: runs-on: a from: host-packages stage is made on the host: runs-on: host`},
		{"host packages without packages", withOne("seed.yaml", "from: host-packages\nruns-on: host\nplatforms: [linux/arm64]\n"),
			`seed.yaml:1: packages: missing: list the packages the image holds`},
		{"a bad package name", withOne("seed.yaml", "from: host-packages\nruns-on: host\nplatforms: [linux/arm64]\npackages: [clang-14, 'x; rm -rf /']\n"),
			`seed.yaml:4: packages[1]: "x; rm -rf /" is not a package name`},
		{"a package twice", withOne("seed.yaml", "from: host-packages\nruns-on: host\nplatforms: [linux/arm64]\npackages: [make, make]\n"),
			`seed.yaml:4: packages[1]: "make" is listed twice`},
		{"packages on a script stage", withOne("two.yaml", "from: one\nruns-on: host\noutput: layer\nplatforms: [linux/arm64]\nrun: x\npackages: [make]\n"),
			`two.yaml:6: packages: only a from: host-packages stage lists packages`},
		{"no targets", nil, "targets.yaml: missing"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			fsys := set(tt.files)
			if tt.files == nil {
				delete(fsys, "targets.yaml")
			}
			_, err := Load(fsys)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("Load error:\n%v\nwant one containing:\n%s", err, tt.want)
			}
			var se *Error
			if !errors.As(err, &se) {
				t.Errorf("%v: not a *stages.Error", err)
			}
		})
	}
	// The cause stays inside: errors.Is sees through the position.
	_, err := Load(set(withOne("two.yaml", "from: one\nruns-on: host\noutput: layer\nplatforms: [linux/arm64]\nrun: x\nfiles: [patches]\n")))
	if !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("a missing files entry: %v, want it to be fs.ErrNotExist", err)
	}
}

func FuzzParseFile(f *testing.F) {
	for _, name := range []string{"host-tools.yaml", "target-root.yaml", "target-native.yaml"} {
		b, err := os.ReadFile("testdata/busybox/" + name)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	f.Add([]byte(one))
	f.Add([]byte("output:\n  rootfs:\n    - x\nsources: [{name: a, debian: {}}]\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		r, err := ParseFile("fuzz.yaml", data)
		if err == nil && (r.Name == "" || len(r.Platforms) == 0 || (r.Script == "" && r.Run == "")) {
			t.Fatalf("accepted an incomplete recipe: %+v", r)
		}
	})
}

func TestEmbeddedSetLoads(t *testing.T) {
	s, err := Load(Embedded())
	if err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{"stage1", "stage2", "stage2.5", "stage3"} {
		r, ok := s.Recipes[name]
		if !ok {
			t.Fatalf("the embedded set lacks %s (has %v)", name, s.Names())
		}
		for _, src := range r.Sources {
			if src.URL == "" && src.Debian == nil {
				t.Errorf("%s: source %s has no origin", name, src.Name)
			}
		}
	}
}

func TestLoadProfile(t *testing.T) {
	fsys := set(map[string]string{
		"one.yaml": one, "one.sh": "true\n",
		"two.yaml": "from: one\nruns-on: host\noutput: layer\nplatforms: [linux/arm64]\nrun: echo small\n",
		// The profile replaces two, adds three, and maps the image busybox.
		"profiles/big/profile.yaml": "description: a bigger one\nimages: {busybox: busybox-big}\n",
		"profiles/big/two.yaml":     "from: one\nruns-on: host\noutput: layer\nplatforms: [linux/arm64]\nscript: two.sh\nfiles: [one.sh]\n",
		"profiles/big/two.sh":       "echo big\n",
		"profiles/big/three.yaml":   "from: two\nruns-on: host\noutput: layer\nplatforms: [linux/arm64]\nrun: echo three\n",
		"profiles/nofile/x.yaml":    "not a profile: it has no profile.yaml\n",
	})
	if got := strings.Join(Profiles(fsys), " "); got != "small big" {
		t.Errorf("Profiles: %s, want small big", got)
	}
	small, err := LoadProfile(fsys, "small")
	if err != nil {
		t.Fatal(err)
	}
	if got := strings.Join(small.Names(), " "); got != "one two" || small.Recipes["two"].Run != "echo small" || small.Images != nil {
		t.Errorf("small: %s, two runs %q, images %v", got, small.Recipes["two"].Run, small.Images)
	}
	big, err := LoadProfile(fsys, "big")
	if err != nil {
		t.Fatal(err)
	}
	two := big.Recipes["two"]
	if got := strings.Join(big.Names(), " "); got != "one three two" || big.Profile != "big" {
		t.Errorf("big: stages %s, profile %q", got, big.Profile)
	}
	if two.File != "profiles/big/two.yaml" || string(two.Files["profiles/big/two.sh"]) != "echo big\n" || two.Files["one.sh"] == nil {
		t.Errorf("big's two: file %s, files %v", two.File, two.Files)
	}
	if big.Images["busybox"] != "busybox-big" {
		t.Errorf("big's images: %v", big.Images)
	}
	if _, err := LoadProfile(fsys, "nofile"); err == nil || !strings.Contains(err.Error(), `profile "nofile": no such profile (profiles: small, big)`) {
		t.Errorf("a directory without profile.yaml: %v", err)
	}
	fsys["profiles/big/profile.yaml"] = &fstest.MapFile{Data: []byte("images: {busybox: \"\"}\n")}
	if _, err := LoadProfile(fsys, "big"); err == nil || !strings.Contains(err.Error(), "profiles/big/profile.yaml:1: images.busybox: want an image name") {
		t.Errorf("an empty image mapping: %v", err)
	}
	// A profile leaves out a stage of the set: gone from it, kept in the set's own.
	fsys["profiles/big/profile.yaml"] = &fstest.MapFile{Data: []byte("without: [two]\n")}
	delete(fsys, "profiles/big/two.yaml")
	delete(fsys, "profiles/big/three.yaml")
	if big, err = LoadProfile(fsys, "big"); err != nil || strings.Join(big.Names(), " ") != "one" {
		t.Errorf("big without two: %v, %v", big, err)
	}
	fsys["profiles/big/profile.yaml"] = &fstest.MapFile{Data: []byte("without: [nothing]\n")}
	if _, err := LoadProfile(fsys, "big"); err == nil || !strings.Contains(err.Error(), `profiles/big/profile.yaml: without: no stage is named "nothing"`) {
		t.Errorf("without a stage the set lacks: %v", err)
	}
}

func TestEmbeddedProfilesLoad(t *testing.T) {
	profiles := Profiles(Embedded())
	if strings.Join(profiles, " ") != "small full" {
		t.Fatalf("embedded profiles: %v", profiles)
	}
	for _, p := range profiles {
		t.Run(p, func(t *testing.T) {
			s, err := LoadProfile(Embedded(), p)
			if err != nil {
				t.Fatal(err)
			}
			for _, name := range s.Names() {
				for _, src := range s.Recipes[name].Sources {
					if src.URL == "" && src.Debian == nil {
						t.Errorf("%s: source %s has no origin", name, src.Name)
					}
				}
			}
		})
	}
	full, err := LoadProfile(Embedded(), "full")
	if err != nil {
		t.Fatal(err)
	}
	llvm, ok := full.Recipes["llvm"]
	if !ok || llvm.From.Ref != "stage1" || len(llvm.Cache) == 0 || full.Images["seed"] != "seed-full" {
		t.Errorf("the full profile's llvm stage: %+v; images %v", llvm, full.Images)
	}
}

// TestSymlinksOutOfTheSetAreRefused: a recipe set is read as a root, so a script or a files:
// entry that is a symlink to a host file is an error naming it, and its content is never read.
func TestSymlinksOutOfTheSetAreRefused(t *testing.T) {
	host := t.TempDir()
	secret := host + "/secret"
	if err := os.WriteFile(secret, []byte("host only"), 0o600); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name  string
		build func(dir string) error
		want  string
	}{
		{"a script", func(dir string) error { return os.Symlink(secret, dir+"/one.sh") },
			"one.yaml:5: script: one.sh: a symlink that leads out of the recipe set: refused"},
		{"a file", func(dir string) error {
			if err := os.WriteFile(dir+"/one.sh", []byte("true\n"), 0o644); err != nil {
				return err
			}
			if err := os.Mkdir(dir+"/patches", 0o755); err != nil {
				return err
			}
			return os.Symlink(secret, dir+"/patches/evil.patch")
		}, "one.yaml:6: files[0]: patches/evil.patch: a symlink that leads out of the recipe set: refused"},
		{"a directory", func(dir string) error {
			if err := os.WriteFile(dir+"/one.sh", []byte("true\n"), 0o644); err != nil {
				return err
			}
			return os.Symlink(host, dir+"/patches")
		}, "one.yaml:6: files[0]: patches: a symlink that leads out of the recipe set: refused"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			for name, body := range map[string]string{"targets.yaml": targets, "one.yaml": one + "files: [patches]\n"} {
				if err := os.WriteFile(dir+"/"+name, []byte(body), 0o644); err != nil {
					t.Fatal(err)
				}
			}
			if tc.name == "a script" {
				if err := os.WriteFile(dir+"/one.yaml", []byte(one), 0o644); err != nil {
					t.Fatal(err)
				}
			}
			if err := tc.build(dir); err != nil {
				t.Fatal(err)
			}
			root, err := os.OpenRoot(dir)
			if err != nil {
				t.Fatal(err)
			}
			defer root.Close()
			_, err = Load(root.FS())
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("Load: %v\nwant: %s", err, tc.want)
			}
		})
	}
}

// TestSetFilesAreBounded: a recipe set is read into memory whole, so what is not a regular
// file (a FIFO would hang the load) or is too large is an error naming it, before any of it
// is read.
func TestSetFilesAreBounded(t *testing.T) {
	for _, tc := range []struct {
		name  string
		build func(t *testing.T, dir string)
		want  string
	}{
		{"a FIFO as the script", func(t *testing.T, dir string) {
			if err := syscall.Mkfifo(dir+"/one.sh", 0o644); err != nil {
				t.Fatal(err)
			}
		}, "one.yaml:5: script: one.sh: a fifo, not a regular file"},
		{"a FIFO as a recipe", func(t *testing.T, dir string) {
			if err := syscall.Mkfifo(dir+"/two.yaml", 0o644); err != nil {
				t.Fatal(err)
			}
		}, "two.yaml: a fifo, not a regular file"},
		{"a FIFO as the target table", func(t *testing.T, dir string) {
			os.Remove(dir + "/targets.yaml")
			if err := syscall.Mkfifo(dir+"/targets.yaml", 0o644); err != nil {
				t.Fatal(err)
			}
		}, "targets.yaml: a fifo, not a regular file"},
		{"a patch too large", func(t *testing.T, dir string) {
			mkfile(t, dir+"/patches/big.patch", "")
			if err := os.Truncate(dir+"/patches/big.patch", maxSetFileBytes+1); err != nil { // sparse: costs nothing
				t.Fatal(err)
			}
		}, "one.yaml:6: files[0]: patches/big.patch: 16777217 bytes, more than the 16777216 a recipe set's file may have"},
		{"too many files", func(t *testing.T, dir string) {
			for i := range maxTreeFiles {
				mkfile(t, fmt.Sprintf("%s/patches/%04d.patch", dir, i), "x")
			}
		}, "one.yaml:6: files[0]: patches: more than the 4096 files or 67108864 bytes a recipe's files may have"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			mkfile(t, dir+"/targets.yaml", targets)
			mkfile(t, dir+"/one.yaml", one+"files: [patches]\n")
			mkfile(t, dir+"/patches/ok.patch", "--- a\n")
			if tc.name != "a FIFO as the script" {
				mkfile(t, dir+"/one.sh", "true\n")
			}
			tc.build(t, dir)
			root, err := os.OpenRoot(dir)
			if err != nil {
				t.Fatal(err)
			}
			defer root.Close()
			done := make(chan error, 1)
			go func() { _, err := Load(root.FS()); done <- err }()
			select {
			case err := <-done:
				if err == nil || !strings.Contains(err.Error(), tc.want) {
					t.Fatalf("Load: %v\nwant: %s", err, tc.want)
				}
			case <-time.After(10 * time.Second):
				t.Fatal("Load hung")
			}
		})
	}
}

func mkfile(t *testing.T, p, body string) {
	t.Helper()
	if err := os.MkdirAll(path.Dir(p), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(p, []byte(body), 0o644); err != nil {
		t.Fatal(err)
	}
}
