package build_test

import (
	"strings"
	"testing"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/serpent-os/serpent-oci/builder/build"
	"github.com/serpent-os/serpent-oci/stages"
)

func TestSeedDifferencesAsPackageVersions(t *testing.T) {
	want := "base-files=12.4+deb12u8=amd64,gcc-12=12.2.0-14=amd64,libc6=2.36-9+deb12u8=amd64,tzdata=2024a-0+deb12u1=all"
	got := "base-files=12.4+deb12u8=amd64,libc6=2.36-9+deb12u9=amd64,make=4.3-4.1=amd64,tzdata=2024b-0+deb12u1=all"
	var lines []string
	for _, c := range build.PackageChanges(want, got) {
		lines = append(lines, c.String())
	}
	wantLines := []string{
		"gcc-12 12.2.0-14 (amd64) (only in this one)",
		"libc6 2.36-9+deb12u8 (amd64) -> 2.36-9+deb12u9 (amd64)",
		"make 4.3-4.1 (amd64) (only in the other)",
		"tzdata 2024a-0+deb12u1 -> 2024b-0+deb12u1",
	}
	if strings.Join(lines, "\n") != strings.Join(wantLines, "\n") {
		t.Errorf("changes:\n%s\nwant:\n%s", strings.Join(lines, "\n"), strings.Join(wantLines, "\n"))
	}
	if c := build.PackageChanges(want, want); len(c) != 0 {
		t.Errorf("the same packages: %v", c)
	}
	var b strings.Builder
	v := build.Verification{Step: &build.Step{Vertex: &build.Vertex{Recipe: &stages.Recipe{Name: "seed"}}}, Packages: build.PackageChanges(want, got)}
	v.Want.Digest, v.Got.Digest = v1.Hash{Algorithm: "sha256", Hex: strings.Repeat("a", 64)}, v1.Hash{Algorithm: "sha256", Hex: strings.Repeat("b", 64)}
	v.Report(&b)
	for _, line := range []string{"seed for /: NOT reproducible", "  4 Debian packages differ (the archive served other versions):\n    gcc-12 12.2.0-14 (amd64) (only in this one)\n"} {
		if !strings.Contains(b.String(), line) {
			t.Errorf("report lacks %q:\n%s", line, b.String())
		}
	}
}
