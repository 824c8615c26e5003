package main

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/serpent-os/serpent-oci/builder/buildertest"
	"github.com/serpent-os/serpent-oci/oci/store"
	"github.com/serpent-os/serpent-oci/oci/testenv"
)

// TestExportRunsUnderPodman: an image of two platforms exported as an oci-archive runs under
// podman, each platform's image for its --platform (arm64 through the qemu binfmt entry that
// serpent-oci registers), with podman's own store in the test's directory and no network.
func TestExportRunsUnderPodman(t *testing.T) {
	buildertest.RequireRunc(t)
	testenv.RequireTools(t, "podman")
	dir := t.TempDir()
	storeDir := filepath.Join(dir, "store")
	st, err := store.Open(context.Background(), storeDir)
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range buildertest.Platforms {
		buildertest.Busybox(t, st, p)
	}
	// serpent-oci's own run of the arm64 image registers qemu with binfmt_misc (the F flag),
	// which podman's run of it then uses.
	if code, _, stderr := cli(t, "--store", storeDir, "run", "busybox", "--platform", "linux/arm64", "--", "true"); code != 0 {
		t.Fatalf("run busybox for linux/arm64: %s", stderr)
	}
	archive := filepath.Join(dir, "busybox.oci.tar")
	if code, _, stderr := cli(t, "--store", storeDir, "export", "busybox", "--format", "oci-archive", "-o", archive); code != 0 {
		t.Fatalf("export: %s", stderr)
	}
	// podman wants its run root under 50 characters: a t.TempDir is longer.
	runRoot, err := os.MkdirTemp("", "podman-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(runRoot) })
	podman := []string{"--root", filepath.Join(dir, "podman"), "--runroot", runRoot,
		"--storage-driver", "vfs", "--cgroup-manager", "cgroupfs", "--events-backend", "none"}
	// Limits within the sandbox's own: podman's defaults raise them, which needs
	// CAP_SYS_RESOURCE (a CI sandbox may not grant it).
	limits := []string{"--ulimit", "nofile=1024:1024", "--ulimit", "nproc=1024:1024"}
	for _, tc := range []struct{ platform, machine string }{{"linux/amd64", "x86_64"}, {"linux/arm64", "aarch64"}} {
		args := append(append(append([]string{}, podman...), "run", "--rm", "--network", "none", "--platform", tc.platform), limits...)
		args = append(args, "oci-archive:"+archive, "/bin/busybox", "uname", "-m")
		out, err := exec.Command("podman", args...).CombinedOutput()
		lines := strings.Split(strings.TrimSpace(string(out)), "\n")
		if err != nil || lines[len(lines)-1] != tc.machine {
			t.Errorf("podman run --platform %s: %v, want %s last\n%s", tc.platform, err, tc.machine, out)
		}
	}
}
