package build_test

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/authn"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/remote"

	"github.com/serpent-os/serpent-oci/builder"
	"github.com/serpent-os/serpent-oci/builder/build"
	"github.com/serpent-os/serpent-oci/builder/buildertest"
	"github.com/serpent-os/serpent-oci/builder/sources"
	"github.com/serpent-os/serpent-oci/oci/platform"
	"github.com/serpent-os/serpent-oci/oci/registry"
	"github.com/serpent-os/serpent-oci/oci/registry/registrytest"
	"github.com/serpent-os/serpent-oci/oci/store"
	"github.com/serpent-os/serpent-oci/oci/testenv"
	"github.com/serpent-os/serpent-oci/stages"
)

var arm64 = platform.MustParse("linux/arm64")

type fixture struct {
	st             *store.Store
	set, mirror    string
	runner         builder.Executor
	cacheDir, logs string
}

func newFixture(t *testing.T) *fixture { return newFixtureB(t) }

// newFixtureB is a fixture whose store has the test set's base image, busybox@linux-amd64.
func newFixtureB(t testing.TB) *fixture {
	t.Helper()
	f := newEmptyFixture(t)
	buildertest.Busybox(t, f.st, platform.MustParse("linux/amd64"))
	return f
}

// newEmptyFixture is a fixture whose store is empty.
func newEmptyFixture(t testing.TB) *fixture {
	t.Helper()
	buildertest.RequireRunc(t)
	f := newStoreFixture(t)
	var err error
	f.runner, err = builder.NewRunner(f.st, builder.WithConsole(&strings.Builder{}))
	if err != nil {
		t.Fatal(err)
	}
	return f
}

// newFakeFixture is a fixture with the test set's base image whose runs are a FakeExecutor's:
// no root, runc or qemu.
func newFakeFixture(t testing.TB) (*fixture, *buildertest.FakeExecutor) {
	t.Helper()
	f := newStoreFixture(t)
	buildertest.Busybox(t, f.st, platform.MustParse("linux/amd64"))
	fake := buildertest.NewFake(f.st)
	f.runner = fake
	return f, fake
}

// newStoreFixture is a fixture with an empty store, the recipe set and its sources, and no
// executor yet.
func newStoreFixture(t testing.TB) *fixture {
	t.Helper()
	f := &fixture{}
	var err error
	f.st, err = store.Open(context.Background(), filepath.Join(t.TempDir(), "store"))
	if err != nil {
		t.Fatal(err)
	}
	f.set, f.mirror = buildertest.RecipeSet(t)
	f.cacheDir = filepath.Join(t.TempDir(), "sources")
	f.logs = filepath.Join(f.st.Dir(), ".serpent", "logs")
	return f
}

func (f *fixture) buildB(b *testing.B) (*build.Report, error) { return f.build(b, "target-native") }

// options are the build options of the fixture's store, recipe set (as it is on disk now),
// runner and sources, for arm64.
func (f *fixture) options(t testing.TB, mutate ...func(*build.Options)) build.Options {
	t.Helper()
	set, err := stages.Load(os.DirFS(f.set))
	if err != nil {
		t.Fatal(err)
	}
	opts := build.Options{
		PlanOptions: build.PlanOptions{Store: f.st, Set: set, Platforms: []v1.Platform{arm64}},
		Runner:      f.runner,
		Sources:     &sources.Cache{Dir: f.cacheDir, Mirrors: []string{f.mirror}},
	}
	for _, m := range mutate {
		m(&opts)
	}
	return opts
}

func (f *fixture) build(t testing.TB, target string, mutate ...func(*build.Options)) (*build.Report, error) {
	t.Helper()
	return build.Run(context.Background(), f.options(t, mutate...), target)
}

// actions lists each step as "stage:result" in build order.
func actions(rep *build.Report) string {
	var out []string
	for _, s := range rep.Steps {
		out = append(out, s.Step.Name()+":"+result(s))
	}
	return strings.Join(out, " ")
}

// result is what the build did with a step: built, pulled, resolved or reused.
func result(s build.StepResult) string {
	switch {
	case s.Built:
		return "built"
	case s.Pulled:
		return "pulled"
	case s.Resolved:
		return "resolved"
	}
	return "reused"
}

func edit(t *testing.T, path, old, new string) {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(b), old) {
		t.Fatalf("%s lacks %q", path, old)
	}
	if err := os.WriteFile(path, []byte(strings.Replace(string(b), old, new, 1)), 0o644); err != nil {
		t.Fatal(err)
	}
}

func TestBuildTestSet(t *testing.T) {
	f := newFixture(t)
	rep, err := f.build(t, "target-native")
	if err != nil {
		t.Fatal(err)
	}
	if got := actions(rep); got != "host-tools:built target-root:built target-native:built" {
		t.Fatalf("first build: %s", got)
	}
	want := []struct{ tag, arch string }{
		{"host-tools-for-linux-arm64@linux-amd64", "amd64"},
		{"target-root@linux-arm64", "arm64"},
		{"target-native@linux-arm64", "arm64"},
	}
	for i, w := range want {
		s := rep.Steps[i]
		if s.Step.Tag.String() != w.tag {
			t.Errorf("step %d tagged %s, want %s", i, s.Step.Tag, w.tag)
		}
		img, d, err := f.st.Image(s.Step.Tag)
		if err != nil {
			t.Fatal(err)
		}
		cfg, _ := img.ConfigFile()
		if cfg.Architecture != w.arch || d.Platform.Architecture != w.arch {
			t.Errorf("%s: config says %s, index says %s; want %s", w.tag, cfg.Architecture, d.Platform.Architecture, w.arch)
		}
		m, _ := img.Manifest()
		if m.Annotations[build.AnnotationKey] != s.Step.Key || m.Annotations[build.AnnotationTarget] != "linux/arm64" {
			t.Errorf("%s: annotations %v", w.tag, m.Annotations)
		}
	}
	log, err := os.ReadFile(rep.Steps[2].Log)
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"hello from the source mirror", "prepared on x86_64 for aarch64-serpent-linux-musl"} {
		if !strings.Contains(string(log), want) {
			t.Errorf("target-native's log lacks %q:\n%s", want, log)
		}
	}
	layers, _ := rep.Steps[1].Run.Image.Layers()
	if len(layers) != 1 {
		t.Errorf("target-root (a rootfs output) has %d layers, want 1", len(layers))
	}

	// Everything cached: no container at all.
	rep, err = f.build(t, "target-native")
	if err != nil {
		t.Fatal(err)
	}
	if got := actions(rep); got != "host-tools:reused target-root:reused target-native:reused" || rep.Containers() != 0 {
		t.Fatalf("cached build: %s (%d containers)", got, rep.Containers())
	}
}

func TestChangesRebuildWhatTheyFeed(t *testing.T) {
	f := newFixture(t)
	if _, err := f.build(t, "target-native"); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name       string
		file       string
		old, new   string
		want       string
		wantReason string
	}{
		{"comment and whitespace in a recipe", "target-root.yaml", "from: host-tools\n", "# a comment\nfrom:    host-tools   \n\n",
			"host-tools:reused target-root:reused target-native:reused", ""},
		{"a source's origin", "host-tools.yaml", "    file: greeting.txt\n", "    file: greeting.txt\n    url: https://example.invalid/greeting.txt\n",
			"host-tools:reused target-root:reused target-native:reused", ""},
		{"a source's version: its script reads it", "host-tools.yaml", "    file: greeting.txt\n", "    file: greeting.txt\n    version: 2.0\n",
			"host-tools:built target-root:built target-native:built", "recipe changed"},
		{"the last stage's script", "target-native.sh", "built natively", "really built natively",
			"host-tools:reused target-root:reused target-native:built", "recipe changed"},
		{"the first stage's script", "host-tools.sh", "prepared on", "made on",
			"host-tools:built target-root:built target-native:built", "recipe changed"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			edit(t, filepath.Join(f.set, tt.file), tt.old, tt.new)
			rep, err := f.build(t, "target-native")
			if err != nil {
				t.Fatal(err)
			}
			if got := actions(rep); got != tt.want {
				t.Fatalf("after changing %s: %s, want %s", tt.file, got, tt.want)
			}
			for _, s := range rep.Steps {
				if s.Built && s.Step.Recipe.File == tt.file || s.Built && strings.TrimSuffix(s.Step.Recipe.File, ".yaml")+".sh" == tt.file {
					if s.Step.Reason != tt.wantReason {
						t.Errorf("%s rebuilt because %q, want %q", s.Step.Name(), s.Step.Reason, tt.wantReason)
					}
				}
			}
		})
	}
}

func TestRebuildAndNoCache(t *testing.T) {
	f := newFixture(t)
	if _, err := f.build(t, "target-root"); err != nil {
		t.Fatal(err)
	}
	rep, err := f.build(t, "target-root", func(o *build.Options) { o.Rebuild = []string{"target-root"} })
	if err != nil {
		t.Fatal(err)
	}
	if got := actions(rep); got != "host-tools:reused target-root:built" {
		t.Fatalf("--rebuild target-root: %s", got)
	}
	rep, err = f.build(t, "target-root", func(o *build.Options) { o.NoCache = true })
	if err != nil {
		t.Fatal(err)
	}
	if got := actions(rep); got != "host-tools:built target-root:built" {
		t.Fatalf("--no-cache: %s", got)
	}
	// A rebuild gives the same image: the stages are reproducible.
	if rep.Steps[1].Step.Existing == nil || rep.Steps[1].Descriptor.Digest != rep.Steps[1].Step.Existing.Digest {
		t.Errorf("rebuilding target-root changed its digest")
	}
}

func TestCorruptSourceStopsBeforeAnyContainer(t *testing.T) {
	f := newFixture(t)
	if err := os.WriteFile(filepath.Join(f.mirror, "greeting.txt"), []byte("tampered\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	_, err := f.build(t, "target-native")
	var mismatch *sources.MismatchError
	if !errors.As(err, &mismatch) {
		t.Fatalf("build with a corrupt mirror file: %v, want a checksum mismatch", err)
	}
	for _, want := range []string{"greeting", "4b7add2f2076c1ba6978b2cfb15af529102ac41c01cc376700202247cc35f440", mismatch.Actual} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q lacks %q", err, want)
		}
	}
	if logs, _ := os.ReadDir(f.logs); len(logs) != 0 {
		t.Fatalf("%d containers ran before the bad source was found", len(logs))
	}
	if tags, _ := f.st.Tags(); len(tags) != 1 {
		t.Fatalf("tags after a failed build: %v", tags)
	}
}

func TestCacheToThenCacheFrom(t *testing.T) { testCacheToThenCacheFrom(t, newFixture) }

// The same decisions with the fake executor, without root.
func TestCacheToThenCacheFromWithoutRoot(t *testing.T) {
	testCacheToThenCacheFrom(t, func(t *testing.T) *fixture {
		f, _ := newFakeFixture(t)
		return f
	})
}

// testCacheToThenCacheFrom builds into a registry cache with --cache-to and from it with
// --cache-from, in fixtures newFixture makes (each with its own store).
func testCacheToThenCacheFrom(t *testing.T, fixtureOf func(*testing.T) *fixture) {
	ctx := context.Background()
	host := registrytest.InMemory(t, nil)
	client := registry.New(registry.Options{Keychain: authn.NewMultiKeychain()})
	repo, err := client.ParseRepository(host + "/serpent/cache")
	if err != nil {
		t.Fatal(err)
	}
	cache := &registry.Cache{Client: client, Repo: repo}

	first := fixtureOf(t)
	rep, err := first.build(t, "target-native", func(o *build.Options) { o.Registry, o.CacheTo = client, cache })
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range rep.Steps {
		if s.CacheBytes == 0 && s.Step.Name() == "host-tools" {
			t.Errorf("%s: nothing uploaded to the cache", s.Step.Name())
		}
		if _, err := client.Head(ctx, repo.Tag(registry.CacheTag(s.Step.Name(), s.Step.Key))); err != nil {
			t.Errorf("%s is not in the cache: %v", s.Step.Name(), err)
		}
	}

	// A fresh store (with its own copy of the base image, imported alike) takes every stage
	// from the cache and runs no container.
	second := fixtureOf(t)
	rep2, err := second.build(t, "target-native", func(o *build.Options) { o.Registry, o.CacheFrom = client, []*registry.Cache{cache} })
	if err != nil {
		t.Fatal(err)
	}
	if got := actions(rep2); got != "host-tools:resolved target-root:resolved target-native:pulled" || rep2.Containers() != 0 {
		t.Fatalf("build with --cache-from: %s (%d containers)", got, rep2.Containers())
	}
	if logs, _ := os.ReadDir(second.logs); len(logs) != 0 {
		t.Errorf("%d containers ran in a build served by the cache", len(logs))
	}
	for i, s := range rep2.Steps {
		if s.Descriptor.Digest != rep.Steps[i].Descriptor.Digest {
			t.Errorf("%s pulled as %s, built as %s", s.Step.Name(), s.Descriptor.Digest, rep.Steps[i].Descriptor.Digest)
		}
		d, err := second.st.Resolve(s.Step.Tag)
		if s.Resolved && !errors.Is(err, store.ErrNotFound) {
			t.Errorf("%s, only resolved, is in the new store: %v %v", s.Step.Tag, d.Digest, err)
		}
		if !s.Resolved && (err != nil || d.Digest != s.Descriptor.Digest) {
			t.Errorf("%s in the new store: %v %v", s.Step.Tag, d.Digest, err)
		}
	}
	// Now the store has the target: the next build reuses it, pulling nothing.
	rep3, err := second.build(t, "target-native", func(o *build.Options) { o.Registry, o.CacheFrom = client, []*registry.Cache{cache} })
	if err != nil {
		t.Fatal(err)
	}
	if got := actions(rep3); got != "host-tools:resolved target-root:resolved target-native:reused" || rep3.Downloaded() != 0 {
		t.Errorf("third build: %s", got)
	}

	// A changed last script misses the cache for that stage alone.
	edit(t, filepath.Join(second.set, "target-native.sh"), "built natively", "built natively again")
	third := fixtureOf(t)
	edit(t, filepath.Join(third.set, "target-native.sh"), "built natively", "built natively again")
	rep4, err := third.build(t, "target-native", func(o *build.Options) { o.Registry, o.CacheFrom = client, []*registry.Cache{cache} })
	if err != nil {
		t.Fatal(err)
	}
	if got := actions(rep4); got != "host-tools:resolved target-root:pulled target-native:built" {
		t.Errorf("build with a changed last stage: %s", got)
	}

	// A cache that cannot be reached is a miss: the build goes on.
	down := registry.New(registry.Options{Keychain: authn.NewMultiKeychain(), Backoff: remote.Backoff{Duration: time.Millisecond, Steps: 1}})
	gone, _ := down.ParseRepository("127.0.0.1:1/serpent/cache")
	fourth := fixtureOf(t)
	rep5, err := fourth.build(t, "target-root", func(o *build.Options) { o.Registry, o.CacheFrom = down, []*registry.Cache{{Client: down, Repo: gone}} })
	if err != nil {
		t.Fatalf("build with an unreachable cache: %v", err)
	}
	if got := actions(rep5); got != "host-tools:built target-root:built" {
		t.Errorf("build with an unreachable cache: %s", got)
	}
}

func TestBaseImageFromRegistry(t *testing.T) {
	ctx := context.Background()
	f := newFixture(t)
	host := registrytest.InMemory(t, nil)
	client := registry.New(registry.Options{Keychain: authn.NewMultiKeychain()})
	amd64 := platform.MustParse("linux/amd64")
	busybox, _, err := f.st.Image(store.Ref{Name: "busybox"}.WithPlatform(&amd64))
	if err != nil {
		t.Fatal(err)
	}
	ref, err := client.ParseReference(host + "/library/busybox:1")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := client.Push(ctx, busybox, ref, registry.PushOptions{}); err != nil {
		t.Fatal(err)
	}
	if _, err := f.st.Untag(ctx, store.Ref{Name: "busybox"}); err != nil {
		t.Fatal(err)
	}
	withRemoteBase := func(o *build.Options) {
		o.Registry, o.Images = client, map[string]string{"busybox": ref.String()}
	}
	rep, err := f.build(t, "target-root", withRemoteBase)
	if err != nil {
		t.Fatal(err)
	}
	if got := actions(rep); got != "host-tools:built target-root:built" || rep.Steps[0].Step.Base != ref.String() {
		t.Fatalf("build on a registry base: %s, base %s", got, rep.Steps[0].Step.Base)
	}
	want, _ := busybox.Digest()
	if rep.Steps[0].Step.BaseDigest != want {
		t.Errorf("base digest %s, pushed %s", rep.Steps[0].Step.BaseDigest, want)
	}
	// Without a registry client the same name is a store tag, and the store has none.
	f.st.Untag(ctx, store.Ref{Name: "host-tools-for-linux-arm64"})
	if _, err := f.build(t, "target-root", func(o *build.Options) { o.Images = map[string]string{"busybox": ref.String()} }); err == nil || !strings.Contains(err.Error(), "starts from image") {
		t.Errorf("registry base without a registry client: %v", err)
	}
}

func TestVerifyRebuild(t *testing.T) {
	f := newFixture(t)
	if _, err := f.build(t, "target-native"); err != nil {
		t.Fatal(err)
	}
	verify := func(deep bool) []build.Verification {
		t.Helper()
		vs, err := build.Verify(context.Background(), f.options(t), "target-native", deep)
		if err != nil {
			t.Fatal(err)
		}
		return vs
	}
	vs := verify(false)
	if len(vs) != 1 || !vs[0].Reproducible() || vs[0].Step.Name() != "target-native" {
		t.Fatalf("verify of the test set: %+v", vs)
	}
	vs = verify(true)
	if len(vs) != 3 {
		t.Fatalf("verify --deep: %d stages", len(vs))
	}
	for _, v := range vs {
		if !v.Reproducible() {
			var b strings.Builder
			v.Report(&b)
			t.Errorf("verify --deep: %s", b.String())
		}
	}
	if tags, _ := f.st.Tags(); len(tags) != 4 {
		t.Errorf("verify left tags in the store: %v", tags)
	}

	// A stage that writes the time into a file is not reproducible, and verify says where.
	edit(t, filepath.Join(f.set, "target-native.sh"), "cat \"$GREETING_FILE\"", "cat \"$GREETING_FILE\"\nsleep 1\ndate > /etc/built-at")
	if _, err := f.build(t, "target-native"); err != nil {
		t.Fatal(err)
	}
	vs = verify(false)
	if len(vs) != 1 || vs[0].Reproducible() {
		t.Fatalf("verify of a stage that writes the date: reproducible")
	}
	var b strings.Builder
	vs[0].Report(&b)
	report := b.String()
	if len(vs[0].Differences) != 1 || vs[0].Differences[0].Path != "etc/built-at" ||
		!strings.Contains(report, "etc/built-at: content (differs only in an embedded timestamp") {
		t.Errorf("report:\n%s", report)
	}
}

// topLayerFiles are the entries of img's top layer, by path, with their content.
func topLayerFiles(t *testing.T, img v1.Image) map[string]string {
	t.Helper()
	out := map[string]string{}
	for _, e := range testenv.TopLayer(t, img) {
		out[e.Header.Name] = e.Content
	}
	return out
}

// TestAcceleratedStageRunsHostTools: the test set's emulated stage, accelerated by the
// host's busybox image or by an accelerator made as a stage (output for: host, tagged and
// typed for the host), finds uname on PATH in the accelerator and runs it natively (it says
// x86_64 where the emulated stage's says aarch64), and its layer holds nothing of it.
func TestAcceleratedStageRunsHostTools(t *testing.T) {
	f := newFixture(t)
	edit(t, filepath.Join(f.set, "target-native.yaml"), "script: target-native.sh", "script: target-native.sh\naccelerate: true")
	// busybox's sh runs its applets in itself; a program found on PATH, as a compiler is, runs
	// as what it is.
	edit(t, filepath.Join(f.set, "target-native.sh"), `$(uname -m)`, `$("$(which uname)" -m)`)
	// The accelerator made as a stage: host tools, as an image for the host (for: host).
	accelRecipe := `description: host-native tools for the arm64 stages
from: image:busybox
runs-on: host
output: {rootfs: /out, for: host}
platforms: [linux/arm64]
run: |
  mkdir -p /out/bin
  cp /bin/busybox /out/bin/busybox
  for a in uname which; do ln -s busybox /out/bin/$a; done
`
	if err := os.WriteFile(filepath.Join(f.set, "accel-tools.yaml"), []byte(accelRecipe), 0o644); err != nil {
		t.Fatal(err)
	}
	// Named before it is built, the accelerator's error says which stage makes it and how.
	_, err := f.build(t, "target-native", func(o *build.Options) { o.Accelerator = "accel-tools-for-linux-arm64" })
	if want := "stage accel-tools makes it: serpent-oci build accel-tools --platform linux/arm64"; err == nil || !strings.Contains(err.Error(), want) {
		t.Errorf("an accelerator not built yet: %v, want an error saying %q", err, want)
	}
	// With BuildAccelerator (build and plan), the stage that makes it is planned and built
	// first, ahead of the first stage that needs it, and then accelerates it.
	rep, err := f.build(t, "target-native", func(o *build.Options) {
		o.Accelerator, o.BuildAccelerator, o.Rebuild = "accel-tools-for-linux-arm64", true, []string{"target-native"}
	})
	if err != nil {
		t.Fatal(err)
	}
	var order []string
	for _, r := range rep.Steps {
		order = append(order, r.Step.Name()+":"+string(r.Step.Action))
	}
	if got, want := strings.Join(order, " "), "host-tools:build target-root:build accel-tools:build target-native:build"; got != want {
		t.Errorf("a build naming an accelerator not built yet: %s, want %s", got, want)
	}
	if img, err := f.st.ImageByDigest(rep.Steps[3].Descriptor); err != nil {
		t.Fatal(err)
	} else if got := topLayerFiles(t, img)["etc/built-on"]; got != "built natively on x86_64\n" || !rep.Steps[3].Step.Accelerated() {
		t.Errorf("target-native after its accelerator was built first: /etc/built-on says %q (accelerated: %v)", got, rep.Steps[3].Step.Accelerated())
	}
	// And the stage itself, built on its own, is reused.
	rep, err = f.build(t, "accel-tools")
	if err != nil {
		t.Fatal(err)
	}
	made := rep.Steps[len(rep.Steps)-1]
	if got := made.Step.Tag.String(); got != "accel-tools-for-linux-arm64@linux-amd64" {
		t.Errorf("the accelerator stage is tagged %s, want accel-tools-for-linux-arm64@linux-amd64", got)
	}
	if made.Descriptor.Platform == nil || made.Descriptor.Platform.Architecture != "amd64" {
		t.Errorf("the accelerator's image is for %v, want linux/amd64", made.Descriptor.Platform)
	}
	for _, tt := range []struct {
		accel, want string
	}{
		{"", "built natively on aarch64\n"},
		{"busybox@linux-amd64", "built natively on x86_64\n"},
		{"accel-tools-for-linux-arm64", "built natively on x86_64\n"},
	} {
		// An accelerated build has the emulated build's key: --rebuild, or it reuses.
		rep, err := f.build(t, "target-native", func(o *build.Options) { o.Accelerator, o.Rebuild = tt.accel, []string{"target-native"} })
		if err != nil {
			t.Fatal(err)
		}
		img, err := f.st.ImageByDigest(rep.Steps[2].Descriptor)
		if err != nil {
			t.Fatal(err)
		}
		files := topLayerFiles(t, img)
		if got := files["etc/built-on"]; got != tt.want {
			t.Errorf("accelerator %q: /etc/built-on says %q, want %q", tt.accel, got, tt.want)
		}
		for name := range files {
			if strings.HasPrefix(name, strings.TrimPrefix(build.AcceleratorDir, "/")) {
				t.Errorf("accelerator %q: the layer holds %s", tt.accel, name)
			}
		}
	}
	// The last image an accelerated build made (x86_64) is not reused for an emulated build:
	// the emulated build makes its own (aarch64) and says why.
	rep, err = f.build(t, "target-native")
	if err != nil {
		t.Fatal(err)
	}
	img, err := f.st.ImageByDigest(rep.Steps[2].Descriptor)
	if err != nil {
		t.Fatal(err)
	}
	if got := topLayerFiles(t, img)["etc/built-on"]; rep.Steps[2].Step.Reason != "built with an accelerator only, not yet emulated" || got != "built natively on aarch64\n" {
		t.Errorf("emulated after accelerated: %s (%s), /etc/built-on says %q", result(rep.Steps[2]), rep.Steps[2].Step.Reason, got)
	}
}

// TestBaseBuiltForTheHost: a stage whose base is built for the host (base-target: host), as
// an accelerator starts from the host's own stage1, gets that base built with the host's row
// of the target table, one image for every target it is planned for, and reads the host's row
// as SERPENT_HOST_*; the same base stage for a target stays a cross build of its own.
func TestBaseBuiltForTheHost(t *testing.T) {
	f, fake := newFakeFixture(t)
	edit(t, filepath.Join(f.set, "host-tools.yaml"), "platforms: [linux/arm64]", "platforms: [linux/amd64, linux/arm64]")
	accel := "from: host-tools\nbase-target: host\nruns-on: host\noutput: {rootfs: /out, for: host}\nplatforms: [linux/amd64, linux/arm64]\nrun: mkdir -p /out\n"
	if err := os.WriteFile(filepath.Join(f.set, "accel.yaml"), []byte(accel), 0o644); err != nil {
		t.Fatal(err)
	}
	envs := map[string][]string{} // by stage and target triple
	fake.Fail = func(o builder.RunOptions) error {
		for _, kv := range o.Process.Env {
			if triple, ok := strings.CutPrefix(kv, "SERPENT_TARGET_TRIPLE="); ok {
				envs[o.Name+" for "+triple] = o.Process.Env
			}
		}
		return nil
	}
	amd64 := platform.MustParse("linux/amd64")
	rep, err := f.build(t, "accel", func(o *build.Options) { o.Platforms = []v1.Platform{arm64, amd64} })
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, s := range rep.Steps {
		got = append(got, fmt.Sprintf("%s for %s (base %s)", s.Step.Tag, platform.String(s.Step.Target.Platform), s.Step.Base))
	}
	want := []string{
		"host-tools@linux-amd64 for linux/amd64 (base busybox@linux-amd64)",
		"accel-for-linux-arm64@linux-amd64 for linux/arm64 (base host-tools@linux-amd64)",
		"accel@linux-amd64 for linux/amd64 (base host-tools@linux-amd64)",
	}
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Fatalf("steps:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
	if runs := fake.Runs(); strings.Join(runs, " ") != "host-tools accel accel" {
		t.Errorf("runs %v: the host's base once, the accelerator once per target", runs)
	}
	for tag, want := range map[string][]string{
		"host-tools for x86_64-serpent-linux-musl": {"SERPENT_TARGET_TRIPLE=x86_64-serpent-linux-musl"},
		"accel for aarch64-serpent-linux-musl":     {"SERPENT_TARGET_TRIPLE=aarch64-serpent-linux-musl", "SERPENT_HOST_TRIPLE=x86_64-serpent-linux-musl", "SERPENT_HOST_CFLAGS=-march=x86-64-v3"},
	} {
		for _, kv := range want {
			if !slices.Contains(envs[tag], kv) {
				t.Errorf("%s: env lacks %s: %q", tag, kv, envs[tag])
			}
		}
	}
	if slices.ContainsFunc(envs["host-tools for x86_64-serpent-linux-musl"], func(kv string) bool { return strings.HasPrefix(kv, "SERPENT_HOST_TRIPLE=") }) {
		t.Errorf("host-tools reads a host row though its base is not built for the host")
	}

	// The test set's own chain still cross-builds host-tools for arm64: another image.
	rep, err = f.build(t, "target-native")
	if err != nil {
		t.Fatal(err)
	}
	if got := rep.Steps[0].Step.Tag.String(); got != "host-tools-for-linux-arm64@linux-amd64" || actions(rep) != "host-tools:built target-root:built target-native:built" {
		t.Errorf("target-native's chain: %s, first %s", actions(rep), got)
	}
}
