package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/serpent-os/serpent-oci/builder/buildertest"
)

func TestSpinCommand(t *testing.T) {
	buildertest.RequireRunc(t)
	storeDir, _ := hostBusyboxStore(t)
	dir := t.TempDir()
	def := filepath.Join(dir, "tiny.yaml")
	if err := os.WriteFile(filepath.Join(dir, "note"), []byte("a note\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(def, []byte("from: busybox\nsteps:\n  - copy: note\n    to: /etc/note\n  - run: grep -q 'a note' /etc/note\n  - cmd: [cat, /etc/note]\n"), 0o644); err != nil {
		t.Fatal(err)
	}

	code, out, stderr := cli(t, "--store", storeDir, "spin", "build", def, "--platform", "linux/amd64")
	if code != 0 || !strings.Contains(out, "tiny@linux-amd64") || !strings.Contains(out, "busybox@sha256:") ||
		!strings.Contains(stderr, "[linux/amd64] step 2/3 run grep -q 'a note' /etc/note: done") {
		t.Fatalf("spin build: exit %d\n%s%s", code, out, stderr)
	}
	code, out, stderr = cli(t, "--store", storeDir, "build", "--spin", def, "--platform", "linux/amd64")
	if code != 0 || !strings.Contains(stderr, "step 1/3 copy note /etc/note: reused") {
		t.Fatalf("build --spin, again: exit %d\n%s%s", code, out, stderr)
	}
	os.WriteFile(def, []byte("from: busybox\nsteps:\n  - copy: note\n    to: /etc/note\n  - apt: vim\n"), 0o644)
	code, _, stderr = cli(t, "--store", storeDir, "spin", "build", def)
	if code != 1 || !strings.Contains(stderr, def+":5: steps[1]: unknown step kind") {
		t.Fatalf("spin build of a bad definition: exit %d\n%s", code, stderr)
	}
}
