package main

import (
	"bytes"
	"context"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/serpent-os/serpent-oci/oci/store"
	"github.com/serpent-os/serpent-oci/oci/testenv"
)

// binary is serpent-oci built once for the tests that need a separate process (kill -9).
var binary string

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "serpent-oci-bin-")
	if err != nil {
		panic(err)
	}
	binary = filepath.Join(dir, "serpent-oci")
	if out, err := exec.Command("go", "build", "-o", binary, ".").CombinedOutput(); err != nil {
		fmt.Fprintf(os.Stderr, "build serpent-oci: %v\n%s", err, out)
		os.Exit(1)
	}
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

// cli runs the command line in-process and returns its exit code and output.
func cli(t *testing.T, args ...string) (int, string, string) {
	t.Helper()
	var stdout, stderr bytes.Buffer
	code := run(context.Background(), args, &stdout, &stderr)
	return code, stdout.String(), stderr.String()
}

func TestHelpExplainsEveryCommand(t *testing.T) {
	code, out, _ := cli(t, "--help")
	if code != 0 {
		t.Fatalf("--help exited %d", code)
	}
	for _, c := range commands() {
		if !strings.Contains(out, c.name) {
			t.Errorf("--help does not list %s", c.name)
		}
		t.Run(c.name, func(t *testing.T) {
			code, out, _ := cli(t, c.name, "--help")
			if code != 0 {
				t.Fatalf("%s --help exited %d", c.name, code)
			}
			for _, want := range []string{"Usage:", "serpent-oci " + c.name, "Example:", "--store"} {
				if !strings.Contains(out, want) {
					t.Errorf("%s --help lacks %q:\n%s", c.name, want, out)
				}
			}
			// `help CMD` says the same.
			if _, again, _ := cli(t, "help", c.name); again != out {
				t.Errorf("help %s differs from %s --help", c.name, c.name)
			}
		})
	}
}

func TestExitCodes(t *testing.T) {
	storeDir := filepath.Join(t.TempDir(), "store")
	src := t.TempDir()
	testenv.Fixture(t, src)
	tests := []struct {
		name    string
		args    []string
		code    int
		wantErr string
	}{
		{"no command", nil, 2, "no command given"},
		{"unknown command", []string{"frobnicate"}, 2, `unknown command "frobnicate"`},
		{"unknown flag", []string{"images", "--bogus"}, 2, "unknown flag: --bogus"},
		{"import without a tag", []string{"import", src}, 2, "--tag is required"},
		{"bad platform", []string{"import", src, "--tag", "x", "--platform", "linux/z80"}, 2, "unknown architecture"},
		{"bad compression", []string{"import", src, "--tag", "x", "--compression", "lzma"}, 2, `unknown compression "lzma"`},
		{"import", []string{"import", src, "--tag", "fixture", "--platform", "arm64"}, 0, ""},
		{"import again for amd64", []string{"import", src, "--tag", "fixture", "--platform", "amd64"}, 0, ""},
		{"missing tag", []string{"inspect", "nothing"}, 1, "tag nothing: not found"},
		{"ambiguous tag", []string{"inspect", "fixture"}, 1, "ambiguous"},
		{"inspect", []string{"inspect", "fixture@arm64"}, 0, ""},
		{"export without output", []string{"export", "fixture@arm64"}, 2, "--output is required"},
		{"missing source", []string{"import", "/does/not/exist", "--tag", "x"}, 1, "/does/not/exist"},
		{"fsck", []string{"fsck"}, 0, ""},
		{"version", []string{"version"}, 0, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			code, _, stderr := cli(t, append([]string{"--store", storeDir}, tt.args...)...)
			if code != tt.code {
				t.Fatalf("exit code %d, want %d; stderr:\n%s", code, tt.code, stderr)
			}
			if tt.wantErr != "" && !strings.Contains(stderr, tt.wantErr) {
				t.Fatalf("stderr %q lacks %q", stderr, tt.wantErr)
			}
		})
	}
}

func TestImagesAndInspect(t *testing.T) {
	storeDir := filepath.Join(t.TempDir(), "store")
	src := t.TempDir()
	testenv.Fixture(t, src)
	if code, _, stderr := cli(t, "--store", storeDir, "import", src, "-t", "fixture", "--platform", "linux/arm64/v8"); code != 0 {
		t.Fatal(stderr)
	}
	_, out, _ := cli(t, "--store", storeDir, "images")
	lines := strings.Split(strings.TrimSpace(out), "\n")
	if len(lines) != 2 || !strings.HasPrefix(lines[0], "TAG") || !strings.Contains(lines[1], "fixture") ||
		!strings.Contains(lines[1], "linux/arm64") || !strings.Contains(lines[1], "2020-08-16T00:00:00Z") {
		t.Fatalf("images:\n%s", out)
	}
	_, out, _ = cli(t, "inspect", "--store", storeDir, "fixture", "--format", "json")
	for _, want := range []string{`"tag": "fixture@linux/arm64"`, `"architecture": "arm64"`, `"created_by": "serpent-oci import"`} {
		if !strings.Contains(out, want) {
			t.Errorf("inspect --format json lacks %s:\n%s", want, out)
		}
	}
}

// makeBulk writes n files of pseudo-random bytes below dir, so that an import takes long
// enough to be killed in the middle.
func makeBulk(t *testing.T, dir string, n, size int) {
	t.Helper()
	r := rand.New(rand.NewPCG(1, 2))
	buf := make([]byte, size)
	for i := range n {
		sub := filepath.Join(dir, fmt.Sprintf("d%02d", i%50))
		if err := os.MkdirAll(sub, 0o755); err != nil {
			t.Fatal(err)
		}
		for j := range buf {
			buf[j] = byte(r.Uint32())
		}
		if err := os.WriteFile(filepath.Join(sub, fmt.Sprintf("f%04d", i)), buf, 0o644); err != nil {
			t.Fatal(err)
		}
	}
}

func fsckClean(t *testing.T, dir string) store.FsckResult {
	t.Helper()
	st, err := store.Open(context.Background(), dir)
	if err != nil {
		t.Fatal(err)
	}
	res, err := st.Fsck(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range res.Problems {
		t.Errorf("fsck: %s", p)
	}
	return res
}

// TestKillDuringImport kills serpent-oci with SIGKILL at random moments of imports into one
// store, many times over; fsck must pass after every kill, and the store must stay usable.
func TestKillDuringImport(t *testing.T) {
	if testing.Short() {
		t.Skip("kill loop is long")
	}
	src := t.TempDir()
	makeBulk(t, src, 1500, 16<<10)
	storeDir := filepath.Join(t.TempDir(), "store")

	// How long an undisturbed import takes, to spread the kills over it.
	start := time.Now()
	if out, err := exec.Command(binary, "--store", storeDir, "import", src, "--tag", "whole").CombinedOutput(); err != nil {
		t.Fatalf("import: %v\n%s", err, out)
	}
	full := time.Since(start)
	seed := time.Now().UnixNano()
	t.Logf("an import takes %v; kill seed %d", full, seed)
	r := rand.New(rand.NewPCG(uint64(seed), 0))

	const kills = 24
	killed, finished := 0, 0
	for i := range kills {
		if i%3 == 2 {
			if out, err := exec.Command(binary, "--store", storeDir, "gc").CombinedOutput(); err != nil {
				t.Fatalf("gc: %v\n%s", err, out)
			}
		}
		cmd := exec.Command(binary, "--store", storeDir, "import", src, "--tag", fmt.Sprintf("k%d", i), "--compression", []string{"gzip", "zstd"}[i%2])
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		time.Sleep(time.Duration(r.Int64N(int64(full))))
		// Every third one is an interrupt (Ctrl-C), which must clean up after itself.
		sig := syscall.SIGKILL
		if i%3 == 2 {
			sig = syscall.SIGINT
		}
		if err := cmd.Process.Signal(sig); err == nil {
			killed++
		}
		err := cmd.Wait()
		if err == nil {
			finished++
		}
		if sig == syscall.SIGINT && err != nil {
			// gc ran before this import, so whatever is in tmp is this import's leftover.
			if tmp, _ := os.ReadDir(filepath.Join(storeDir, ".serpent", "tmp")); len(tmp) > 0 {
				t.Errorf("interrupted import left %d temporary files (%s, ...)", len(tmp), tmp[0].Name())
			}
			if code := cmd.ProcessState.ExitCode(); code != 1 {
				t.Errorf("interrupted import exited %d, want 1", code)
			}
		}
		fsckClean(t, storeDir)
		if t.Failed() {
			t.Fatalf("store broken after kill %d", i)
		}
	}
	t.Logf("%d kills, %d imports finished before their kill", killed, finished)

	// Every tag left resolves to a whole image, and the store still takes imports and gc.
	if out, err := exec.Command(binary, "--store", storeDir, "import", src, "--tag", "after").CombinedOutput(); err != nil {
		t.Fatalf("import after kills: %v\n%s", err, out)
	}
	if out, err := exec.Command(binary, "--store", storeDir, "gc").CombinedOutput(); err != nil {
		t.Fatalf("gc after kills: %v\n%s", err, out)
	}
	res := fsckClean(t, storeDir)
	entries, _ := os.ReadDir(filepath.Join(storeDir, ".serpent", "tmp"))
	if len(entries) != 0 {
		t.Errorf("gc left %d temporary files", len(entries))
	}
	if res.Blobs == 0 {
		t.Fatal("fsck checked no blobs")
	}
}

// TestConcurrentImporters runs two serpent-oci processes importing into one store at once;
// every tag of both survives.
func TestConcurrentImporters(t *testing.T) {
	src := t.TempDir()
	makeBulk(t, src, 100, 4<<10)
	storeDir := filepath.Join(t.TempDir(), "store")
	const each = 8
	var wg sync.WaitGroup
	errs := make(chan string, 2*each)
	for p := range 2 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range each {
				out, err := exec.Command(binary, "--store", storeDir, "import", src, "--tag", fmt.Sprintf("p%d-%d", p, i)).CombinedOutput()
				if err != nil {
					errs <- fmt.Sprintf("%v: %s", err, out)
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for e := range errs {
		t.Fatal(e)
	}
	out, err := exec.Command(binary, "--store", storeDir, "images", "-q").Output()
	if err != nil {
		t.Fatal(err)
	}
	if n := len(strings.Fields(string(out))); n != 2*each {
		t.Fatalf("%d tags after %d concurrent imports:\n%s", n, 2*each, out)
	}
	fsckClean(t, storeDir)
}
