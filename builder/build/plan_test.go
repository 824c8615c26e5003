package build_test

import (
	"context"
	"fmt"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/random"
	"github.com/serpent-os/serpent-oci/builder/build"
	"github.com/serpent-os/serpent-oci/oci/image"
	"github.com/serpent-os/serpent-oci/oci/layer"
	"github.com/serpent-os/serpent-oci/oci/platform"
	"github.com/serpent-os/serpent-oci/oci/registry"
	"github.com/serpent-os/serpent-oci/oci/registry/registrytest"
	"github.com/serpent-os/serpent-oci/oci/store"
	"github.com/serpent-os/serpent-oci/stages"
)

func TestTagForNamesProfileAndCrossTarget(t *testing.T) {
	for _, tt := range []struct {
		profile, stage string
		target, output string
		want           string
	}{
		{"", "stage3", "linux/arm64", "linux/arm64", "stage3@linux-arm64"},
		{"small", "stage3", "linux/arm64", "linux/arm64", "stage3@linux-arm64"},
		{"", "stage1", "linux/arm64", "linux/amd64", "stage1-for-linux-arm64@linux-amd64"},
		{"full", "stage3", "linux/arm64", "linux/arm64", "full/stage3@linux-arm64"},
		{"full", "llvm", "linux/arm64", "linux/amd64", "full/llvm-for-linux-arm64@linux-amd64"},
		{"full", "stage1", "linux/amd64", "linux/amd64", "full/stage1@linux-amd64"},
	} {
		got := build.TagFor(tt.profile, tt.stage, platform.MustParse(tt.target), platform.MustParse(tt.output)).String()
		if got != tt.want {
			t.Errorf("TagFor(%q, %s, %s, %s) = %s, want %s", tt.profile, tt.stage, tt.target, tt.output, got, tt.want)
		}
	}
}

// TestFullProfilePlans: the full profile's chain (stage3 on stage3-llvm on stage3-base: the
// toolchain rebuilt natively, last) plans for both platforms on a store that has
// its seed (seed-full, mapped by profile.yaml): every stage, where it runs, how it is tagged.
func TestFullProfilePlans(t *testing.T) {
	set, err := stages.LoadProfile(stages.Embedded(), "full")
	if err != nil {
		t.Fatal(err)
	}
	st, err := store.Open(context.Background(), filepath.Join(t.TempDir(), "store"))
	if err != nil {
		t.Fatal(err)
	}
	host := platform.MustParse("linux/amd64")
	seed, err := image.Scratch(host, layer.DefaultSourceDateEpoch)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := st.WriteImage(context.Background(), seed, store.Ref{Name: "seed-full"}.WithPlatform(&host)); err != nil {
		t.Fatal(err)
	}
	steps, err := stepsOf(build.Plan(context.Background(), build.PlanOptions{Store: st, Set: set, Host: host,
		Platforms: []v1.Platform{host, platform.MustParse("linux/arm64")}}, "stage3"))
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, s := range steps {
		got = append(got, fmt.Sprintf("%s %s on %s (%s)", s.Name(), s.Tag, platform.String(s.RunsOn), s.Action))
	}
	want := []string{
		"seed-full seed-full@linux-amd64 on linux/amd64 (reuse)", // the store's, one for both
		"stage1 full/stage1@linux-amd64 on linux/amd64 (build)",
		"llvm full/llvm@linux-amd64 on linux/amd64 (build)",
		"stage2 full/stage2@linux-amd64 on linux/amd64 (build)",
		"stage2.5 full/stage2.5@linux-amd64 on linux/amd64 (build)",
		"stage3-base full/stage3-base@linux-amd64 on linux/amd64 (build)",
		"stage3-llvm full/stage3-llvm@linux-amd64 on linux/amd64 (build)",
		"stage3 full/stage3@linux-amd64 on linux/amd64 (build)",
		"stage1 full/stage1-for-linux-arm64@linux-amd64 on linux/amd64 (build)",
		"llvm full/llvm-for-linux-arm64@linux-amd64 on linux/amd64 (build)",
		"stage2 full/stage2@linux-arm64 on linux/amd64 (build)",
		"stage2.5 full/stage2.5@linux-arm64 on linux/arm64 (build)",
		"stage3-base full/stage3-base@linux-arm64 on linux/arm64 (build)",
		"stage3-llvm full/stage3-llvm@linux-arm64 on linux/arm64 (build)",
		"stage3 full/stage3@linux-arm64 on linux/arm64 (build)",
	}
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Errorf("plan:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
	if steps[1].Base != "seed-full@linux-amd64" {
		t.Errorf("the full profile's stage1 starts from %s, want seed-full", steps[1].Base)
	}

	// The accelerator for arm64 starts from the host's own stage1 (base-target: host), the
	// one the amd64 chain has, and is an image for the host.
	steps, err = stepsOf(build.Plan(context.Background(), build.PlanOptions{Store: st, Set: set, Host: host,
		Platforms: []v1.Platform{platform.MustParse("linux/arm64")}}, "llvm-accel"))
	if err != nil {
		t.Fatal(err)
	}
	got = got[:0]
	for _, s := range steps {
		got = append(got, fmt.Sprintf("%s %s for %s, base %s", s.Name(), s.Tag, platform.String(s.Target.Platform), s.Base))
	}
	want = []string{
		"seed-full seed-full@linux-amd64 for linux/amd64, base host packages",
		"stage1 full/stage1@linux-amd64 for linux/amd64, base seed-full@linux-amd64",
		"llvm-accel full/llvm-accel-for-linux-arm64@linux-amd64 for linux/arm64, base full/stage1@linux-amd64",
	}
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Errorf("plan of llvm-accel:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
}

// A cache that has every stage of the bootstrap, for two platforms at once: a plan on an empty
// store resolves the whole chain from manifests (the seed included: its key needs no image)
// and pulls the two stage3 images alone, reading no layer. No root, no container: the images
// in the cache are stand-ins carrying each stage's key, pushed as the plan asks for them.
func TestPlanResolvesACachedChainFromManifests(t *testing.T) {
	ctx := context.Background()
	host, layerGets := registrytest.InMemoryCountingBlobGets(t)
	client := registry.New(registry.Options{Keychain: authn.NewMultiKeychain()})
	repo, err := client.ParseRepository(host + "/serpent/cache")
	if err != nil {
		t.Fatal(err)
	}
	set, err := stages.LoadProfile(stages.Embedded(), stages.DefaultProfile)
	if err != nil {
		t.Fatal(err)
	}
	st, err := store.Open(ctx, filepath.Join(t.TempDir(), "store"))
	if err != nil {
		t.Fatal(err)
	}
	opts := build.PlanOptions{Store: st, Set: set, Host: platform.MustParse("linux/amd64"), Registry: client,
		Platforms: []v1.Platform{platform.MustParse("linux/amd64"), platform.MustParse("linux/arm64")},
		CacheFrom: []*registry.Cache{{Client: client, Repo: repo}}}
	sizes := map[string]int64{} // stand-in image sizes by tag
	for round := 0; ; round++ {
		steps, err := stepsOf(build.Plan(ctx, opts, "stage3"))
		if err != nil {
			t.Fatal(err)
		}
		var missing *build.Step
		for _, s := range steps {
			if s.Action == build.Build {
				missing = &s
				break
			}
		}
		if missing == nil {
			break
		}
		if missing.Key == "" || round > len(steps) {
			t.Fatalf("round %d: %s has no key (%s)", round, missing.Tag, missing.Reason)
		}
		sizes[missing.Tag.String()] = pushStandIn(t, client, repo, missing)
	}

	layerGets.Store(0)
	steps, err := stepsOf(build.Plan(ctx, opts, "stage3"))
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, s := range steps {
		got = append(got, s.Tag.String()+" "+string(s.Action))
		if s.Action == build.Pull && s.Download != sizes[s.Tag.String()] {
			t.Errorf("%s: plan says %d bytes to download, the image is %d", s.Tag, s.Download, sizes[s.Tag.String()])
		}
		if s.Action == build.Resolve && s.Download != 0 {
			t.Errorf("%s: resolved, yet %d bytes to download", s.Tag, s.Download)
		}
	}
	want := []string{
		"seed@linux-amd64 resolve", // one for both platforms
		"stage1@linux-amd64 resolve", "stage2@linux-amd64 resolve", "stage2.5@linux-amd64 resolve", "stage3@linux-amd64 pull",
		"stage1-for-linux-arm64@linux-amd64 resolve", "stage2@linux-arm64 resolve", "stage2.5@linux-arm64 resolve", "stage3@linux-arm64 pull",
	}
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Errorf("plan from a complete cache:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
	// Blob reads: the configs alone (one per stage image: its platform is checked).
	if n := layerGets.Load(); n > int64(len(steps)) {
		t.Errorf("the plan read %d blobs, more than the %d stage configs", n, len(steps))
	}
	// Rebuilding stage3 needs stage2.5's image for each platform: those are pulled now.
	opts.Rebuild = []string{"stage3"}
	steps, err = stepsOf(build.Plan(ctx, opts, "stage3"))
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range steps {
		want := build.Resolve
		switch s.Name() {
		case "stage2.5":
			want = build.Pull
		case "stage3":
			want = build.Build
		}
		if s.Action != want {
			t.Errorf("--rebuild stage3: %s is %s, want %s", s.Tag, s.Action, want)
		}
	}
}

// pushStandIn pushes a small image to the cache as s's image: the platform s makes and s's key.
// It returns what pulling it downloads (manifest, config, layer).
func pushStandIn(t *testing.T, client *registry.Client, repo name.Repository, s *build.Step) int64 {
	t.Helper()
	img, err := random.Image(512, 1)
	if err != nil {
		t.Fatal(err)
	}
	cfg, err := img.ConfigFile()
	if err != nil {
		t.Fatal(err)
	}
	cfg = cfg.DeepCopy()
	cfg.OS, cfg.Architecture, cfg.Variant = s.Output.OS, s.Output.Architecture, s.Output.Variant
	if img, err = mutate.ConfigFile(img, cfg); err != nil {
		t.Fatal(err)
	}
	img = mutate.Annotations(img, map[string]string{build.AnnotationKey: s.Key}).(v1.Image)
	if _, err := client.Push(context.Background(), img, repo.Tag(registry.CacheTag(s.Name(), s.Key)), registry.PushOptions{}); err != nil {
		t.Fatal(err)
	}
	raw, _ := img.RawManifest()
	m, _ := img.Manifest()
	n := int64(len(raw)) + m.Config.Size
	for _, l := range m.Layers {
		n += l.Size
	}
	return n
}
