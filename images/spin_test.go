package images

import (
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/serpent-os/serpent-oci/builder/cachekey"
	"github.com/serpent-os/serpent-oci/oci/testenv"
)

func TestLoadErrorsNameFileLineAndField(t *testing.T) {
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "motd"), []byte("hi\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	good := "from: stage3\nplatforms: [linux/arm64]\nsteps:\n  - copy: motd\n    to: /etc/motd\n"
	for _, tc := range []struct {
		name, yaml, want string
	}{
		{"unknown step kind", "from: stage3\nsteps:\n  - copy: motd\n    to: /etc/motd\n  - install: vim\n",
			"spin.yaml:5: steps[1]: unknown step kind (keys: install); want one of: cmd, copy, entrypoint, env, labels, packages, run, workdir"},
		{"missing file", "from: stage3\nsteps:\n  - copy: nothere\n    to: /etc/x\n",
			"spin.yaml:3: steps[0].copy: nothere: no such file or directory beside the definition"},
		{"copy from outside", "from: stage3\nsteps:\n  - copy: ../etc/passwd\n    to: /etc/x\n",
			`spin.yaml:3: steps[0].copy: "../etc/passwd": want a path beside the definition, not outside it`},
		{"relative destination", "from: stage3\nsteps:\n  - copy: motd\n    to: etc/motd\n",
			`spin.yaml:4: steps[0].to: "etc/motd": want an absolute path in the image`},
		{"bad mode", "from: stage3\nsteps:\n  - copy: motd\n    to: /etc/motd\n    mode: rw-r--r--\n",
			`spin.yaml:5: steps[0].mode: "rw-r--r--": want an octal mode such as "0644"`},
		{"bad owner", "from: stage3\nsteps:\n  - copy: motd\n    to: /etc/motd\n    owner: root\n",
			`spin.yaml:5: steps[0].owner: "root": want UID:GID, numeric`},
		{"field of another kind", "from: stage3\nsteps:\n  - run: true\n    to: /x\n",
			"spin.yaml:4: steps[0].to: not a field of a run step (it has: network)"},
		{"two kinds", "from: stage3\nsteps:\n  - run: true\n    env: {A: b}\n",
			"spin.yaml:4: steps[0]: has both run and env: one kind a step"},
		{"two kinds, the other way round", "from: stage3\nsteps:\n  - env: {A: b}\n    run: true\n",
			"spin.yaml:4: steps[0]: has both env and run: one kind a step"},
		{"three kinds", "from: stage3\nsteps:\n  - cmd: [x]\n    workdir: /w\n    labels: {a: b}\n",
			"spin.yaml:4: steps[0]: has both cmd and workdir: one kind a step"},
		{"two fields of other kinds", "from: stage3\nsteps:\n  - run: true\n    mode: \"0644\"\n    to: /x\n",
			"spin.yaml:4: steps[0].mode: not a field of a run step"},
		{"a key twice", "from: stage3\nsteps:\n  - run: true\n    run: false\n",
			"spin.yaml:4: steps[0].run: given twice (first on line 3)"},
		{"no packages", "from: stage3\nsteps:\n  - packages: []\n", "spin.yaml:3: steps[0].packages: want at least one package name"},
		{"a bad package name", "from: stage3\nsteps:\n  - packages: [make, ../etc]\n", `spin.yaml:3: steps[0].packages[1]: package name "../etc": want lower-case letters`},
		{"a package twice", "from: stage3\nsteps:\n  - packages: [make, make]\n", `spin.yaml:3: steps[0].packages[1]: "make" is named twice`},
		{"an empty repository", "from: stage3\nsteps:\n  - packages: [make]\n    from: \" \"\n", "spin.yaml:4: steps[0].from: empty: name the repository"},
		{"no from", "steps:\n  - run: true\n", "spin.yaml:1: from: missing"},
		{"no steps", "from: stage3\n", "spin.yaml:1: steps: missing: a spin needs at least one step"},
		{"unknown top-level field", "from: stage3\nfrum: x\nsteps:\n  - run: true\n", "spin.yaml:2: frum: unknown field (known here: description, from, name, platforms, steps)"},
		{"bad platform", "from: stage3\nplatforms: [linux/z80]\nsteps:\n  - run: true\n", "spin.yaml:2: platforms[0]:"},
		{"bad env name", "from: stage3\nsteps:\n  - env: {1A: b}\n", "spin.yaml:3: steps[0].env.1A: not a valid variable name"},
		{"empty script", "from: stage3\nsteps:\n  - run: \"  \"\n", "spin.yaml:3: steps[0].run: empty script"},
		{"relative workdir", "from: stage3\nsteps:\n  - workdir: work\n", `spin.yaml:3: steps[0].workdir: "work": want an absolute path`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Parse("spin.yaml", dir, []byte(tc.yaml))
			if err == nil || !strings.HasPrefix(err.Error(), tc.want) {
				t.Errorf("error:\n  %v\nwant it to start with:\n  %s", err, tc.want)
			}
		})
	}
	s, err := Parse("spin.yaml", dir, []byte(good))
	if err != nil {
		t.Fatal(err)
	}
	if s.Name != "spin" || s.From != "stage3" || len(s.Steps) != 1 || s.Steps[0].Kind != Copy || s.Steps[0].Dst != "/etc/motd" {
		t.Errorf("parsed %+v", s)
	}
}

func TestExamplesLoad(t *testing.T) {
	files, _ := filepath.Glob("examples/*.yaml")
	if len(files) < 2 {
		t.Fatalf("examples: %v", files)
	}
	for _, f := range files {
		if _, err := Load(f); err != nil {
			t.Errorf("%v", err)
		}
	}
}

func TestStepKeysFollowInputs(t *testing.T) {
	dir := t.TempDir()
	write := func(content string) {
		if err := os.WriteFile(filepath.Join(dir, "f"), []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	def := []byte("from: b\nsteps:\n  - copy: f\n    to: /f\n  - run: echo x # comment in the script\n")
	write("one")
	a, err := Parse("s.yaml", dir, def)
	if err != nil {
		t.Fatal(err)
	}
	b, err := Parse("s.yaml", dir, def)
	if err != nil {
		t.Fatal(err)
	}
	write("two")
	c, err := Parse("s.yaml", dir, def)
	if err != nil {
		t.Fatal(err)
	}
	if cachekey.Of(meaningOf(&a.Steps[0])) != cachekey.Of(meaningOf(&b.Steps[0])) {
		t.Error("the same copy step has two keys")
	}
	if cachekey.Of(meaningOf(&a.Steps[0])) == cachekey.Of(meaningOf(&c.Steps[0])) {
		t.Error("a copy step's key ignores the content of the file it copies")
	}
	if err := os.Chmod(filepath.Join(dir, "f"), 0o600); err != nil {
		t.Fatal(err)
	}
	d, _ := Parse("s.yaml", dir, def)
	if cachekey.Of(meaningOf(&c.Steps[0])) == cachekey.Of(meaningOf(&d.Steps[0])) {
		t.Error("a copy step's key ignores the mode of the file it copies")
	}
}

func TestAliasAmplificationIsRefused(t *testing.T) {
	var b strings.Builder
	b.WriteString("from: stage3\nsteps:\n  - env: {BIG: &big \"" + strings.Repeat("x", 512<<10) + "\"}\n  - cmd: [")
	for i := range 990 {
		if i > 0 {
			b.WriteString(", ")
		}
		b.WriteString("*big")
	}
	b.WriteString("]\n")
	_, err := Parse("spin.yaml", t.TempDir(), []byte(b.String()))
	if err == nil || !strings.Contains(err.Error(), "spin.yaml:4: aliases expand the document past") {
		t.Fatalf("Parse of an amplifying spin: %.300v", err)
	}
}

// TestCopyReadsTheSpinDirectoryAsARoot: a copy step cannot read a host file through a symlink
// in the spin's directory; symlinks that stay inside it are fine, and copied as symlinks.
func TestCopyReadsTheSpinDirectoryAsARoot(t *testing.T) {
	dir, host := t.TempDir(), t.TempDir()
	if err := os.WriteFile(filepath.Join(host, "shadow"), []byte("root:secret"), 0o600); err != nil {
		t.Fatal(err)
	}
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	must(os.MkdirAll(filepath.Join(dir, "ctx", "real"), 0o755))
	must(os.WriteFile(filepath.Join(dir, "ctx", "real", "motd"), []byte("hi\n"), 0o644))
	must(os.Symlink(host, filepath.Join(dir, "ctx", "etclink")))
	must(os.Symlink("real", filepath.Join(dir, "ctx", "inside")))
	must(os.Symlink(filepath.Join(host, "shadow"), filepath.Join(dir, "ctx", "real", "shadowlink")))
	for _, tc := range []struct{ src, want string }{
		{"ctx/etclink/shadow", "spin.yaml:3: steps[0].copy: ctx/etclink/shadow: a symlink on the way leads out of the spin's directory: refused"},
		{"ctx/etclink", ""},     // the link itself, copied as a link: nothing is read through it
		{"ctx/inside/motd", ""}, // a link that stays inside
		{"ctx/real", ""},        // holds a link to a host file: copied as a link
	} {
		_, err := Parse("spin.yaml", dir, []byte("from: stage3\nsteps:\n  - copy: "+tc.src+"\n    to: /etc/x\n"))
		switch {
		case tc.want == "" && err != nil:
			t.Errorf("copy %s: %v", tc.src, err)
		case tc.want != "" && (err == nil || !strings.HasPrefix(err.Error(), tc.want)):
			t.Errorf("copy %s: %v\nwant: %s", tc.src, err, tc.want)
		}
	}
	// The copy itself: the tree lands with its inner symlink as a symlink, and no host file.
	testenv.RequireRoot(t) // the copy sets the step's owner, root
	root := t.TempDir()
	if err := copyInto(root, dir, &Step{Kind: Copy, Src: "ctx/real", Dst: "/etc/x"}); err != nil {
		t.Fatal(err)
	}
	if b, err := os.ReadFile(filepath.Join(root, "etc", "x", "motd")); err != nil || string(b) != "hi\n" {
		t.Errorf("copied motd: %q, %v", b, err)
	}
	if target, err := os.Readlink(filepath.Join(root, "etc", "x", "shadowlink")); err != nil || target != filepath.Join(host, "shadow") {
		t.Errorf("copied shadowlink: %q, %v; want the symlink itself", target, err)
	}
	if err := copyInto(root, dir, &Step{Kind: Copy, Src: "ctx/etclink/shadow", Dst: "/etc/y"}); err == nil {
		t.Error("copyInto through a symlink out of the spin's directory succeeded")
	}
	if _, err := os.Stat(filepath.Join(root, "etc", "y")); !os.IsNotExist(err) {
		t.Errorf("a refused copy left /etc/y: %v", err)
	}
}

// TestLoadBoundsTheDefinition: a spin definition is read to MaxSpinBytes and no further, from
// a file or a pipe (spin <(generate)).
func TestLoadBoundsTheDefinition(t *testing.T) {
	dir := t.TempDir()
	big := filepath.Join(dir, "big.yaml")
	if err := os.WriteFile(big, []byte("from: stage3\n#"+strings.Repeat("x", MaxSpinBytes)+"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := Load(big); err == nil || !strings.Contains(err.Error(), big+": more than the 1048576 bytes a spin definition may have") {
		t.Errorf("Load of a 1 MiB spin: %v", err)
	}
	r, w, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	go func() {
		w.WriteString("from: stage3\nsteps:\n  - run: \"true\"\n")
		w.Close()
	}()
	s, err := Load("/dev/fd/" + strconv.Itoa(int(r.Fd())))
	if err != nil || len(s.Steps) != 1 {
		t.Errorf("Load through a pipe: %+v, %v", s, err)
	}
}
