package build_test

import (
	"context"
	"fmt"
	"path/filepath"
	"strings"
	"testing"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/serpent-os/serpent-oci/builder/build"
	"github.com/serpent-os/serpent-oci/oci/image"
	"github.com/serpent-os/serpent-oci/oci/layer"
	"github.com/serpent-os/serpent-oci/oci/platform"
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

// TestFullProfilePlans: the full profile's chain plans for both platforms on a store that has
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
	steps, err := build.Plan(context.Background(), build.PlanOptions{Store: st, Set: set, Host: host,
		Platforms: []v1.Platform{host, platform.MustParse("linux/arm64")}}, "stage3")
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
		"stage3 full/stage3@linux-amd64 on linux/amd64 (build)",
		"stage1 full/stage1-for-linux-arm64@linux-amd64 on linux/amd64 (build)",
		"llvm full/llvm-for-linux-arm64@linux-amd64 on linux/amd64 (build)",
		"stage2 full/stage2@linux-arm64 on linux/amd64 (build)",
		"stage2.5 full/stage2.5@linux-arm64 on linux/arm64 (build)",
		"stage3 full/stage3@linux-arm64 on linux/arm64 (build)",
	}
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Errorf("plan:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
	if steps[1].Base != "seed-full@linux-amd64" {
		t.Errorf("the full profile's stage1 starts from %s, want seed-full", steps[1].Base)
	}
}
