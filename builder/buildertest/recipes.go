package buildertest

import (
	"crypto/sha256"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"testing"

	"github.com/serpent-os/serpent-oci/oci/testenv"
)

// RepoRoot is the root of the serpent-oci source tree.
func RepoRoot() string {
	_, file, _, _ := runtime.Caller(0)
	return filepath.Join(filepath.Dir(file), "..", "..")
}

// RecipeSet copies the test recipe set (stages/testdata/busybox) to a new directory and makes
// its source mirror: greeting.txt and the arm64 busybox binary, whose digest it writes into
// target-root.yaml (see stages/testdata/README.md). It returns the set's and the mirror's
// directories.
func RecipeSet(t testing.TB) (set, mirror string) {
	t.Helper()
	testdata := filepath.Join(RepoRoot(), "stages", "testdata")
	set, mirror = filepath.Join(t.TempDir(), "stages"), filepath.Join(t.TempDir(), "mirror")
	if err := os.MkdirAll(mirror, 0o755); err != nil {
		t.Fatal(err)
	}
	greeting, err := os.ReadFile(filepath.Join(testdata, "busybox-mirror", "greeting.txt"))
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(mirror, "greeting.txt"), greeting, 0o644); err != nil {
		t.Fatal(err)
	}
	bb := busyboxBinary(t, "arm64")
	if err := os.WriteFile(filepath.Join(mirror, "busybox-aarch64"), bb, 0o755); err != nil {
		t.Fatal(err)
	}
	sum := fmt.Sprintf("%x", sha256.Sum256(bb))
	err = filepath.WalkDir(filepath.Join(testdata, "busybox"), func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		b, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		b = []byte(strings.ReplaceAll(string(b), "@BUSYBOX_AARCH64_SHA256@", sum))
		dst := filepath.Join(set, strings.TrimPrefix(p, filepath.Join(testdata, "busybox")))
		if err := os.MkdirAll(filepath.Dir(dst), 0o755); err != nil {
			return err
		}
		return os.WriteFile(dst, b, 0o644)
	})
	if err != nil {
		t.Fatal(err)
	}
	return set, mirror
}

func busyboxBinary(t testing.TB, arch string) []byte {
	t.Helper()
	debs, _ := filepath.Glob(filepath.Join(TestdataDir(), "busybox-static_*_"+arch+".deb"))
	testenv.Require(t, len(debs) == 1, "Debian's busybox-static for "+arch+" in "+TestdataDir())
	x := t.TempDir()
	if out, err := exec.Command("dpkg-deb", "-x", debs[0], x).CombinedOutput(); err != nil {
		t.Fatalf("dpkg-deb -x %s: %v\n%s", debs[0], err, out)
	}
	b, err := os.ReadFile(filepath.Join(x, "bin", "busybox"))
	if err != nil {
		t.Fatal(err)
	}
	return b
}
