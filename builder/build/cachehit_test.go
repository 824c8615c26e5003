package build_test

import (
	"context"
	"os"
	"strings"
	"testing"

	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"

	"github.com/serpent-os/serpent-oci/builder/build"
	"github.com/serpent-os/serpent-oci/oci/platform"
	"github.com/serpent-os/serpent-oci/oci/registry"
	"github.com/serpent-os/serpent-oci/oci/registry/registrytest"
	"github.com/serpent-os/serpent-oci/oci/store"
)

type basicKeychain struct{ user, password string }

func (k basicKeychain) Resolve(authn.Resource) (authn.Authenticator, error) {
	return &authn.Basic{Username: k.user, Password: k.password}, nil
}

// A full cache hit into an empty store downloads the target's image and nothing of the stages
// before it, whose keys come from their manifests; the store remembers them, so that a later
// build goes on from them without the cache named, and pulls one only to run on it.
func TestCacheHitFetchesOnlyTheTarget(t *testing.T) {
	ctx := context.Background()
	d := registrytest.StartDistribution(t)
	client := registry.New(registry.Options{Transport: d.Transport(), Keychain: basicKeychain{d.User, d.Password}})
	repo, err := client.ParseRepository(d.Addr + "/serpent/cache")
	if err != nil {
		t.Fatal(err)
	}
	cache := &registry.Cache{Client: client, Repo: repo}
	first, busybox, baseRef, built := buildIntoCache(t, cache)
	want := map[string]v1.Descriptor{}
	for _, r := range built.Steps {
		want[r.Step.Name()] = r.Descriptor
	}

	empty := newEmptyFixture(t)
	fromRegistry := func(o *build.Options) {
		o.Registry, o.Images = client, map[string]string{"busybox": baseRef.String()}
	}
	before := len(d.Served())
	rep, err := empty.build(t, "target-native", fromRegistry, func(o *build.Options) { o.CacheFrom = []*registry.Cache{cache} })
	if err != nil {
		t.Fatal(err)
	}
	served := d.Served()[before:]
	if got := actions(rep); got != "host-tools:resolved target-root:resolved target-native:pulled" || rep.Containers() != 0 {
		t.Fatalf("build --cache-from into an empty store: %s (%d containers)", got, rep.Containers())
	}
	if logs, _ := os.ReadDir(empty.logs); len(logs) != 0 {
		t.Errorf("%d containers ran in a build served by the cache", len(logs))
	}
	for _, r := range rep.Steps {
		if r.Descriptor.Digest != want[r.Step.Name()].Digest {
			t.Errorf("%s: %s from the cache, %s built", r.Step.Name(), r.Descriptor.Digest, want[r.Step.Name()].Digest)
		}
	}

	// What the registry served: the target's blobs, each once, and of the stages before it and
	// of the base their configs alone (a stage's platform is read from it).
	target, err := empty.st.ImageByDigest(want["target-native"])
	if err != nil {
		t.Fatal(err)
	}
	m, err := target.Manifest()
	if err != nil {
		t.Fatal(err)
	}
	raw, _ := target.RawManifest()
	targetBlobs := map[string]int64{m.Config.Digest.String(): m.Config.Size}
	wantDownloaded := int64(len(raw)) + m.Config.Size
	for _, l := range m.Layers {
		targetBlobs[l.Digest.String()] = l.Size
		wantDownloaded += l.Size
	}
	configs := map[string]bool{}
	for _, img := range []v1.Image{busybox, imageOf(t, first.st, want["host-tools"]), imageOf(t, first.st, want["target-root"])} {
		cm, err := img.Manifest()
		if err != nil {
			t.Fatal(err)
		}
		configs[cm.Config.Digest.String()] = true
	}
	got := map[string]int64{}
	var total int64
	for _, r := range served {
		total += r.Bytes
		_, digest, isBlob := strings.Cut(r.Path, "/blobs/")
		if !isBlob || r.Method != "GET" || r.Status != 200 {
			continue
		}
		if _, ok := targetBlobs[digest]; !ok && !configs[digest] {
			t.Errorf("the registry served %s (%d bytes), a blob of no image the build needs", digest, r.Bytes)
		}
		if _, again := got[digest]; again {
			t.Errorf("the registry served %s twice", digest)
		}
		got[digest] = r.Bytes
	}
	for digest, size := range targetBlobs {
		if got[digest] != size {
			t.Errorf("target blob %s: served %d bytes, want %d", digest, got[digest], size)
		}
	}
	if rep.Downloaded() != wantDownloaded {
		t.Errorf("the report says %d bytes downloaded, the target's image is %d", rep.Downloaded(), wantDownloaded)
	}
	if limit := wantDownloaded + 64<<10; total > limit {
		t.Errorf("the registry served %d bytes in all, more than the target's %d and 64 KiB of manifests and configs", total, wantDownloaded)
	}
	t.Logf("served %d requests, %d bytes; the target's image is %d bytes, the chain's %d", len(served), total, wantDownloaded, chainBytes(built))

	// The store has the target alone, and is whole.
	tags, err := empty.st.Tags()
	if err != nil || len(tags) != 1 || tags[0].Ref.Name != "target-native" {
		t.Errorf("tags after the build: %v %v", tags, err)
	}
	if res, err := empty.st.Fsck(ctx); err != nil || len(res.Problems) != 0 {
		t.Errorf("fsck after the build: %v %v", res.Problems, err)
	}

	// Without the cache named, a plan goes on from what the store recorded: the stages before
	// the target are resolved, the target reused; no layer is fetched.
	before = len(d.Served())
	steps, err := stepsOf(build.Plan(ctx, empty.options(t, fromRegistry).PlanOptions, "target-native"))
	if err != nil {
		t.Fatal(err)
	}
	if got := planActions(steps); got != "host-tools:resolve target-root:resolve target-native:reuse" {
		t.Errorf("plan without --cache-from after it: %s", got)
	}
	for _, r := range d.Served()[before:] {
		if _, digest, isBlob := strings.Cut(r.Path, "/blobs/"); isBlob && !configs[digest] {
			t.Errorf("plan fetched %s, not a config", r.Path)
		}
	}

	// verify rebuilds the target on its base, fetched from where it was resolved; --deep
	// cannot rebuild what the store has not got, and says so.
	vs, err := build.Verify(ctx, empty.options(t, fromRegistry), "target-native", false)
	if err != nil || len(vs) != 1 || !vs[0].Reproducible() {
		t.Errorf("verify target-native after a cache hit: %v %+v", err, vs)
	}
	if _, err := build.Verify(ctx, empty.options(t, fromRegistry), "target-native", true); err == nil || !strings.Contains(err.Error(), "only resolved from a cache") {
		t.Errorf("verify --deep after a cache hit: %v, want an error saying the stages are only resolved", err)
	}

	// Rebuilding the target runs on its base: that one is pulled now, from where it was
	// resolved, and the rebuild is the same image.
	rebuilt, err := empty.build(t, "target-native", fromRegistry, func(o *build.Options) { o.Rebuild = []string{"target-native"} })
	if err != nil {
		t.Fatal(err)
	}
	if got := actions(rebuilt); got != "host-tools:resolved target-root:pulled target-native:built" {
		t.Errorf("--rebuild target-native after a cache hit: %s", got)
	}
	if last := rebuilt.Steps[len(rebuilt.Steps)-1]; last.Descriptor.Digest != want["target-native"].Digest {
		t.Errorf("target-native rebuilt as %s, first built as %s", last.Descriptor.Digest, want["target-native"].Digest)
	}
}

// buildIntoCache builds the test set's last stage with --cache-to cache, after pushing the
// set's base image to the same registry (base/busybox:1, where an empty store finds it).
func buildIntoCache(t testing.TB, cache *registry.Cache) (f *fixture, base v1.Image, baseRef name.Reference, rep *build.Report) {
	t.Helper()
	f = newFixtureB(t)
	amd64 := platform.MustParse("linux/amd64")
	base, _, err := f.st.Image(store.Ref{Name: "busybox"}.WithPlatform(&amd64))
	if err != nil {
		t.Fatal(err)
	}
	if baseRef, err = cache.Client.ParseReference(cache.Repo.RegistryStr() + "/base/busybox:1"); err != nil {
		t.Fatal(err)
	}
	if _, err := cache.Client.Push(context.Background(), base, baseRef, registry.PushOptions{}); err != nil {
		t.Fatal(err)
	}
	rep, err = f.build(t, "target-native", func(o *build.Options) { o.Registry, o.CacheTo = cache.Client, cache })
	if err != nil {
		t.Fatal(err)
	}
	return f, base, baseRef, rep
}

func imageOf(t *testing.T, st *store.Store, d v1.Descriptor) v1.Image {
	t.Helper()
	img, err := st.ImageByDigest(d)
	if err != nil {
		t.Fatal(err)
	}
	return img
}

// chainBytes is the size of every image a build made: what a pull of the whole chain moves.
func chainBytes(rep *build.Report) int64 {
	var n int64
	for _, r := range rep.Steps {
		n += r.Size
	}
	return n
}

func planActions(steps []build.Step) string {
	var out []string
	for _, s := range steps {
		out = append(out, s.Name()+":"+string(s.Action))
	}
	return strings.Join(out, " ")
}
