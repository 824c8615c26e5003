package build_test

import (
	"testing"

	"github.com/serpent-os/serpent-oci/builder/build"
	"github.com/serpent-os/serpent-oci/oci/platform"
)

func TestTagForNamesProfileAndCrossTarget(t *testing.T) {
	for _, tt := range []struct {
		profile, stage string
		target, output string
		want           string
	}{
		{"", "stage3", "linux/arm64", "linux/arm64", "stage3@linux/arm64"},
		{"small", "stage3", "linux/arm64", "linux/arm64", "stage3@linux/arm64"},
		{"", "stage1", "linux/arm64", "linux/amd64", "stage1-for-linux-arm64@linux/amd64"},
		{"full", "stage3", "linux/arm64", "linux/arm64", "full/stage3@linux/arm64"},
		{"full", "llvm", "linux/arm64", "linux/amd64", "full/llvm-for-linux-arm64@linux/amd64"},
		{"full", "stage1", "linux/amd64", "linux/amd64", "full/stage1@linux/amd64"},
	} {
		got := build.TagFor(tt.profile, tt.stage, platform.MustParse(tt.target), platform.MustParse(tt.output)).String()
		if got != tt.want {
			t.Errorf("TagFor(%q, %s, %s, %s) = %s, want %s", tt.profile, tt.stage, tt.target, tt.output, got, tt.want)
		}
	}
}
