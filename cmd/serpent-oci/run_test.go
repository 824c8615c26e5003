package main

import (
	"bytes"
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/serpent-os/serpent-oci/builder/buildertest"
	"github.com/serpent-os/serpent-oci/builder/rootfs"
	"github.com/serpent-os/serpent-oci/builder/runc"
	"github.com/serpent-os/serpent-oci/oci/store"
	"github.com/serpent-os/serpent-oci/oci/testenv"
)

type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

func busyboxStore(t *testing.T) string {
	t.Helper()
	buildertest.RequireRunc(t)
	dir := filepath.Join(t.TempDir(), "store")
	st, err := store.Open(context.Background(), dir)
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range buildertest.Platforms {
		buildertest.Busybox(t, st, p)
	}
	return dir
}

func TestRunCommand(t *testing.T) {
	storeDir := busyboxStore(t)
	code, stdout, stderr := cli(t, "--store", storeDir, "run", "busybox", "--platform", "linux/arm64", "--commit", "hello", "--", "sh", "-c", "uname -m; echo hi > /hello")
	if code != 0 || !strings.Contains(stderr, "busybox | aarch64") || !strings.Contains(stdout, "hello@linux-arm64 sha256:") {
		t.Fatalf("run --commit: exit %d\nstdout: %s\nstderr: %s", code, stdout, stderr)
	}
	code, _, stderr = cli(t, "--store", storeDir, "run", "hello", "--", "cat", "/hello")
	if code != 0 || !strings.Contains(stderr, "hello | hi") {
		t.Fatalf("run in the committed image: exit %d\n%s", code, stderr)
	}
	code, _, stderr = cli(t, "--store", storeDir, "run", "busybox@amd64", "--", "sh", "-c", "exit 7")
	if code != 1 || !strings.Contains(stderr, "exited with status 7") {
		t.Fatalf("failing run: exit %d\n%s", code, stderr)
	}
	if code, _, stderr = cli(t, "--store", storeDir, "run", "busybox@amd64"); code != 2 {
		t.Fatalf("run without a command: exit %d\n%s", code, stderr)
	}
}

// TestRunKilledOrInterrupted kills serpent-oci (SIGKILL) and interrupts it (SIGINT) in the
// middle of a run: nothing is tagged, and after the next start no mount or container of ours
// is left and fsck passes.
func TestRunKilledOrInterrupted(t *testing.T) {
	storeDir := busyboxStore(t)
	for _, sig := range []syscall.Signal{syscall.SIGKILL, syscall.SIGINT} {
		t.Run(sig.String(), func(t *testing.T) {
			var out lockedBuffer
			cmd := exec.Command(binary, "--store", storeDir, "run", "busybox@arm64", "--commit", "never", "--", "sh", "-c", "echo started; sleep 60")
			cmd.Stdout, cmd.Stderr = &out, &out
			if err := cmd.Start(); err != nil {
				t.Fatal(err)
			}
			deadline := time.Now().Add(30 * time.Second)
			for !strings.Contains(out.String(), "busybox | started") && time.Now().Before(deadline) {
				time.Sleep(20 * time.Millisecond)
			}
			start := time.Now()
			if err := cmd.Process.Signal(sig); err != nil {
				t.Fatal(err)
			}
			err := cmd.Wait()
			if err == nil {
				t.Fatalf("serpent-oci succeeded after %v:\n%s", sig, out.String())
			}
			if sig == syscall.SIGINT {
				if code := cmd.ProcessState.ExitCode(); code != 1 || time.Since(start) > 15*time.Second {
					t.Fatalf("interrupted run exited %d after %v:\n%s", code, time.Since(start), out.String())
				}
			}
			// The next start cleans up after a killed run.
			if code, _, stderr := cli(t, "--store", storeDir, "run", "busybox@amd64", "--", "true"); code != 0 {
				t.Fatalf("next run: %s", stderr)
			}
			mounts, _ := rootfs.MountsUnder(storeDir)
			rt := &runc.Runtime{StateDir: filepath.Join(storeDir, ".serpent", "runc")}
			ids, _ := rt.List(context.Background())
			if len(mounts) > 0 || len(ids) > 0 {
				t.Fatalf("left after %v and a new start: mounts %v, containers %v", sig, mounts, ids)
			}
			if code, _, _ := cli(t, "--store", storeDir, "inspect", "never"); code != 1 {
				t.Fatalf("the run's image was tagged")
			}
			fsckClean(t, storeDir)
		})
	}
}

// TestEntriesOtherToolsWrite: an image skopeo writes into the store (ref.name without a
// platform, no platform in index.json) is listed as the image it is, and run, inspect, export
// and --platform take it by the platform its config names.
func TestEntriesOtherToolsWrite(t *testing.T) {
	testenv.RequireTools(t, "skopeo")
	storeDir := busyboxStore(t)
	if out, err := exec.Command("skopeo", "copy", "-q", "oci:"+storeDir+":busybox@linux-arm64", "oci:"+storeDir+":plain").CombinedOutput(); err != nil {
		t.Fatalf("skopeo copy: %v\n%s", err, out)
	}
	_, stdout, _ := cli(t, "--store", storeDir, "images")
	if !regexp.MustCompile(`(?m)^plain +linux/arm64 +sha256:`).MatchString(stdout) {
		t.Errorf("images does not list plain as a linux/arm64 image:\n%s", stdout)
	}
	export := filepath.Join(t.TempDir(), "plain.tar")
	for _, tc := range []struct {
		args    []string
		code    int
		wantOut string
	}{
		{[]string{"run", "plain", "--", "uname", "-m"}, 0, "plain | aarch64"},
		{[]string{"run", "plain", "--platform", "linux/arm64", "--", "uname", "-m"}, 0, "plain | aarch64"},
		{[]string{"run", "plain", "--platform", "linux/amd64", "--", "true"}, 1, "tag plain@linux-amd64: not found"},
		{[]string{"inspect", "plain@linux/arm64"}, 0, "linux/arm64"},
		{[]string{"export", "plain", "-o", export}, 0, ""},
		{[]string{"push", "plain", "127.0.0.1:1/x:y", "--platform", "linux/amd64"}, 1, "tag plain@linux-amd64: not found"},
	} {
		code, stdout, stderr := cli(t, append([]string{"--store", storeDir}, tc.args...)...)
		if code != tc.code || !strings.Contains(stdout+stderr, tc.wantOut) {
			t.Errorf("%v: exit %d, want %d and %q\nstdout: %s\nstderr: %s", tc.args, code, tc.code, tc.wantOut, stdout, stderr)
		}
	}
	if fi, err := os.Stat(export); err != nil || fi.Size() == 0 {
		t.Errorf("export of plain: %v", err)
	}
}
