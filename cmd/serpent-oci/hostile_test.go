package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/serpent-os/serpent-oci/oci/testenv"
	"golang.org/x/sys/unix"
)

// TestStagesDirIsReadAsARoot: --stages DIR whose script is a symlink to a host file is refused
// naming the script; the file is never read into a build.
func TestStagesDirIsReadAsARoot(t *testing.T) {
	dir, host := t.TempDir(), t.TempDir()
	secret := filepath.Join(host, "shadow")
	files := map[string]string{
		"targets.yaml": "linux/arm64:\n  arch: aarch64\n  triple: aarch64-serpent-linux-musl\n",
		"one.yaml":     "from: image:busybox\nruns-on: host\noutput: layer\nplatforms: [linux/arm64]\nscript: one.sh\n",
	}
	for name, body := range files {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.WriteFile(secret, []byte("root:secret"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(secret, filepath.Join(dir, "one.sh")); err != nil {
		t.Fatal(err)
	}
	code, _, stderr := cli(t, "--store", filepath.Join(t.TempDir(), "store"), "plan", "one", "--stages", dir, "--platform", "linux/arm64")
	want := "--stages " + dir + ": one.yaml:5: script: one.sh: a symlink that leads out of the recipe set: refused"
	if code != 1 || !strings.Contains(stderr, want) {
		t.Fatalf("plan with a symlinked script: exit %d\n%s\nwant: %s", code, stderr, want)
	}
	if code, _, stderr := cli(t, "plan", "one", "--stages", filepath.Join(dir, "missing")); code != 1 || !strings.Contains(stderr, "--stages "+filepath.Join(dir, "missing")) {
		t.Errorf("a missing --stages directory: exit %d, %s", code, stderr)
	}
}

// TestReadingCommandsWriteNothing: images, inspect, export and fsck on a mistyped store path
// say so and create nothing; on an empty directory they find nothing and write nothing.
func TestReadingCommandsWriteNothing(t *testing.T) {
	missing := filepath.Join(t.TempDir(), "typo")
	// images lists nothing there (TestImagesOnAMissingStore); the rest need a store.
	for _, args := range [][]string{{"fsck"}, {"inspect", "x@linux/amd64"}, {"export", "x@linux/amd64", "-o", filepath.Join(t.TempDir(), "x.tar")}} {
		code, _, stderr := cli(t, append([]string{"--store", missing}, args...)...)
		if code != 1 || !strings.Contains(stderr, "store "+missing+" does not exist") {
			t.Errorf("%v on a missing store: exit %d, %s", args, code, stderr)
		}
		if _, err := os.Stat(missing); !os.IsNotExist(err) {
			t.Fatalf("%v created the store: %v", args, err)
		}
	}
	empty := t.TempDir()
	if code, out, stderr := cli(t, "--store", empty, "images"); code != 0 || strings.Count(out, "\n") != 1 {
		t.Errorf("images on an empty directory: exit %d\n%s%s", code, out, stderr)
	}
	if entries, _ := os.ReadDir(empty); len(entries) != 0 {
		t.Errorf("images wrote %v into an empty directory", entries)
	}
}

// TestReadOnlyStore: a store on a read-only mount can be listed, inspected, exported and
// checked; only writers need to write.
func TestReadOnlyStore(t *testing.T) {
	testenv.RequireRoot(t)
	storeDir := filepath.Join(t.TempDir(), "store")
	src := t.TempDir()
	testenv.Fixture(t, src)
	if code, _, stderr := cli(t, "--store", storeDir, "import", src, "--tag", "fixture", "--platform", "linux/amd64"); code != 0 {
		t.Fatal(stderr)
	}
	ro := filepath.Join(t.TempDir(), "ro")
	if err := os.Mkdir(ro, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := unix.Mount(storeDir, ro, "", unix.MS_BIND, ""); err != nil {
		t.Fatal(err)
	}
	defer unix.Unmount(ro, unix.MNT_DETACH)
	if err := unix.Mount("", ro, "", unix.MS_BIND|unix.MS_REMOUNT|unix.MS_RDONLY, ""); err != nil {
		t.Fatal(err)
	}
	out := filepath.Join(t.TempDir(), "fixture.tar")
	for _, args := range [][]string{{"images"}, {"inspect", "fixture@linux/amd64"}, {"export", "fixture@linux/amd64", "-o", out}, {"fsck"}} {
		if code, _, stderr := cli(t, append([]string{"--store", ro}, args...)...); code != 0 {
			t.Errorf("%v on a read-only store: exit %d\n%s", args, code, stderr)
		}
	}
	if fi, err := os.Stat(out); err != nil || fi.Size() == 0 {
		t.Errorf("export from a read-only store: %v", err)
	}
}
