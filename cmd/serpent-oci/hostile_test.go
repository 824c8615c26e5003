package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
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
