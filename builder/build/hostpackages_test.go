package build_test

import (
	"context"
	"fmt"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/serpent-os/serpent-oci/builder"
	"github.com/serpent-os/serpent-oci/builder/build"
	"github.com/serpent-os/serpent-oci/builder/buildertest"
	"github.com/serpent-os/serpent-oci/builder/sources"
	"github.com/serpent-os/serpent-oci/oci/image"
	"github.com/serpent-os/serpent-oci/oci/layer"
	"github.com/serpent-os/serpent-oci/oci/platform"
	"github.com/serpent-os/serpent-oci/oci/store"
	"github.com/serpent-os/serpent-oci/oci/testenv"
	"github.com/serpent-os/serpent-oci/stages"
)

// stepsOf is a plan's steps, for the tests that read them.
func stepsOf(g *build.Graph, err error) ([]build.Step, error) {
	if err != nil {
		return nil, err
	}
	return g.Steps(), nil
}

func planned(steps []build.Step) string {
	var out []string
	for _, s := range steps {
		out = append(out, fmt.Sprintf("%s %s (%s: %s)", s.Name(), s.Tag, s.Action, s.Reason))
	}
	return strings.Join(out, "\n")
}

// TestSeedIsAStage: on an empty store the plan makes the seed first, once for every platform;
// a seed the store has (imported, or made before) is used as it is; --seed REF names another
// image and makes none; --rebuild seed makes it again.
func TestSeedIsAStage(t *testing.T) {
	ctx := context.Background()
	set, err := stages.Load(stages.Embedded())
	if err != nil {
		t.Fatal(err)
	}
	st, err := store.Open(ctx, filepath.Join(t.TempDir(), "store"))
	if err != nil {
		t.Fatal(err)
	}
	host := platform.MustParse("linux/amd64")
	both := []v1.Platform{host, platform.MustParse("linux/arm64")}
	opts := build.PlanOptions{Store: st, Set: set, Host: host, Platforms: both}

	steps, err := stepsOf(build.Plan(ctx, opts, "stage2"))
	if err != nil {
		t.Fatalf("plan on an empty store: %v", err)
	}
	want := `seed seed@linux-amd64 (build: not in the store)
stage1 stage1@linux-amd64 (build: base seed is rebuilt first)
stage2 stage2@linux-amd64 (build: base stage1 is rebuilt first)
stage1 stage1-for-linux-arm64@linux-amd64 (build: base seed is rebuilt first)
stage2 stage2@linux-arm64 (build: base stage1 is rebuilt first)`
	if got := planned(steps); got != want {
		t.Errorf("plan on an empty store:\n%s\nwant:\n%s", got, want)
	}

	seed, err := image.Scratch(host, layer.DefaultSourceDateEpoch)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := st.WriteImage(ctx, seed, store.Ref{Name: "seed"}.WithPlatform(&host)); err != nil {
		t.Fatal(err)
	}
	if steps, err = stepsOf(build.Plan(ctx, opts, "stage1")); err != nil {
		t.Fatal(err)
	}
	if got := planned(steps)[:strings.Index(planned(steps), "\n")]; got != "seed seed@linux-amd64 (reuse: in the store)" {
		t.Errorf("with an imported seed: %s", got)
	}
	if steps[1].Key == "" {
		t.Errorf("stage1 on a seed in the store has no key yet")
	}

	rebuild := opts
	rebuild.Rebuild = []string{"seed"}
	if steps, err = stepsOf(build.Plan(ctx, rebuild, "stage1")); err != nil || !strings.HasPrefix(planned(steps), "seed seed@linux-amd64 (build: --rebuild seed)") {
		t.Errorf("--rebuild seed: %v\n%s", err, planned(steps))
	}

	other := opts
	other.Images = map[string]string{"seed": "busybox"}
	if _, err := st.WriteImage(ctx, seed, store.Ref{Name: "busybox"}.WithPlatform(&host)); err != nil {
		t.Fatal(err)
	}
	if steps, err = stepsOf(build.Plan(ctx, other, "stage1")); err != nil || len(steps) != 2 || steps[0].Name() != "stage1" || steps[0].Base != "busybox@linux-amd64" {
		t.Errorf("--seed busybox: %v\n%s", err, planned(steps))
	}
}

// TestSeedIsMadeOnTheHost: the seed stage runs mmdebstrap on the host with its packages and
// the machine's apt sources, and the tarball becomes the seed image, tagged with its key; a
// host without mmdebstrap gets one line naming the package to install. (mmdebstrap here is a
// stand-in that records its arguments and writes a small tarball: CI's bootstrap makes the
// real seed.)
func TestSeedIsMadeOnTheHost(t *testing.T) {
	ctx := context.Background()
	requireAptSources(t)
	set, err := stages.Load(stages.Embedded())
	if err != nil {
		t.Fatal(err)
	}
	opts := hostBuildOptions(t, set, platform.Host())
	st := opts.Store

	t.Setenv("PATH", t.TempDir())
	if _, err := build.Run(ctx, opts, "seed"); err == nil || !strings.Contains(err.Error(), "mmdebstrap is missing: install it (apt-get install mmdebstrap)") {
		t.Fatalf("without mmdebstrap: %v", err)
	}

	bin := t.TempDir()
	argsFile := filepath.Join(t.TempDir(), "args")
	fake := fmt.Sprintf(`#!/bin/sh
printf '%%s\n' "$@" > %s
echo "SOURCE_DATE_EPOCH=$SOURCE_DATE_EPOCH" >> %s
d=$(mktemp -d) && mkdir -p "$d/etc" "$d/var/lib/dpkg" && echo seeded > "$d/etc/seeded"
printf 'Package: zlib1g\nStatus: install ok installed\nArchitecture: amd64\nVersion: 1:1.2.13.dfsg-1\n\nPackage: gone\nStatus: deinstall ok config-files\nVersion: 1\n\nPackage: clang-14\nStatus: install ok installed\nArchitecture: amd64\nVersion: 1:14.0.6-12\n' > "$d/var/lib/dpkg/status"
%s
for a; do case "$a" in *.tar) out="$a" ;; esac; done
tar -C "$d" -cf "$out" . && echo "I: success"
`, argsFile, argsFile, fakeHooks(map[string]string{"zlib1g=1:1.2.13.dfsg-1": "1", "clang-14=1:14.0.6-12": "2", "clang-14=1:14.0.6-11": "3"}))
	if err := os.WriteFile(filepath.Join(bin, "mmdebstrap"), []byte(fake), 0o755); err != nil {
		t.Fatal(err)
	}
	t.Setenv("PATH", bin+":/usr/bin:/bin")
	rep, err := build.Run(ctx, opts, "seed")
	if err != nil {
		t.Fatal(err)
	}
	args, _ := os.ReadFile(argsFile)
	for _, want := range []string{"--variant=apt\n", "--include=clang-14,lld-14,llvm-14,cmake,", "--format=tar\n", "/etc/apt/", "SOURCE_DATE_EPOCH=1597536000"} {
		if !strings.Contains(string(args), want) {
			t.Errorf("mmdebstrap's arguments lack %q:\n%s", want, args)
		}
	}
	img, d, err := st.Image(store.Ref{Name: "seed"}.WithPlatform(ptrTo(platform.Host())))
	if err != nil {
		t.Fatal(err)
	}
	if d.Digest != rep.Steps[0].Descriptor.Digest {
		t.Errorf("the seed tagged is %s, the build made %s", d.Digest, rep.Steps[0].Descriptor.Digest)
	}
	m, _ := img.Manifest()
	if m.Annotations[build.AnnotationKey] != rep.Steps[0].Step.Key || m.Annotations[build.AnnotationPackages] == "" || m.Annotations[build.AnnotationStage] != "seed" {
		t.Errorf("the seed's annotations: %v", m.Annotations)
	}
	layers, _ := img.Layers()
	if paths := layerPaths(t, layers[0]); !strings.Contains(strings.Join(paths, " "), "etc/seeded") {
		t.Errorf("the seed's layer: %v", paths)
	}
	if got := m.Annotations[build.AnnotationInstalled]; got != "clang-14=1:14.0.6-12=amd64,zlib1g=1:1.2.13.dfsg-1=amd64" {
		t.Errorf("installed packages: %q", got)
	}
	refs, err := st.Referrers(d.Digest, build.SPDXMediaType)
	if err != nil || len(refs) != 1 {
		t.Fatalf("the seed's SBOMs: %v, %v", refs, err)
	}
	sbom, err := st.ReferrerData(refs[0])
	if err != nil {
		t.Fatal(err)
	}
	checkSBOM(t, spdxSchema(t), sbom, rep.Steps[0].Step.Recipe, d.Digest)
	if !strings.Contains(string(sbom), `"referenceLocator": "pkg:deb/debian/clang-14@1:14.0.6-12?arch=amd64"`) || strings.Contains(string(sbom), `"gone"`) {
		t.Errorf("the seed's SBOM does not list what is installed (and only that):\n%s", sbom)
	}
	// Made once: the next plan reuses it.
	steps, err := stepsOf(build.Plan(ctx, opts.PlanOptions, "stage1"))
	if err != nil || steps[0].Action != build.Reuse {
		t.Errorf("after making the seed: %v\n%s", err, planned(steps))
	}
}

func ptrTo[T any](v T) *T { return &v }

// fakeHooks is the part of a stand-in mmdebstrap (its tree in $d) that does what the real one
// does with --customize-hook: runs each on the tree, while apt's package lists are there (for
// these packages, NAME=VERSION to a digit the .deb's sha256 repeats), then removes the lists.
func fakeHooks(debs map[string]string) string {
	var lists strings.Builder
	for _, k := range slices.Sorted(maps.Keys(debs)) {
		name, version, _ := strings.Cut(k, "=")
		fmt.Fprintf(&lists, "Package: %s\nVersion: %s\nArchitecture: amd64\nSHA256: %s\n\n", name, version, strings.Repeat(debs[k], 64))
	}
	return fmt.Sprintf(`mkdir -p "$d/var/lib/apt/lists" && printf '%%s' '%s' > "$d/var/lib/apt/lists/fake_main_binary-amd64_Packages"
for a; do case "$a" in --setup-hook=*) sh -c "${a#--setup-hook=}" hook "$d" || exit 1 ;; esac; done
[ -z "${PREFS_SEEN:-}" ] || cat "$d"/etc/apt/preferences.d/* > "$PREFS_SEEN" 2>/dev/null || true
for a; do case "$a" in --customize-hook=*) sh -c "${a#--customize-hook=}" hook "$d" || exit 1 ;; esac; done
rm -rf "$d/var/lib/apt/lists"`, lists.String())
}

// requireAptSources needs a Debian host: the seed is made from its apt sources.
func requireAptSources(t *testing.T) {
	t.Helper()
	_, err := os.Stat("/etc/apt/sources.list.d")
	testenv.Require(t, err == nil, "a Debian host (/etc/apt/sources.list.d)")
}

// hostBuildOptions are build options over set for plats, with a new store, a runner on it and
// an empty source cache.
func hostBuildOptions(t *testing.T, set *stages.Set, plats ...v1.Platform) build.Options {
	t.Helper()
	st, err := store.Open(context.Background(), filepath.Join(t.TempDir(), "store"))
	if err != nil {
		t.Fatal(err)
	}
	runner, err := builder.NewRunner(st, builder.WithConsole(&strings.Builder{}))
	if err != nil {
		t.Fatal(err)
	}
	return build.Options{
		PlanOptions: build.PlanOptions{Store: st, Set: set, Platforms: plats},
		Runner:      runner, Sources: &sources.Cache{Dir: t.TempDir()},
	}
}

// fakeMmdebstrap puts on PATH an mmdebstrap that writes a tarball of root (a busybox tree, so
// that stages can run in the image it makes).
func fakeMmdebstrap(t *testing.T, root string) {
	t.Helper()
	if err := os.MkdirAll(filepath.Join(root, "var", "lib", "dpkg"), 0o755); err != nil {
		t.Fatal(err)
	}
	status := "Package: busybox\nStatus: install ok installed\nArchitecture: amd64\nVersion: 1:1.35.0-4+b3\n"
	if err := os.WriteFile(filepath.Join(root, "var", "lib", "dpkg", "status"), []byte(status), 0o644); err != nil {
		t.Fatal(err)
	}
	bin := t.TempDir()
	fake := fmt.Sprintf("#!/bin/sh\nd=%s\n%s\nfor a; do case \"$a\" in *.tar) out=\"$a\" ;; esac; done\ntar -C %s -cf \"$out\" .\n", root, fakeHooks(map[string]string{"busybox=1:1.35.0-4+b3": "4"}), root)
	if err := os.WriteFile(filepath.Join(bin, "mmdebstrap"), []byte(fake), 0o755); err != nil {
		t.Fatal(err)
	}
	t.Setenv("PATH", bin+":/usr/bin:/bin")
}

// TestVerifyDeepWithASharedSeed: verify --rebuild --deep of two platforms' chains that share
// one seed rebuilds each stage on the rebuild of its own base (the arm64 chain's first stage
// on the seed, not on the amd64 chain's last stage), so both come out reproducible.
func TestVerifyDeepWithASharedSeed(t *testing.T) {
	buildertest.RequireRunc(t)
	requireAptSources(t)
	ctx := context.Background()
	root := filepath.Join(t.TempDir(), "rootfs")
	buildertest.BusyboxRootfs(t, platform.Host(), root)
	fakeMmdebstrap(t, root)
	dir := t.TempDir()
	targets, err := os.ReadFile(filepath.Join(buildertest.RepoRoot(), "stages", "testdata", "busybox", "targets.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	for name, body := range map[string]string{
		"targets.yaml": string(targets),
		"seed.yaml":    "from: host-packages\nruns-on: host\nplatforms: [linux/amd64, linux/arm64]\npackages: [busybox]\n",
		"tools.yaml":   "from: image:seed\nruns-on: host\noutput: layer\nplatforms: [linux/amd64, linux/arm64]\nrun: echo \"tools for $SERPENT_TARGET_ARCH\" > /etc/tools\n",
	} {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	set, err := stages.Load(os.DirFS(dir))
	if err != nil {
		t.Fatal(err)
	}
	opts := hostBuildOptions(t, set, platform.MustParse("linux/amd64"), platform.MustParse("linux/arm64"))
	rep, err := build.Run(ctx, opts, "tools")
	if err != nil {
		t.Fatal(err)
	}
	if got := actions(rep); got != "seed:built tools:built tools:built" {
		t.Fatalf("build: %s, want the seed once and tools for each platform", got)
	}
	vs, err := build.Verify(ctx, opts, "tools", true)
	if err != nil {
		t.Fatal(err)
	}
	if len(vs) != 3 {
		t.Fatalf("verify --deep checked %d stages, want 3", len(vs))
	}
	for _, v := range vs {
		if !v.Reproducible() {
			t.Errorf("%s (%s): rebuilt as %s, built as %s", v.Step.Name(), v.Step.Tag, v.Got.Digest, v.Want.Digest)
		}
	}
}

// TestSeedLock: a seed's lock (every package at its version, with the .deb's sha256) is
// stored beside it; given back, it pins the seed: a store's seed of other versions is made
// again, with every locked version asked of apt; a version the archive no longer serves, a
// seed that comes out otherwise and a .deb of other bytes under a locked version are errors
// that say so.
func TestSeedLock(t *testing.T) {
	ctx := context.Background()
	requireAptSources(t)
	set, err := stages.Load(stages.Embedded())
	if err != nil {
		t.Fatal(err)
	}
	set.Recipes["seed"].Packages = []string{"clang-14", "zlib1g"} // what the stand-in installs
	opts := hostBuildOptions(t, set, platform.Host())
	st := opts.Store
	bin, argsFile := t.TempDir(), filepath.Join(t.TempDir(), "args")
	// A stand-in mmdebstrap: installs zlib1g and clang-14 at VERSION (its environment), as apt
	// does whatever the preferences ask.
	fake := fmt.Sprintf(`#!/bin/sh
printf '%%s\n' "$@" > %s
d=$(mktemp -d) && mkdir -p "$d/var/lib/dpkg"
printf 'Package: zlib1g\nStatus: install ok installed\nArchitecture: amd64\nVersion: 1:1.2.13.dfsg-1\n\nPackage: clang-14\nStatus: install ok installed\nArchitecture: amd64\nVersion: %%s\n' "${VERSION:-1:14.0.6-12}" > "$d/var/lib/dpkg/status"
%s
for a; do case "$a" in *.tar) out="$a" ;; esac; done
tar -C "$d" -cf "$out" .
`, argsFile, fakeHooks(map[string]string{"zlib1g=1:1.2.13.dfsg-1": "1", "clang-14=1:14.0.6-12": "2", "clang-14=1:14.0.6-11": "3"}))
	if err := os.WriteFile(filepath.Join(bin, "mmdebstrap"), []byte(fake), 0o755); err != nil {
		t.Fatal(err)
	}
	t.Setenv("PATH", bin+":/usr/bin:/bin")
	rep, err := build.Run(ctx, opts, "seed")
	if err != nil {
		t.Fatal(err)
	}
	refs, err := st.Referrers(rep.Steps[0].Descriptor.Digest, build.SeedLockMediaType)
	if err != nil || len(refs) != 1 {
		t.Fatalf("the seed's locks: %v, %v", refs, err)
	}
	data, err := st.ReferrerData(refs[0])
	if err != nil {
		t.Fatal(err)
	}
	lock, err := build.ParseSeedLock("the store's", strings.NewReader(string(data)))
	if err != nil {
		t.Fatal(err)
	}
	if len(lock.Packages) != 2 || lock.Packages[0].Name != "clang-14" || lock.Packages[0].SHA256 != strings.Repeat("2", 64) || lock.Packages[1].SHA256 != strings.Repeat("1", 64) {
		t.Fatalf("lock: %+v", lock.Packages)
	}

	pinned := func(l *build.SeedLock) build.Options {
		o := opts
		o.SeedLock, o.SeedLockName = l, "seed.lock"
		return o
	}
	// The store's seed is the lock's: reused.
	if steps, err := stepsOf(build.Plan(ctx, pinned(lock).PlanOptions, "stage1")); err != nil || steps[0].Action != build.Reuse {
		t.Fatalf("plan with the seed's own lock: %v\n%s", err, planned(steps))
	}
	// A lock of another clang-14: the seed is made again, asking apt for that version.
	older := *lock
	older.Packages = slices.Clone(lock.Packages)
	older.Packages[0].Version, older.Packages[0].SHA256 = "1:14.0.6-11", strings.Repeat("3", 64)
	steps, err := stepsOf(build.Plan(ctx, pinned(&older).PlanOptions, "stage1"))
	if err != nil || steps[0].Action != build.Build || steps[0].Reason != "the store's holds other versions than --seed-lock seed.lock" {
		t.Fatalf("plan with an older lock: %v\n%s", err, planned(steps))
	}
	t.Setenv("VERSION", "1:14.0.6-11")
	prefs := filepath.Join(t.TempDir(), "prefs")
	t.Setenv("PREFS_SEEN", prefs)
	if _, err := build.Run(ctx, pinned(&older), "seed"); err != nil {
		t.Fatalf("build with an older lock: %v", err)
	}
	// Asked of apt through its preferences, not the command line (which would mark each
	// package as installed by hand), and gone from the seed after.
	if args, _ := os.ReadFile(argsFile); !strings.Contains(string(args), "--include=clang-14,zlib1g\n") {
		t.Errorf("mmdebstrap was given other packages than the recipe's:\n%s", args)
	}
	if b, _ := os.ReadFile(prefs); !strings.Contains(string(b), "Package: clang-14\nPin: version 1:14.0.6-11\nPin-Priority: 1001\n") ||
		!strings.Contains(string(b), "Package: zlib1g\nPin: version 1:1.2.13.dfsg-1\n") {
		t.Errorf("apt's preferences while mmdebstrap installed:\n%s", b)
	}
	img, _, err := st.Image(store.Ref{Name: "seed"}.WithPlatform(ptrTo(platform.Host())))
	if err != nil {
		t.Fatal(err)
	}
	layers, _ := img.Layers()
	if paths := strings.Join(layerPaths(t, layers[0]), " "); strings.Contains(paths, "serpent-oci-seed-lock") {
		t.Errorf("the pins stayed in the seed: %s", paths)
	}

	for _, c := range []struct {
		name, locked, installed, sum, want string
	}{
		{"a version the archive no longer serves", "1:14.0.6-10", "1:14.0.6-12", "3",
			"the seed lock seed.lock: it pins versions the archive no longer serves: clang-14=1:14.0.6-10 (build without --seed-lock"},
		{"a seed that comes out otherwise", "1:14.0.6-11", "1:14.0.6-12", "3",
			"the seed lock seed.lock: the seed came out with other packages (this one is the lock, the other the seed): clang-14 1:14.0.6-11 (amd64) -> 1:14.0.6-12 (amd64)"},
		{"other bytes under a locked version", "1:14.0.6-11", "1:14.0.6-11", "9",
			"the seed lock seed.lock: the archive served other bytes under a locked version: clang-14=1:14.0.6-11 is 3333"},
	} {
		t.Run(c.name, func(t *testing.T) {
			t.Setenv("VERSION", c.installed)
			l := older
			l.Packages = slices.Clone(older.Packages)
			l.Packages[0].Version, l.Packages[0].SHA256 = c.locked, strings.Repeat(c.sum, 64)
			o := pinned(&l)
			o.Rebuild = []string{"seed"}
			before, _ := st.Resolve(store.Ref{Name: "seed"}.WithPlatform(ptrTo(platform.Host())))
			_, err := build.Run(ctx, o, "seed")
			if err == nil || !strings.Contains(err.Error(), c.want) {
				t.Fatalf("error %v, want %q", err, c.want)
			}
			if after, _ := st.Resolve(store.Ref{Name: "seed"}.WithPlatform(ptrTo(platform.Host()))); after.Digest != before.Digest {
				t.Errorf("a seed that is not the lock's was tagged")
			}
		})
	}
}

func TestParseSeedLock(t *testing.T) {
	good := `{"suite": "bookworm", "packages": [{"name": "aa", "version": "1.0-1", "architecture": "amd64", "sha256": "` + strings.Repeat("a", 64) + `"}]}`
	if _, err := build.ParseSeedLock("ok.lock", strings.NewReader(good)); err != nil {
		t.Fatal(err)
	}
	sum := strings.Repeat("a", 64)
	for _, c := range []struct{ lock, want string }{
		{`{"suite": "x", "packages": []}`, "seed lock bad.lock: 0 packages"},
		{`{"suite": "x", "packages": [{"name": "--help", "version": "1", "architecture": "amd64", "sha256": "` + sum + `"}]}`, `packages[0].name "--help" is not a Debian package name`},
		{`{"suite": "x", "packages": [{"name": "aa", "version": "1 2", "architecture": "amd64", "sha256": "` + sum + `"}]}`, `packages[0] (aa): version "1 2" is not a Debian version`},
		{`{"suite": "x", "packages": [{"name": "aa", "version": "1", "architecture": "amd64", "sha256": "abc"}]}`, `sha256 "abc" is not 64 lower-case hex digits`},
		{`{"suite": "x", "packages": [{"name": "bb", "version": "1", "architecture": "amd64", "sha256": "` + sum + `"}, {"name": "aa", "version": "1", "architecture": "amd64", "sha256": "` + sum + `"}]}`, "packages[1] (aa): packages are sorted by name, each once"},
		{`{"suite": "x", "extra": 1, "packages": []}`, `unknown field "extra"`},
		{strings.Repeat(" ", 5<<20), "larger than"},
	} {
		if _, err := build.ParseSeedLock("bad.lock", strings.NewReader(c.lock)); err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%.60s: %v, want %q", c.lock, err, c.want)
		}
	}
}
