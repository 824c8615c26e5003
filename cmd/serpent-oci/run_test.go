package main

import (
	"bytes"
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/serpent-os/serpent-oci/builder/buildertest"
	"github.com/serpent-os/serpent-oci/builder/rootfs"
	"github.com/serpent-os/serpent-oci/builder/runc"
	"github.com/serpent-os/serpent-oci/oci/platform"
	"github.com/serpent-os/serpent-oci/oci/store"
	"github.com/serpent-os/serpent-oci/oci/testenv"
)

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
	// As podman run: the command's stdout and stderr are ours, apart and unprefixed.
	code, stdout, stderr := cli(t, "--store", storeDir, "run", "busybox", "--platform", "linux/arm64", "--commit", "hello", "--", "sh", "-c", "uname -m; echo to-stderr >&2; echo hi > /hello")
	if code != 0 || stdout != "aarch64\n" || !strings.Contains(stderr, "to-stderr\n") || strings.Contains(stderr, "busybox | ") ||
		!strings.Contains(stderr, "hello@linux-arm64 sha256:") {
		t.Fatalf("run --commit: exit %d\nstdout: %q\nstderr: %s", code, stdout, stderr)
	}
	code, stdout, stderr = cli(t, "--store", storeDir, "run", "hello", "--", "cat", "/hello")
	if code != 0 || stdout != "hi\n" {
		t.Fatalf("run in the committed image: exit %d\n%s%s", code, stdout, stderr)
	}
	// A tag of several parts (as a profile's, full/stage3) names its run's log file too.
	if code, _, stderr = cli(t, "--store", storeDir, "tag", "hello", "team/hello"); code != 0 {
		t.Fatal(stderr)
	}
	if code, stdout, stderr = cli(t, "--store", storeDir, "run", "team/hello", "--", "cat", "/hello"); code != 0 || stdout != "hi\n" {
		t.Fatalf("run team/hello: exit %d\n%s%s", code, stdout, stderr)
	}
	tests := []struct {
		name   string
		args   []string
		code   int
		stderr string
	}{
		{"the command's own status", []string{"busybox@amd64", "--", "sh", "-c", "exit 7"}, 7, ""},
		{"no command and no cmd in the image", []string{"busybox@amd64"}, 125, "no command: the image has no entrypoint or cmd"},
		{"no such image", []string{"nothing", "--", "true"}, 125, "tag nothing: not found"},
		{"a bad flag", []string{"busybox@amd64", "--bogus", "--", "true"}, 125, "unknown flag: --bogus"},
		{"a bad network", []string{"busybox@amd64", "--network=bridge", "--", "true"}, 125, "want none or host"},
		{"--network takes its value, never the image", []string{"--network", "slirp4netns", "busybox@amd64", "--", "true"}, 125, `--network "slirp4netns": want none or host`},
		{"--network before the image", []string{"busybox@amd64", "--network", "slirp4netns", "--", "true"}, 125, `--network "slirp4netns": want none or host`},
		{"no such user", []string{"busybox@amd64", "-u", "nobody-here", "--", "true"}, 125, `no such user in the image's /etc/passwd`},
		{"no such command", []string{"busybox@amd64", "--", "nosuchcmd", "x"}, 127, "nosuchcmd: command not found in the image (PATH "},
		{"no such file", []string{"busybox@amd64", "--", "/no/such"}, 127, "/no/such: no such file in the image"},
		{"a directory", []string{"busybox@amd64", "--", "/etc"}, 126, "/etc: /etc is a directory"},
		{"not executable", []string{"busybox@amd64", "-w", "/etc", "--", "./motd"}, 126, "/etc/motd is not executable"},
		{"a terminal without one", []string{"busybox@amd64", "-t", "--", "true"}, 125, "run -t: standard input is not a terminal"},
	}
	for _, tt := range tests {
		code, _, stderr := cli(t, append([]string{"--store", storeDir, "run"}, tt.args...)...)
		if code != tt.code || !strings.Contains(stderr, tt.stderr) || (tt.stderr == "" && stderr != "") {
			t.Errorf("%s: exit %d, want %d; stderr %q, want %q", tt.name, code, tt.code, stderr, tt.stderr)
		}
	}
}

// TestRunHonoursTheImageConfig: entrypoint, cmd, env, working directory and user come from the
// image unless the command line overrides them; -i passes standard input; --network host
// shares the host's network.
func TestRunHonoursTheImageConfig(t *testing.T) {
	storeDir := busyboxStore(t)
	code, _, stderr := cli(t, "--store", storeDir, "run", "busybox@amd64", "--commit", "configured", "--", "sh", "-c",
		"mkdir -p /srv/app && echo 'app:x:1000:1001::/srv/app:/bin/sh' >> /etc/passwd && echo 'staff:x:50:' >> /etc/group")
	if code != 0 {
		t.Fatalf("commit: %s", stderr)
	}
	st, err := store.Open(context.Background(), storeDir)
	if err != nil {
		t.Fatal(err)
	}
	img, _, err := st.Image(store.Ref{Name: "configured"})
	if err != nil {
		t.Fatal(err)
	}
	cfg, _ := img.ConfigFile()
	cfg = cfg.DeepCopy()
	cfg.Config.Entrypoint = []string{"/bin/sh", "-c"}
	cfg.Config.Cmd = []string{`echo "$GREETING from $(pwd) as $(id -u):$(id -g)"`}
	cfg.Config.Env = append(cfg.Config.Env, "GREETING=hello")
	cfg.Config.WorkingDir = "/srv/app"
	cfg.Config.User = "app"
	img, err = mutate.ConfigFile(img, cfg)
	if err != nil {
		t.Fatal(err)
	}
	amd64 := platform.MustParse("linux/amd64")
	if _, err := st.WriteImage(context.Background(), img, store.Ref{Name: "app"}.WithPlatform(&amd64)); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name  string
		args  []string
		stdin string
		want  string
	}{
		{"the image's entrypoint, cmd, env, workdir and user", nil, "", "hello from /srv/app as 1000:1001\n"},
		{"a command replaces the cmd", []string{"--", "echo $GREETING"}, "", "hello\n"},
		{"-e, -w and -u override", []string{"-e", "GREETING=hi", "-w", "/tmp", "-u", "0:staff"}, "", "hi from /tmp as 0:50\n"},
		{"numeric user", []string{"-u", "4242"}, "", "hello from /srv/app as 4242:0\n"},
		{"--entrypoint replaces the entrypoint", []string{"--entrypoint", "/bin/echo", "--", "plain", "words"}, "", "plain words\n"},
		{"-i passes standard input", []string{"-i", "--entrypoint", "/bin/cat"}, "from stdin\n", "from stdin\n"},
		{"no stdin without -i", []string{"--entrypoint", "/bin/cat"}, "from stdin\n", ""},
		{"--network host", []string{"--network", "host", "--entrypoint", "/bin/sh", "--", "-c", "ls /sys/class/net | grep -vx lo | head -n 1 | grep -q . && echo shared"}, "", "shared\n"},
		{"-e KEY passes the caller's value", []string{"-e", "SERPENT_TEST_FROM_CALLER", "-e", "SERPENT_TEST_UNSET", "--rm", "--entrypoint", "/bin/sh", "--", "-c", "echo \"$SERPENT_TEST_FROM_CALLER ${SERPENT_TEST_UNSET-unset}\""}, "", "from the caller unset\n"},
		{"no network by default", []string{"--entrypoint", "/bin/sh", "--", "-c", "ls /sys/class/net | tr '\\n' ' '"}, "", "lo "},
	}
	for _, tt := range tests {
		cmd := exec.Command(binary, append([]string{"--store", storeDir, "run", "app"}, tt.args...)...)
		cmd.Stdin = strings.NewReader(tt.stdin)
		cmd.Env = append(os.Environ(), "SERPENT_TEST_FROM_CALLER=from the caller")
		var stdout, stderr bytes.Buffer
		cmd.Stdout, cmd.Stderr = &stdout, &stderr
		if err := cmd.Run(); err != nil || stdout.String() != tt.want {
			t.Errorf("%s: %v; stdout %q, want %q\nstderr: %s", tt.name, err, stdout.String(), tt.want, stderr.String())
		}
	}
}

// TestRunKilledOrInterrupted kills serpent-oci (SIGKILL) and interrupts it (SIGINT) in the
// middle of a run: nothing is tagged, and after the next start no mount or container of ours
// is left and fsck passes.
func TestRunKilledOrInterrupted(t *testing.T) {
	storeDir := busyboxStore(t)
	for _, sig := range []syscall.Signal{syscall.SIGKILL, syscall.SIGINT} {
		t.Run(sig.String(), func(t *testing.T) {
			var out testenv.Buffer
			cmd := exec.Command(binary, "--store", storeDir, "run", "busybox@arm64", "--commit", "never", "--", "sh", "-c", "echo started; sleep 60")
			cmd.Stdout, cmd.Stderr = &out, &out
			if err := cmd.Start(); err != nil {
				t.Fatal(err)
			}
			deadline := time.Now().Add(30 * time.Second)
			for !strings.Contains(out.String(), "started\n") {
				if time.Now().After(deadline) {
					t.Fatalf("the command did not start in 30s:\n%s", out.String())
				}
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
				if code := cmd.ProcessState.ExitCode(); code != 130 || time.Since(start) > 15*time.Second {
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
		{[]string{"run", "plain", "--", "uname", "-m"}, 0, "aarch64"},
		{[]string{"run", "plain", "--platform", "linux/arm64", "--", "uname", "-m"}, 0, "aarch64"},
		{[]string{"run", "plain", "--platform", "linux/amd64", "--", "true"}, 125, "tag plain@linux-amd64: not found"},
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
