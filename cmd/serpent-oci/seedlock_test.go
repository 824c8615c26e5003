package main

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/serpent-os/serpent-oci/builder/build"
	"github.com/serpent-os/serpent-oci/oci/image"
	"github.com/serpent-os/serpent-oci/oci/layer"
	"github.com/serpent-os/serpent-oci/oci/platform"
	"github.com/serpent-os/serpent-oci/oci/store"
)

// TestSeedLockCommands: seed-lock prints (or writes) the lock stored beside a seed; plan with
// --seed-lock reuses a seed of the lock's versions and makes one of other versions again; a
// bad lock file is an error naming it and its field.
func TestSeedLockCommands(t *testing.T) {
	ctx := context.Background()
	storeDir := filepath.Join(t.TempDir(), "store")
	st, err := store.Open(ctx, storeDir)
	if err != nil {
		t.Fatal(err)
	}
	host := platform.Host()
	seed, err := image.Scratch(host, layer.DefaultSourceDateEpoch)
	if err != nil {
		t.Fatal(err)
	}
	seed = mutate.Annotations(seed, map[string]string{build.AnnotationInstalled: "clang-14=1:14.0.6-12=amd64,zlib1g=1:1.2.13.dfsg-1=amd64"}).(v1.Image)
	d, err := st.WriteImage(ctx, seed, store.Ref{Name: "seed"}.WithPlatform(&host))
	if err != nil {
		t.Fatal(err)
	}
	code, _, stderr := cli(t, "--store", storeDir, "seed-lock")
	if code != 1 || !strings.Contains(stderr, "has no seed lock in the store") {
		t.Fatalf("seed-lock of a seed without one: exit %d\n%s", code, stderr)
	}
	lock := `{
  "suite": "bookworm",
  "packages": [
    {"name": "clang-14", "version": "1:14.0.6-12", "architecture": "amd64", "sha256": "` + strings.Repeat("2", 64) + `"},
    {"name": "zlib1g", "version": "1:1.2.13.dfsg-1", "architecture": "amd64", "sha256": "` + strings.Repeat("1", 64) + `"}
  ]
}`
	if _, err := st.WriteReferrer(ctx, d, build.SeedLockMediaType, build.SeedLockMediaType, []byte(lock), nil); err != nil {
		t.Fatal(err)
	}
	code, out, stderr := cli(t, "--store", storeDir, "seed-lock")
	if code != 0 || out != lock+"\n" {
		t.Fatalf("seed-lock: exit %d\n%s%s", code, out, stderr)
	}
	file := filepath.Join(t.TempDir(), "seed.lock")
	if code, _, stderr := cli(t, "--store", storeDir, "seed-lock", "-o", file); code != 0 {
		t.Fatalf("seed-lock -o: exit %d\n%s", code, stderr)
	}
	if b, _ := os.ReadFile(file); string(b) != lock+"\n" {
		t.Fatalf("seed-lock -o wrote %q", b)
	}

	// The embedded seed recipe installs more than these two: the plan reads the store's
	// seed against the lock only (what mmdebstrap is asked for is the build's, tested there).
	code, out, stderr = cli(t, "--store", storeDir, "plan", "stage1", "--seed-lock", file)
	if code != 0 || !strings.Contains(out, "seed    "+platform.String(host)) || !strings.Contains(out, "reuse   -         -         in the store") {
		t.Fatalf("plan with the seed's lock: exit %d\n%s%s", code, out, stderr)
	}
	older := filepath.Join(t.TempDir(), "older.lock")
	if err := os.WriteFile(older, []byte(strings.Replace(lock, "1:14.0.6-12", "1:14.0.6-11", 1)), 0o644); err != nil {
		t.Fatal(err)
	}
	code, out, stderr = cli(t, "--store", storeDir, "plan", "stage1", "--seed-lock", older)
	if code != 0 || !strings.Contains(out, "the store's holds other versions than --seed-lock "+older) {
		t.Fatalf("plan with another lock: exit %d\n%s%s", code, out, stderr)
	}
	bad := filepath.Join(t.TempDir(), "bad.lock")
	if err := os.WriteFile(bad, []byte(strings.Replace(lock, `"zlib1g"`, `"-o/tmp/x"`, 1)), 0o644); err != nil {
		t.Fatal(err)
	}
	code, _, stderr = cli(t, "--store", storeDir, "plan", "stage1", "--seed-lock", bad)
	if code != 1 || !strings.Contains(stderr, "seed lock "+bad+`: packages[1].name "-o/tmp/x" is not a Debian package name`) {
		t.Fatalf("plan with a bad lock: exit %d\n%s", code, stderr)
	}
	code, _, stderr = cli(t, "--store", storeDir, "plan", "stage1", "--seed-lock", filepath.Join(t.TempDir(), "missing.lock"))
	if code != 1 || !strings.Contains(stderr, "--seed-lock: open ") {
		t.Fatalf("plan with a missing lock: exit %d\n%s", code, stderr)
	}
}
