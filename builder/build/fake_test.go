package build_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/google/go-containerregistry/pkg/authn"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/santhosh-tekuri/jsonschema/v6"
	"github.com/serpent-os/serpent-oci/builder"
	"github.com/serpent-os/serpent-oci/builder/build"
	"github.com/serpent-os/serpent-oci/oci/packages"
	"github.com/serpent-os/serpent-oci/oci/platform"
	"github.com/serpent-os/serpent-oci/oci/registry"
	"github.com/serpent-os/serpent-oci/oci/registry/registrytest"
	"github.com/serpent-os/serpent-oci/oci/store"
)

// The tests here run the build's paths that need no container of their own (verify, compare,
// cache directories, push) with the fake executor: no root, runc or qemu.

// unreproducible makes the fake's runs of stage depend on something outside their inputs, as
// a script that writes the date would: each rebuild of it comes out other than before.
func unreproducible(stage string) func(builder.RunOptions) builder.RunOptions {
	n := 0
	return func(o builder.RunOptions) builder.RunOptions {
		if o.Name == stage {
			n++
			o.Process.Env = append(slices.Clone(o.Process.Env), "RUN="+strings.Repeat("x", n))
		}
		return o
	}
}

func report(vs []build.Verification) string {
	var b strings.Builder
	for _, v := range vs {
		v.Report(&b)
	}
	return b.String()
}

func TestVerifyWithoutRoot(t *testing.T) {
	ctx := context.Background()
	f, fake := newFakeFixture(t)
	if _, err := build.Verify(ctx, f.options(t), "target-native", false); err == nil ||
		!strings.Contains(err.Error(), "verify: target-native for linux/arm64 is not built from its current recipe (base target-root is rebuilt first): build it first") {
		t.Fatalf("verify before any build: %v", err)
	}
	if _, err := f.build(t, "target-native"); err != nil {
		t.Fatal(err)
	}
	tagsBefore, _ := f.st.Tags()
	for _, deep := range []bool{false, true} {
		vs, err := build.Verify(ctx, f.options(t), "target-native", deep)
		if err != nil {
			t.Fatalf("verify (deep %v): %v", deep, err)
		}
		want := 1
		if deep {
			want = 3
		}
		if len(vs) != want {
			t.Fatalf("verify (deep %v): %d stages, want %d", deep, len(vs), want)
		}
		for _, v := range vs {
			if !v.Reproducible() {
				t.Errorf("verify (deep %v): %s", deep, report(vs))
			}
		}
		if r := report(vs); !strings.Contains(r, "target-native for linux/arm64: reproducible: both builds are sha256:") {
			t.Errorf("report:\n%s", r)
		}
	}
	if tags, _ := f.st.Tags(); len(tags) != len(tagsBefore) {
		t.Errorf("verify left tags in the store: %v, before %v", tags, tagsBefore)
	}

	fake.DependsOn = unreproducible("target-native")
	vs, err := build.Verify(ctx, f.options(t), "target-native", false)
	if err != nil {
		t.Fatal(err)
	}
	if len(vs) != 1 || vs[0].Reproducible() {
		t.Fatalf("verify of a stage that differs each run: %s", report(vs))
	}
	v := vs[0]
	if len(v.Differences) != 1 || v.Differences[0].Path != "fake-run/target-native" || v.SameLayers {
		t.Errorf("differences %+v (same layers %v), want fake-run/target-native", v.Differences, v.SameLayers)
	}
	r := report(vs)
	for _, want := range []string{"target-native for linux/arm64: NOT reproducible: one build is " + v.Want.Digest.String(), "  fake-run/target-native: "} {
		if !strings.Contains(r, want) {
			t.Errorf("report lacks %q:\n%s", want, r)
		}
	}
	// Only the stage that differs does: with deep, those below it are reproducible, and the
	// one on it is rebuilt on its rebuild.
	vs, err = build.Verify(ctx, f.options(t), "target-native", true)
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, v := range vs {
		got = append(got, v.Step.Name()+":"+map[bool]string{true: "same", false: "differs"}[v.Reproducible()])
	}
	if want := []string{"host-tools:same", "target-root:same", "target-native:differs"}; !slices.Equal(got, want) {
		t.Errorf("verify --deep: %v, want %v", got, want)
	}
}

func TestCompareTwoStoresWithoutRoot(t *testing.T) {
	ctx := context.Background()
	a, _ := newFakeFixture(t)
	b, fakeB := newFakeFixture(t)
	b.set, b.mirror = a.set, a.mirror // the same recipe set, built apart
	for _, f := range []*fixture{a, b} {
		if _, err := f.build(t, "target-native"); err != nil {
			t.Fatal(err)
		}
	}
	vs, err := build.Compare(ctx, a.options(t).PlanOptions, "target-native", true, b.st)
	if err != nil {
		t.Fatal(err)
	}
	if len(vs) != 3 {
		t.Fatalf("compare --deep: %d stages", len(vs))
	}
	for _, v := range vs {
		if !v.Reproducible() {
			t.Errorf("two builds of one set differ: %s", report(vs))
		}
	}

	fakeB.DependsOn = unreproducible("target-root")
	if _, err := b.build(t, "target-native", func(o *build.Options) { o.Rebuild = []string{"target-root"} }); err != nil {
		t.Fatal(err)
	}
	vs, err = build.Compare(ctx, a.options(t).PlanOptions, "target-native", true, b.st)
	if err != nil {
		t.Fatal(err)
	}
	var differ []string
	for _, v := range vs {
		if !v.Reproducible() {
			differ = append(differ, v.Step.Name())
		}
	}
	// target-native differs too: it was rebuilt on another base, so its base's layer differs
	// (its own is the same).
	if want := []string{"target-root", "target-native"}; !slices.Equal(differ, want) {
		t.Fatalf("differ %v, want %v:\n%s", differ, want, report(vs))
	}
	if d := vs[1].Differences; len(d) != 1 || d[0].Path != "fake-run/target-root" {
		t.Errorf("target-root's differences: %+v", d)
	}

	if _, err := build.Compare(ctx, a.options(t).PlanOptions, "target-native", false, newEmptyStore(t)); err == nil ||
		!strings.Contains(err.Error(), "compare: ") {
		t.Errorf("compare with a store that lacks the stage: %v", err)
	}
}

func newEmptyStore(t *testing.T) *store.Store {
	t.Helper()
	st, err := store.Open(context.Background(), t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	return st
}

func TestCacheMountsWithoutRoot(t *testing.T) {
	f, _ := newFakeFixture(t)
	edit(t, filepath.Join(f.set, "target-native.yaml"), "script: target-native.sh", "cache: [/var/cache/work, /root/.cache/tool]\nscript: target-native.sh")
	edit(t, filepath.Join(f.set, "target-root.yaml"), "script: target-root.sh", "cache: [/var/cache/work]\nscript: target-root.sh")
	if _, err := f.build(t, "target-native"); err != nil {
		t.Fatal(err)
	}
	list := func() []string {
		t.Helper()
		cms, err := build.CacheMounts(f.st)
		if err != nil {
			t.Fatal(err)
		}
		var out []string
		for _, c := range cms {
			if filepath.Base(c.Dir) != c.Platforms {
				t.Errorf("%s's cache directory %s is not named for %s", c.Stage, c.Dir, c.Platforms)
			}
			out = append(out, c.Stage+" "+c.Platforms)
			if c.Bytes != 0 {
				out[len(out)-1] += " " + strings.Repeat("#", int(c.Bytes))
			}
		}
		return out
	}
	// Kept per target and host: target-root is cross-built on the host, target-native runs
	// in its arm64 root.
	want := []string{"target-native linux-arm64-on-linux-arm64", "target-root linux-arm64-on-linux-amd64"}
	if got := list(); !slices.Equal(got, want) {
		t.Fatalf("cache directories %q, want %q", got, want)
	}
	cms, _ := build.CacheMounts(f.st)
	for _, sub := range []string{"var_cache_work", "root_.cache_tool"} {
		if _, err := os.Stat(filepath.Join(cms[0].Dir, sub)); err != nil {
			t.Errorf("target-native's cache directory for %s: %v", sub, err)
		}
	}
	if err := os.WriteFile(filepath.Join(cms[0].Dir, "var_cache_work", "obj"), []byte("abc"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink("/etc/passwd", filepath.Join(cms[0].Dir, "var_cache_work", "link")); err != nil {
		t.Fatal(err)
	}
	want[0] += " ###" // the file's bytes, the symlink's target not counted
	if got := list(); !slices.Equal(got, want) {
		t.Fatalf("cache directories %q, want %q", got, want)
	}

	if removed, err := build.PruneCacheMounts(f.st, "no-such-stage"); err != nil || len(removed) != 0 {
		t.Errorf("prune of another stage: removed %v, %v", removed, err)
	}
	removed, err := build.PruneCacheMounts(f.st, "target-native")
	if err != nil || len(removed) != 1 || removed[0].Stage != "target-native" || removed[0].Bytes != 3 {
		t.Fatalf("prune target-native: removed %+v, %v", removed, err)
	}
	if got := list(); !slices.Equal(got, want[1:]) {
		t.Errorf("after prune target-native: %q", got)
	}
	if _, err := os.Stat("/etc/passwd"); err != nil {
		t.Errorf("prune followed the symlink: %v", err)
	}
	if removed, err := build.PruneCacheMounts(f.st, ""); err != nil || len(removed) != 1 {
		t.Errorf("prune all: removed %+v, %v", removed, err)
	}
	if got := list(); len(got) != 0 {
		t.Errorf("after prune of all: %q", got)
	}

	// The directory holding them must be the store's own: a symlink there would have prune
	// delete elsewhere.
	root := filepath.Join(f.st.Dir(), ".serpent", build.CacheMountsDir)
	elsewhere := t.TempDir()
	if err := os.MkdirAll(filepath.Join(elsewhere, "victim", "linux-arm64-on-linux-arm64"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.RemoveAll(root); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(elsewhere, root); err != nil {
		t.Fatal(err)
	}
	if _, err := build.PruneCacheMounts(f.st, ""); err == nil || !strings.Contains(err.Error(), "is not a plain directory") {
		t.Errorf("prune through a symlinked cache root: %v", err)
	}
	if _, err := os.Stat(filepath.Join(elsewhere, "victim")); err != nil {
		t.Errorf("prune removed what the symlink points at: %v", err)
	}
}

func TestPushWithoutRoot(t *testing.T) {
	ctx := context.Background()
	f, _ := newFakeFixture(t)
	rep, err := f.build(t, "target-native")
	if err != nil {
		t.Fatal(err)
	}
	host := registrytest.InMemory(t, nil)
	client := registry.New(registry.Options{Keychain: authn.NewMultiKeychain()})
	ref, err := client.ParseReference(host + "/serpent/target-native:latest")
	if err != nil {
		t.Fatal(err)
	}
	opts := f.options(t)
	opts.Registry = client
	if _, err := build.Push(ctx, opts, rep, "no-such-stage", ref); err == nil || !strings.Contains(err.Error(), "the build made no image of no-such-stage") {
		t.Errorf("push of a stage the build did not make: %v", err)
	}
	pushed, err := build.Push(ctx, opts, rep, "target-native", ref)
	if err != nil {
		t.Fatal(err)
	}
	if pushed.Uploaded == 0 {
		t.Error("nothing uploaded")
	}
	for _, p := range []v1.Platform{arm64} {
		img, err := client.Image(ctx, ref, p)
		if err != nil {
			t.Fatalf("pull %s for %s: %v", ref, platform.String(p), err)
		}
		d, _ := img.Digest()
		var want v1.Hash
		for _, r := range rep.Steps {
			if r.Step.Name() == "target-native" && platform.Equal(r.Step.Target.Platform, p) {
				want = r.Descriptor.Digest
			}
		}
		if d != want {
			t.Errorf("%s for %s: pushed %s, built %s", ref, platform.String(p), d, want)
		}
	}
	// Again: the registry has every blob.
	again, err := build.Push(ctx, opts, rep, "target-native", ref)
	if err != nil {
		t.Fatal(err)
	}
	if again.Uploaded != 0 || again.Descriptor.Digest != pushed.Descriptor.Digest {
		t.Errorf("second push: uploaded %d bytes, index %s (first %s)", again.Uploaded, again.Descriptor.Digest, pushed.Descriptor.Digest)
	}
}

// A stage that leaves packages (output: {rootfs: DIR, packages: DIR}): each is tagged and
// recorded on the stage's image, and the stage's repository lists them; a package the stage no
// longer makes leaves the repository and loses its tag.
func TestStagePackagesWithoutRoot(t *testing.T) {
	f, fake := newFakeFixture(t)
	edit(t, filepath.Join(f.set, "target-root.yaml"), "  rootfs: /out", "  rootfs: /out\n  packages: /pkgs")
	writes := map[string]string{
		"/pkgs/busybox/usr/bin/busybox":           "a busybox",
		"/pkgs/busybox.json":                      `{"version": "1.35.0", "sources": ["busybox"], "depends": ["greeting"]}`,
		"/pkgs/greeting/usr/share/greeting/hello": "hi",
		"/pkgs/greeting.json":                     `{"version": "1"}`,
		"/usr/share/serpent/components.json":      "{}", // in the root, in no package
	}
	fake.Writes = func(o builder.RunOptions) map[string]string {
		if o.Name == "target-root" {
			return writes
		}
		return nil
	}
	rep, err := f.build(t, "target-native")
	if err != nil {
		t.Fatal(err)
	}
	root := rep.Steps[1]
	if root.Step.Name() != "target-root" {
		t.Fatalf("step 1 is %s", root.Step.Name())
	}
	repo := func() []string {
		t.Helper()
		idx, err := f.st.Index(build.RepositoryName(root.Step.Tag.Name))
		if err != nil {
			t.Fatal(err)
		}
		entries, err := packages.Entries(idx)
		if err != nil {
			t.Fatal(err)
		}
		var out []string
		for _, e := range entries {
			out = append(out, e.String()+" "+strings.Join(e.Depends, ","))
			img, err := f.st.ImageByDigest(e.Descriptor)
			if err != nil {
				t.Fatalf("%s: %v", e, err)
			}
			tagged, _, err := f.st.Image(build.PackageTag(root.Step.Tag, e.Name))
			if err != nil {
				t.Fatalf("%s is not tagged: %v", e, err)
			}
			if a, b := digestOf(t, img), digestOf(t, tagged); a != b {
				t.Errorf("%s: the repository has %s, the tag %s", e, a, b)
			}
		}
		return out
	}
	if got, want := repo(), []string{"busybox 1.35.0 for linux/arm64 greeting", "greeting 1 for linux/arm64 "}; !slices.Equal(got, want) {
		t.Errorf("repository %q, want %q", got, want)
	}
	img, _, err := f.st.Image(root.Step.Tag)
	if err != nil {
		t.Fatal(err)
	}
	m, _ := img.Manifest()
	if rec := m.Annotations[packages.AnnotationPackages]; !strings.Contains(rec, `"name":"busybox","version":"1.35.0"`) || !strings.Contains(rec, `"name":"greeting"`) {
		t.Errorf("the stage's record of its packages: %s", rec)
	}
	if rest := m.Annotations[packages.AnnotationUnowned]; rest != `["/usr/share/serpent/components.json"]` {
		t.Errorf("the stage's record of what no package holds: %s", rest)
	}
	bb, _, err := f.st.Image(build.PackageTag(root.Step.Tag, "busybox"))
	if err != nil {
		t.Fatal(err)
	}
	pkg, err := packages.Read(bb)
	if err != nil {
		t.Fatal(err)
	}
	if len(pkg.Sources) != 1 || pkg.Sources[0].Name != "busybox" || len(pkg.Sources[0].SHA256) != 64 || !slices.Equal(pkg.Files, []string{"/usr/bin/busybox"}) {
		t.Errorf("busybox package: %+v", pkg)
	}
	// Each package has an SBOM beside it: SPDX 2.3, naming it, its sources and the stage.
	bbDigest := digestOf(t, bb)
	refs, err := f.st.Referrers(bbDigest, build.SPDXMediaType)
	if err != nil || len(refs) != 1 {
		t.Fatalf("busybox package's SBOMs: %v %v", refs, err)
	}
	sbom, err := f.st.ReferrerData(refs[0])
	if err != nil {
		t.Fatal(err)
	}
	inst, err := jsonschema.UnmarshalJSON(bytes.NewReader(sbom))
	if err != nil {
		t.Fatal(err)
	}
	if err := spdxSchema(t).Validate(inst); err != nil {
		t.Errorf("the package's SBOM is not SPDX 2.3: %v\n%s", err, sbom)
	}
	for _, want := range []string{`"name": "package busybox 1.35.0 for linux/arm64"`, `"checksumValue": "` + bbDigest.Hex + `"`,
		`"checksumValue": "` + pkg.Sources[0].SHA256 + `"`, `"relationshipType": "BUILD_TOOL_OF"`, `"checksumValue": "` + root.Descriptor.Digest.Hex + `"`} {
		if !strings.Contains(string(sbom), want) {
			t.Errorf("the package's SBOM lacks %s:\n%s", want, sbom)
		}
	}
	for _, e := range layerPaths(t, firstLayer(t, img)) {
		if strings.HasPrefix(e, "pkgs") {
			t.Errorf("the packages' directory is in the stage's image: %s", e)
		}
	}

	// The stage stops making greeting.
	delete(writes, "/pkgs/greeting/usr/share/greeting/hello")
	delete(writes, "/pkgs/greeting.json")
	writes["/pkgs/busybox.json"] = `{"version": "1.35.0", "sources": ["busybox"]}`
	if _, err := f.build(t, "target-native", func(o *build.Options) { o.Rebuild = []string{"target-root"} }); err != nil {
		t.Fatal(err)
	}
	if got, want := repo(), []string{"busybox 1.35.0 for linux/arm64 "}; !slices.Equal(got, want) {
		t.Errorf("repository after greeting was dropped: %q, want %q", got, want)
	}
	if _, _, err := f.st.Image(build.PackageTag(root.Step.Tag, "greeting")); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("greeting's tag after it was dropped: %v", err)
	}

	// What a stage says of a package is checked against its recipe; nothing is tagged.
	for _, tc := range []struct{ json, want string }{
		{`{"version": "1", "sources": ["nope"]}`, `/pkgs/busybox.json: source "nope" is not one of recipe target-root's or its bases' (busybox, greeting)`},
		{`{"sources": ["busybox"]}`, "/pkgs/busybox.json: no version"},
		{`{"version": "1", "licence": "x"}`, `/pkgs/busybox.json: json: unknown field "licence"`},
	} {
		writes["/pkgs/busybox.json"] = tc.json
		before, _ := f.st.Tags()
		_, err := f.build(t, "target-native", func(o *build.Options) { o.Rebuild = []string{"target-root"} })
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: %v, want an error containing %q", tc.json, err, tc.want)
		}
		if after, _ := f.st.Tags(); !slices.EqualFunc(before, after, func(a, b store.Tag) bool {
			return a.Ref.String() == b.Ref.String() && a.Descriptor.Digest == b.Descriptor.Digest
		}) {
			t.Errorf("%s: the failed build changed the tags", tc.json)
		}
	}
	delete(writes, "/pkgs/busybox.json")
	if _, err := f.build(t, "target-native", func(o *build.Options) { o.Rebuild = []string{"target-root"} }); err == nil || !strings.Contains(err.Error(), "packages: /pkgs/busybox.json: no such file") {
		t.Errorf("a package without its NAME.json: %v", err)
	}
}

func digestOf(t *testing.T, img v1.Image) v1.Hash {
	t.Helper()
	d, err := img.Digest()
	if err != nil {
		t.Fatal(err)
	}
	return d
}

func firstLayer(t *testing.T, img v1.Image) v1.Layer {
	t.Helper()
	ls, err := img.Layers()
	if err != nil || len(ls) == 0 {
		t.Fatalf("layers: %v (%d)", err, len(ls))
	}
	return ls[0]
}

// A stage built on packages:STAGE runs in a root assembled from that stage's packages (a
// skeleton and one layer per package, in resolution order), finds each package described at
// /recipe/packages/NAME.json, and is rebuilt when a package changes, not otherwise.
func TestStageOnPackagesWithoutRoot(t *testing.T) {
	f, fake := newFakeFixture(t)
	edit(t, filepath.Join(f.set, "target-root.yaml"), "  rootfs: /out", "  rootfs: /out\n  packages: /pkgs")
	if err := os.WriteFile(filepath.Join(f.set, "rebuild.yaml"), []byte("description: the rebootstrap's stand-in\nfrom: packages:target-root\nruns-on: target\noutput: {rootfs: /out, packages: /pkgs}\nplatforms: [linux/arm64]\nrun: true\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	greeting := "hi"
	var base v1.Image
	var seen map[string]packageJSON
	fake.Writes = func(o builder.RunOptions) map[string]string {
		switch o.Name {
		case "target-root":
			return map[string]string{
				"/pkgs/busybox/usr/bin/busybox":           "a busybox",
				"/pkgs/busybox.json":                      `{"version": "1.35.0", "sources": ["busybox"], "depends": ["greeting"]}`,
				"/pkgs/greeting/usr/share/greeting/hello": greeting,
				"/pkgs/greeting.json":                     `{"version": "1"}`,
			}
		case "rebuild":
			base, seen = o.Base, map[string]packageJSON{}
			for _, m := range o.Process.Mounts {
				if m.Destination != "/recipe" {
					continue
				}
				for _, n := range []string{"busybox", "greeting"} {
					var p packageJSON
					b, err := os.ReadFile(filepath.Join(m.Source, "packages", n+".json"))
					if err == nil {
						err = json.Unmarshal(b, &p)
					}
					if err != nil {
						t.Errorf("/recipe/packages/%s.json: %v", n, err)
					}
					files, err := os.ReadFile(filepath.Join(m.Source, "packages", n+".files"))
					if err != nil {
						t.Errorf("/recipe/packages/%s.files: %v", n, err)
					}
					p.Files = strings.Fields(string(files))
					seen[n] = p
				}
			}
			return map[string]string{"/pkgs/greeting/usr/share/greeting/hello": "rebuilt", "/pkgs/greeting.json": `{"version": "2"}`}
		}
		return nil
	}
	rep, err := f.build(t, "rebuild")
	if err != nil {
		t.Fatal(err)
	}
	if got := outcomes(rep); got != "host-tools:built (no image with this key), target-root:built (no image with this key), rebuild:built (no image with this key)" {
		t.Errorf("first build: %s", got)
	}
	if base == nil {
		t.Fatal("the rebuild ran on no base")
	}
	var order []string
	var installed []packages.Installed
	if err := json.Unmarshal([]byte(manifestAnnotation(t, base, packages.AnnotationPackages)), &installed); err != nil {
		t.Fatal(err)
	}
	for _, in := range installed {
		order = append(order, in.Name)
	}
	if !slices.Equal(order, []string{"greeting", "busybox"}) {
		t.Errorf("the root's packages %v, want greeting (which busybox depends on) then busybox", order)
	}
	if ls, _ := base.Layers(); len(ls) != 3 {
		t.Errorf("the root has %d layers, want a skeleton and two packages", len(ls))
	}
	if p := seen["busybox"]; p.Version != "1.35.0" || !slices.Equal(p.Files, []string{"/usr/bin/busybox"}) || !slices.Equal(p.Sources, []string{"busybox"}) {
		t.Errorf("/recipe/packages/busybox.json: %+v", p)
	}

	// Nothing changed: reused. A package changed: the stage on it is rebuilt.
	rep, err = f.build(t, "rebuild")
	if err != nil {
		t.Fatal(err)
	}
	if got := outcomes(rep); got != "host-tools:reused (same key), target-root:reused (same key), rebuild:reused (same key)" {
		t.Errorf("again: %s", got)
	}
	greeting = "hello"
	rep, err = f.build(t, "rebuild", func(o *build.Options) { o.Rebuild = []string{"target-root"} })
	if err != nil {
		t.Fatal(err)
	}
	if got := outcomes(rep); got != "host-tools:reused (same key), target-root:built (--rebuild target-root), rebuild:built (base changed)" {
		t.Errorf("after a package changed: %s", got)
	}
}

// packageJSON is /recipe/packages/NAME.json as a stage on packages reads it, and its files
// from NAME.files.
type packageJSON struct {
	Version string   `json:"version"`
	Sources []string `json:"sources"`
	Depends []string `json:"depends"`
	Files   []string `json:"-"`
}

func manifestAnnotation(t *testing.T, img v1.Image, key string) string {
	t.Helper()
	m, err := img.Manifest()
	if err != nil {
		t.Fatal(err)
	}
	return m.Annotations[key]
}

// TestAnUnrelatedRecipeEditKeepsTheImage: a stage rebuilt after an edit to a recipe it is not
// built from comes out the same image: its provenance names the recipes of its own chain, not
// the whole set's (with the set's, the edit changed org.opencontainers.image.revision, and
// so the image a plan would still reuse by its unchanged key).
func TestAnUnrelatedRecipeEditKeepsTheImage(t *testing.T) {
	f, _ := newFakeFixture(t)
	rep, err := f.build(t, "target-root")
	if err != nil {
		t.Fatal(err)
	}
	before := rep.Steps[len(rep.Steps)-1]
	edit(t, filepath.Join(f.set, "target-native.sh"), "echo \"built natively", "# an edit target-root is not built from\necho \"built natively")
	rep, err = f.build(t, "target-root", func(o *build.Options) { o.Rebuild = []string{"target-root"} })
	if err != nil {
		t.Fatal(err)
	}
	after := rep.Steps[len(rep.Steps)-1]
	if !after.Built || after.Step.Name() != "target-root" {
		t.Fatalf("target-root was not rebuilt: %s", actions(rep))
	}
	if after.Descriptor.Digest != before.Descriptor.Digest {
		t.Errorf("target-root rebuilt after an edit of target-native's script is %s, was %s", after.Descriptor.Digest, before.Descriptor.Digest)
	}
}
