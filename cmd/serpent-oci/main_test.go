package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
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

	"github.com/containerd/log"
	"github.com/spf13/pflag"
	"golang.org/x/sys/unix"

	"github.com/serpent-os/serpent-oci/oci/pausepoint"
	"github.com/serpent-os/serpent-oci/oci/platform"
	"github.com/serpent-os/serpent-oci/oci/store"
	"github.com/serpent-os/serpent-oci/oci/testenv"
)

// binary is serpent-oci built once for the tests that need a separate process (signals), with
// the pausepoint tag: SERPENT_OCI_PAUSE_AT stops it at a named point of a write.
var binary string

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "serpent-oci-bin-")
	if err != nil {
		panic(err)
	}
	binary = filepath.Join(dir, "serpent-oci")
	if out, err := exec.Command("go", "build", "-tags", "pausepoint", "-o", binary, ".").CombinedOutput(); err != nil {
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
			for _, want := range []string{"Usage:", "serpent-oci " + c.name, "Example:"} {
				if !strings.Contains(out, want) {
					t.Errorf("%s --help lacks %q:\n%s", c.name, want, out)
				}
			}
			// --store where the command uses a store, and only there.
			if has := strings.Contains(out, "--store"); has == c.noStore {
				t.Errorf("%s --help: has --store %v, uses a store %v", c.name, has, !c.noStore)
			}
			if strings.HasSuffix(strings.Split(out, "\n")[3], " ") {
				t.Errorf("%s --help: the synopsis ends in a space", c.name)
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
		{"unknown command", []string{"frobnicate"}, 2, "unknown command \"frobnicate\"\n"},
		{"mistyped command", []string{"biuld"}, 2, `unknown command "biuld"; did you mean "build"?`},
		{"mistyped command, two near", []string{"pul"}, 2, `unknown command "pul"; did you mean "pull"?`},
		{"unknown flag", []string{"images", "--bogus"}, 2, "unknown flag: --bogus"},
		{"import without a tag", []string{"import", src}, 2, "--tag is required"},
		{"bad platform", []string{"import", src, "--tag", "x", "--platform", "linux/z80"}, 2, "unknown architecture"},
		{"bad compression", []string{"import", src, "--tag", "x", "--compression", "lzma"}, 2, `unknown compression "lzma"`},
		{"import", []string{"import", src, "--tag", "fresh", "--platform", "arm64"}, 0, ""},
		{"missing tag", []string{"inspect", "nothing"}, 1, "tag nothing: not found"},
		{"mistyped tag", []string{"inspect", "fixtrue"}, 1, "tag fixtrue: not found in " + storeDir + "; did you mean fixture@linux-amd64 or fixture@linux-arm64?"},
		{"a name of several platforms: the host's", []string{"inspect", "fixture"}, 0, ""},
		{"a name of several platforms, not the host's", []string{"inspect", "other"}, 1, "tag other is ambiguous: it exists as other@linux-arm64, other@linux-s390x"},
		{"inspect", []string{"inspect", "fixture@arm64"}, 0, ""},
		{"export without output", []string{"export", "fixture@arm64"}, 2, "--output is required"},
		{"missing source", []string{"import", "/does/not/exist", "--tag", "x"}, 1, "/does/not/exist"},
		{"fsck", []string{"fsck"}, 0, ""},
		{"shell without a stage", []string{"shell"}, 2, "shell: want a STAGE"},
		{"shell for two platforms", []string{"shell", "stage2", "--platform", "linux/amd64,linux/arm64"}, 2, "want one --platform, got 2"},
		{"shell of no such stage", []string{"shell", "stage9", "--platform", "linux/amd64"}, 1, `no stage is named "stage9"`},
		{"build --spin with a stage flag", []string{"build", "--spin", "spin.yaml", "--no-cache", "--rebuild", "stage2"}, 2, "build --spin: --no-cache, --rebuild: not for a spin"},
		{"build --spin with a cache", []string{"build", "--spin", "spin.yaml", "--cache-from", "127.0.0.1:1/c"}, 2, "build --spin: --cache-from: not for a spin"},
		{"a bad epoch", []string{"import", src, "--tag", "x", "--source-date-epoch", "yesterday"}, 2, `invalid argument "yesterday" for "--source-date-epoch" flag: want a Unix time in seconds`},
		{"a negative epoch", []string{"build", "stage2", "--source-date-epoch", "-5"}, 2, `invalid argument "-5" for "--source-date-epoch" flag`},
		{"an epoch", []string{"import", src, "--tag", "dated", "--source-date-epoch", "86400"}, 0, ""},
		{"a bad compiler cache", []string{"build", "stage2", "--compiler-cache", "http://cache/x"}, 2, `invalid argument "http://cache/x" for "--compiler-cache" flag: compiler cache "http://cache/x": scheme http is not supported`},
		{"a read-only compiler cache of none", []string{"build", "stage2", "--compiler-cache-read-only"}, 2, "--compiler-cache-read-only without --compiler-cache"},
		{"a bad compile farm", []string{"build", "stage2", "--compile-farm", "h1/0"}, 2, `invalid argument "h1/0" for "--compile-farm" flag: compile farm "h1/0": jobs "0": want 1 to 1024`},
		{"compile-helper without an image", []string{"compile-helper"}, 2, "compile-helper: want one IMAGE, got 0 arguments"},
		{"compile-helper with a bad network", []string{"compile-helper", "fixture", "--allow", "10.0.0.0"}, 2, `--allow "10.0.0.0": want networks in CIDR form`},
		{"compile-helper of an image for another platform", []string{"compile-helper", "other@s390x"}, 1, "compile-helper other@linux-s390x: want an image for this machine"},
		{"version", []string{"version"}, 0, ""},
		{"--version", []string{"--version"}, 0, ""},
	}
	// What the rows read is set up here, so that no row depends on another having run.
	for _, p := range []string{"arm64", "amd64"} {
		if code, _, stderr := cli(t, "--store", storeDir, "import", src, "--tag", "fixture", "--platform", p); code != 0 {
			t.Fatalf("import fixture for %s: %s", p, stderr)
		}
	}
	for _, p := range []string{"arm64", "s390x"} {
		if code, _, stderr := cli(t, "--store", storeDir, "import", src, "--tag", "other", "--platform", p); code != 0 {
			t.Fatalf("import other for %s: %s", p, stderr)
		}
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

// TestImagesOnAMissingStore: on a fresh machine, images lists nothing (as podman's does), in
// each format, says on stderr that the store does not exist (a mistyped --store), and creates
// no store.
func TestImagesOnAMissingStore(t *testing.T) {
	storeDir := filepath.Join(t.TempDir(), "never-made")
	for _, tt := range []struct {
		args []string
		want string
	}{
		{nil, "TAG  PLATFORM  DIGEST  SIZE  CREATED\n"},
		{[]string{"-q"}, ""},
		{[]string{"--format", "json"}, "[]\n"},
	} {
		code, out, stderr := cli(t, append([]string{"--store", storeDir, "images"}, tt.args...)...)
		if code != 0 || out != tt.want {
			t.Errorf("images %v on a missing store: exit %d, stdout %q, want %q; stderr %s", tt.args, code, out, tt.want, stderr)
		}
		if want := "store " + storeDir + " does not exist yet: no images"; !strings.Contains(stderr, want) {
			t.Errorf("images %v on a missing store: stderr %q, want it to say %q (a mistyped --store)", tt.args, stderr, want)
		}
	}
	if _, err := os.Lstat(storeDir); !os.IsNotExist(err) {
		t.Errorf("images created the store it listed: %v", err)
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
	// The TAG column is the tag as -q, JSON and skopeo spell it: it pastes into any of them.
	testenv.RequireTools(t, "skopeo")
	if tag := strings.Fields(lines[1])[0]; tag != "fixture@linux-arm64" {
		t.Errorf("images: TAG column %q, want fixture@linux-arm64", tag)
	} else if b, err := exec.Command("skopeo", "inspect", "--raw", "oci:"+storeDir+":"+tag).CombinedOutput(); err != nil {
		t.Errorf("skopeo inspect of the TAG column's %s: %v\n%s", tag, err, b)
	}
	_, out, _ = cli(t, "--store", storeDir, "images", "--format", "json")
	var rows []map[string]any
	if err := json.Unmarshal([]byte(out), &rows); err != nil || len(rows) != 1 {
		t.Fatalf("images --format json: %v\n%s", err, out)
	}
	for k, want := range map[string]any{"tag": "fixture@linux-arm64", "name": "fixture", "platform": "linux/arm64",
		"media_type": "application/vnd.oci.image.manifest.v1+json", "created": "2020-08-16T00:00:00Z"} {
		if rows[0][k] != want {
			t.Errorf("images --format json: %s = %v, want %v", k, rows[0][k], want)
		}
	}
	if size, _ := rows[0]["size"].(float64); size <= 0 || !strings.HasPrefix(rows[0]["digest"].(string), "sha256:") {
		t.Errorf("images --format json: size %v, digest %v", rows[0]["size"], rows[0]["digest"])
	}
	_, out, _ = cli(t, "inspect", "--store", storeDir, "fixture", "--format", "json")
	for _, want := range []string{`"tag": "fixture@linux-arm64"`, `"architecture": "arm64"`, `"created_by": "serpent-oci import"`} {
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

// TestInterruptAtEachPointOfImport stops an import at each named point of its write (a binary
// built with the pausepoint tag waits there) and delivers SIGINT, SIGTERM or SIGKILL. What a
// user pressing Ctrl-C gets: before the tag is set, exit status 1, no tag, no temporary file;
// once it is set, the import is done and exits 0. After SIGKILL nothing can clean up, but the
// store is consistent all the same. In every case fsck is clean and the earlier tag intact.
func TestInterruptAtEachPointOfImport(t *testing.T) {
	src := t.TempDir()
	makeBulk(t, src, 300, 16<<10)
	storeDir := filepath.Join(t.TempDir(), "store")
	if out, err := exec.Command(binary, "--store", storeDir, "import", src, "--tag", "whole").CombinedOutput(); err != nil {
		t.Fatalf("import: %v\n%s", err, out)
	}
	whole := tagDigest(t, storeDir, "whole@linux/amd64")

	for _, point := range []string{pausepoint.BeforeBlobs, pausepoint.MidBlob, pausepoint.BeforeTag, pausepoint.AfterTag} {
		for _, sig := range []syscall.Signal{syscall.SIGINT, syscall.SIGTERM, syscall.SIGKILL} {
			t.Run(point+"/"+unix.SignalName(sig), func(t *testing.T) {
				// gc first, so that whatever is in tmp afterwards is this import's.
				if out, err := exec.Command(binary, "--store", storeDir, "gc").CombinedOutput(); err != nil {
					t.Fatalf("gc: %v\n%s", err, out)
				}
				tag := "k-" + point + "-" + unix.SignalName(sig)
				cmd := exec.Command(binary, "--store", storeDir, "import", src, "--tag", tag)
				cmd.Env = append(os.Environ(), pausepoint.EnvPauseAt+"="+point)
				stderr, drained := waitForPause(t, cmd, point)
				if err := cmd.Process.Signal(sig); err != nil {
					t.Fatal(err)
				}
				<-drained // every line read before Wait closes the pipe
				_ = cmd.Wait()
				tagged := tagExists(t, storeDir, tag+"@linux/amd64")
				switch {
				case sig == syscall.SIGKILL:
					if ws := cmd.ProcessState.Sys().(syscall.WaitStatus); !ws.Signaled() {
						t.Errorf("after SIGKILL: %v, want killed by the signal", cmd.ProcessState)
					}
					if want := point == pausepoint.AfterTag; tagged != want {
						t.Errorf("killed at %s: tag present %v, want %v", point, tagged, want)
					}
				case point == pausepoint.AfterTag:
					if code := cmd.ProcessState.ExitCode(); code != 0 || !tagged {
						t.Errorf("%s after the tag was set: exit %d, tagged %v; want 0 and tagged\n%s", unix.SignalName(sig), code, tagged, stderr)
					}
				default:
					if code := cmd.ProcessState.ExitCode(); code != 1 {
						t.Errorf("%s at %s: exit %d (%v), want 1\n%s", unix.SignalName(sig), point, code, cmd.ProcessState, stderr)
					}
					if tagged {
						t.Errorf("%s at %s: the import was tagged", unix.SignalName(sig), point)
					}
					if !strings.Contains(stderr.String(), "interrupted") {
						t.Errorf("%s at %s: stderr does not say the import was interrupted:\n%s", unix.SignalName(sig), point, stderr)
					}
					if tmp, _ := os.ReadDir(filepath.Join(storeDir, ".serpent", "tmp")); len(tmp) > 0 {
						t.Errorf("interrupted import left %d temporary files (%s, ...)", len(tmp), tmp[0].Name())
					}
				}
				fsckClean(t, storeDir)
				if got := tagDigest(t, storeDir, "whole@linux/amd64"); got != whole {
					t.Errorf("the earlier tag moved: %s, was %s", got, whole)
				}
			})
		}
	}

	// The store still takes imports and gc, and gc leaves no temporary file.
	if out, err := exec.Command(binary, "--store", storeDir, "import", src, "--tag", "after").CombinedOutput(); err != nil {
		t.Fatalf("import after the interrupts: %v\n%s", err, out)
	}
	if out, err := exec.Command(binary, "--store", storeDir, "gc").CombinedOutput(); err != nil {
		t.Fatalf("gc after the interrupts: %v\n%s", err, out)
	}
	if res := fsckClean(t, storeDir); res.Blobs == 0 {
		t.Fatal("fsck checked no blobs")
	}
	if entries, _ := os.ReadDir(filepath.Join(storeDir, ".serpent", "tmp")); len(entries) != 0 {
		t.Errorf("gc left %d temporary files", len(entries))
	}
}

// TestKillAnyMomentOfImport kills imports with SIGKILL at moments spread over an import; the
// invariant holds at every moment (fsck clean, earlier tags whole), so the moment need not be
// chosen: a failure names a real bug, and the logged seed replays the same moments.
func TestKillAnyMomentOfImport(t *testing.T) {
	if testing.Short() {
		t.Skip("kill loop is long")
	}
	src := t.TempDir()
	makeBulk(t, src, 600, 16<<10)
	storeDir := filepath.Join(t.TempDir(), "store")
	start := time.Now()
	if out, err := exec.Command(binary, "--store", storeDir, "import", src, "--tag", "whole").CombinedOutput(); err != nil {
		t.Fatalf("import: %v\n%s", err, out)
	}
	full := time.Since(start)
	seed := time.Now().UnixNano()
	t.Logf("an import takes %v; kill seed %d", full, seed)
	r := rand.New(rand.NewPCG(uint64(seed), 0))
	for i := range 8 {
		cmd := exec.Command(binary, "--store", storeDir, "import", src, "--tag", fmt.Sprintf("k%d", i), "--compression", []string{"gzip", "zstd"}[i%2])
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		time.Sleep(time.Duration(r.Int64N(int64(full))))
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
		fsckClean(t, storeDir)
		if t.Failed() {
			t.Fatalf("store broken after kill %d", i)
		}
	}
}

// waitForPause starts cmd and returns once it says it paused at point; its stderr keeps
// collecting into the returned buffer until the returned channel is closed, at the pipe's end
// (Wait closes the pipe: call it only after that).
func waitForPause(t *testing.T, cmd *exec.Cmd, point string) (*testenv.Buffer, <-chan struct{}) {
	t.Helper()
	pipe, err := cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	buf := &testenv.Buffer{}
	paused, drained := make(chan struct{}), make(chan struct{})
	go func() {
		defer close(drained)
		sc := bufio.NewScanner(pipe)
		once := false
		for sc.Scan() {
			buf.WriteString(sc.Text() + "\n")
			if !once && sc.Text() == "serpent-oci: paused at "+point {
				once = true
				close(paused)
			}
		}
	}()
	select {
	case <-paused:
		return buf, drained
	case <-time.After(2 * time.Minute):
		_ = cmd.Process.Kill()
		<-drained
		_ = cmd.Wait()
		t.Fatalf("the import never reached %s:\n%s", point, buf)
		return nil, nil
	}
}

func openStore(t *testing.T, dir string) *store.Store {
	t.Helper()
	st, err := store.Open(context.Background(), dir)
	if err != nil {
		t.Fatal(err)
	}
	return st
}

func tagExists(t *testing.T, dir, tag string) bool {
	t.Helper()
	ref, err := store.ParseRef(tag)
	if err != nil {
		t.Fatal(err)
	}
	_, err = openStore(t, dir).Resolve(ref)
	return err == nil
}

func tagDigest(t *testing.T, dir, tag string) string {
	t.Helper()
	ref, err := store.ParseRef(tag)
	if err != nil {
		t.Fatal(err)
	}
	d, err := openStore(t, dir).Resolve(ref)
	if err != nil {
		t.Fatalf("tag %s: %v", tag, err)
	}
	return d.Digest.String()
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

// TestFlagHelpRendersLiterally: pflag turns a `quoted` word of a flag's usage into the name of
// its value (--seed from: image:seed), so no usage holds a backtick.
func TestFlagHelpRendersLiterally(t *testing.T) {
	for _, c := range commands() {
		fs := pflag.NewFlagSet(c.name, pflag.ContinueOnError)
		if c.flags != nil {
			c.flags(fs)
		}
		fs.VisitAll(func(f *pflag.Flag) {
			if strings.Contains(f.Usage, "`") {
				t.Errorf("%s --%s: usage %q has a backtick", c.name, f.Name, f.Usage)
			}
		})
	}
}

// TestMultiPlatformTagAndExport: tag and export take every platform a tag has (or those
// --platform names); an oci-archive of several is one archive with an index, which skopeo reads.
func TestMultiPlatformTagAndExport(t *testing.T) {
	testenv.RequireTools(t, "skopeo")
	storeDir := filepath.Join(t.TempDir(), "store")
	src := t.TempDir()
	testenv.Fixture(t, src)
	for _, p := range []string{"linux/amd64", "linux/arm64"} {
		if code, _, stderr := cli(t, "--store", storeDir, "import", src, "--tag", "fx", "--platform", p); code != 0 {
			t.Fatalf("import %s: %s", p, stderr)
		}
	}
	if code, out, stderr := cli(t, "--store", storeDir, "tag", "fx", "both"); code != 0 || strings.Count(out, "both@linux-") != 2 {
		t.Fatalf("tag of a two-platform tag: exit %d\n%s%s", code, out, stderr)
	}
	if code, out, _ := cli(t, "--store", storeDir, "tag", "fx", "--platform", "arm64", "one"); code != 0 || out == "" || strings.Contains(out, "amd64") {
		t.Fatalf("tag --platform arm64: exit %d\n%s", code, out)
	}
	_, out, _ := cli(t, "--store", storeDir, "images", "-q")
	if want := "both@linux-amd64\nboth@linux-arm64\nfx@linux-amd64\nfx@linux-arm64\none@linux-arm64\n"; out != want {
		t.Errorf("images -q:\n%s\nwant:\n%s", out, want)
	}
	dir := t.TempDir()
	// A rootfs of the two is the host's (TestExportRootfsOfSeveralPlatforms has the rest).
	hostTag := "fx@" + strings.ReplaceAll(platform.String(platform.Host()), "/", "-")
	if code, out, stderr := cli(t, "--store", storeDir, "export", "fx", "-o", filepath.Join(dir, "fx.tar")); code != 0 || !strings.HasPrefix(out, hostTag+" ") {
		t.Errorf("rootfs export of two platforms: exit %d, want %s\n%s%s", code, hostTag, out, stderr)
	}
	if code, _, stderr := cli(t, "--store", storeDir, "export", "fx@arm64", "-o", filepath.Join(dir, "missing", "fx.tar")); code != 1 || !strings.Contains(stderr, filepath.Join(dir, "missing")+": no such directory") {
		t.Errorf("export into a missing directory: exit %d\n%s", code, stderr)
	}
	archive := filepath.Join(dir, "fx.oci.tar")
	if code, _, stderr := cli(t, "--store", storeDir, "export", "fx", "--format", "oci-archive", "-o", archive); code != 0 {
		t.Fatalf("oci-archive of two platforms: %s", stderr)
	}
	raw, err := exec.Command("skopeo", "inspect", "--raw", "oci-archive:"+archive+":fx").Output()
	if err != nil {
		t.Fatal(err)
	}
	var idx struct {
		MediaType string
		Manifests []struct{ Platform struct{ Architecture string } }
	}
	if err := json.Unmarshal(raw, &idx); err != nil || idx.MediaType != "application/vnd.oci.image.index.v1+json" || len(idx.Manifests) != 2 ||
		idx.Manifests[0].Platform.Architecture != "amd64" || idx.Manifests[1].Platform.Architecture != "arm64" {
		t.Errorf("the archive's image: %v\n%s", err, raw)
	}
	copied := filepath.Join(dir, "copied")
	if out, err := exec.Command("skopeo", "copy", "-q", "--all", "oci-archive:"+archive+":fx", "oci:"+copied+":fx").CombinedOutput(); err != nil {
		t.Errorf("skopeo copy --all of the archive: %v\n%s", err, out)
	}
}

// TestSynopsesReadAsTyped: subcommand words come before [flags], as the command is typed.
func TestSynopsesReadAsTyped(t *testing.T) {
	want := map[string]string{
		"spin":    "serpent-oci spin build [flags] FILE",
		"sources": "serpent-oci sources fetch|list [flags] TARGET",
		"build":   "serpent-oci build [flags] TARGET",
		"version": "serpent-oci version [flags]",
		"run":     "serpent-oci run [flags] TAG [-- COMMAND [ARG...]]",
	}
	for _, c := range commands() {
		if w, ok := want[c.name]; ok {
			if got := synopsis(c); got != w {
				t.Errorf("%s: synopsis %q, want %q", c.name, got, w)
			}
		}
	}
}

// TestPlanWritesNothing: plan reads the store as it is; on one that does not exist it plans
// as for an empty store (the seed first) and creates nothing.
func TestPlanWritesNothing(t *testing.T) {
	missing := filepath.Join(t.TempDir(), "no-store")
	code, out, stderr := cli(t, "--store", missing, "plan", "stage1", "--platform", "linux/amd64")
	if code != 0 || !strings.Contains(out, "seed    linux/amd64") || !strings.Contains(stderr, "does not exist yet: planning as for an empty store") {
		t.Fatalf("plan on a missing store: exit %d\n%s%s", code, out, stderr)
	}
	if _, err := os.Stat(missing); !os.IsNotExist(err) {
		t.Errorf("plan created %s: %v", missing, err)
	}
	empty := t.TempDir()
	if code, _, stderr := cli(t, "--store", empty, "plan", "stage1", "--platform", "linux/amd64"); code != 0 {
		t.Fatalf("plan on an empty directory: %s", stderr)
	}
	if entries, _ := os.ReadDir(empty); len(entries) != 0 {
		t.Errorf("plan wrote into an empty directory: %v", entries)
	}
}

// TestVerifyAgainstWritesNothing: verify --against reads both stores and creates neither.
func TestVerifyAgainstWritesNothing(t *testing.T) {
	a, b := t.TempDir(), filepath.Join(t.TempDir(), "missing")
	code, _, stderr := cli(t, "--store", a, "verify", "stage1", "--against", b, "--platform", "linux/amd64")
	if code != 1 || !strings.Contains(stderr, b+" does not exist") {
		t.Errorf("verify --against a missing store: exit %d\n%s", code, stderr)
	}
	if entries, _ := os.ReadDir(a); len(entries) != 0 {
		t.Errorf("verify --against wrote into its own store: %v", entries)
	}
	if _, err := os.Stat(b); !os.IsNotExist(err) {
		t.Errorf("verify --against created %s", b)
	}
}

// TestJSONLogs: with --log-format json every line on stderr is a JSON object: the logs, with
// durations in seconds, and the error the command ends with (its exit code and hint).
func TestJSONLogs(t *testing.T) {
	var buf bytes.Buffer
	ctx, err := setupLogging(context.Background(), &buf, "debug", "json")
	if err != nil {
		t.Fatal(err)
	}
	log.G(ctx).WithFields(log.Fields{"took": 1500 * time.Millisecond, "bytes": 3}).Info("extracted")
	var line map[string]any
	if err := json.Unmarshal(buf.Bytes(), &line); err != nil {
		t.Fatalf("log line %q: %v", buf.String(), err)
	}
	if line["took"] != 1.5 || line["bytes"] != 3.0 || line["msg"] != "extracted" {
		t.Errorf("log line %v: want took 1.5 (seconds), bytes 3", line)
	}

	storeDir := filepath.Join(t.TempDir(), "missing")
	for _, tt := range []struct {
		args []string
		code int
		msg  string
		hint string
	}{
		{[]string{"--log-format", "json", "--store", storeDir, "inspect", "x"}, 1, "store " + storeDir + " does not exist", ""},
		{[]string{"--log-format", "json", "biuld"}, 2, `unknown command "biuld"; did you mean "build"?`, "Run 'serpent-oci --help' for usage."},
		{[]string{"--log-format", "json", "images", "--bogus"}, 2, "unknown flag: --bogus", "Run 'serpent-oci images --help' for usage."},
	} {
		code, _, stderr := cli(t, tt.args...)
		if code != tt.code {
			t.Errorf("%v: exit %d, want %d", tt.args, code, tt.code)
		}
		lines := strings.Split(strings.TrimSpace(stderr), "\n")
		var last map[string]any
		for _, l := range lines {
			if err := json.Unmarshal([]byte(l), &last); err != nil {
				t.Errorf("%v: stderr line %q is not JSON: %v", tt.args, l, err)
			}
		}
		if last["level"] != "error" || !strings.Contains(fmt.Sprint(last["msg"]), tt.msg) || last["exit_code"] != float64(tt.code) {
			t.Errorf("%v: last line %v, want level error, msg with %q, exit_code %d", tt.args, last, tt.msg, tt.code)
		}
		if hint, _ := last["hint"].(string); hint != tt.hint {
			t.Errorf("%v: hint %q, want %q", tt.args, hint, tt.hint)
		}
	}
}

// TestExportRootfsOfSeveralPlatforms: a rootfs of a name with several platforms is the
// host's, as run and inspect read such a name; without the host's among them it is a usage
// error naming the platforms there are.
func TestExportRootfsOfSeveralPlatforms(t *testing.T) {
	storeDir := filepath.Join(t.TempDir(), "store")
	src := t.TempDir()
	testenv.Fixture(t, src)
	for _, p := range []string{"linux/arm64", "linux/s390x"} {
		if code, _, stderr := cli(t, "--store", storeDir, "import", src, "-t", "two", "--platform", p); code != 0 {
			t.Fatal(stderr)
		}
	}
	out := filepath.Join(t.TempDir(), "rootfs.tar")
	code, _, stderr := cli(t, "--store", storeDir, "export", "two", "-o", out)
	if code != 2 || !strings.Contains(stderr, "export two as a rootfs: it has 2 platforms (linux/arm64, linux/s390x): name one with --platform") {
		t.Fatalf("export of two foreign platforms: exit %d\n%s", code, stderr)
	}
	host := platform.String(platform.Host())
	if code, _, stderr := cli(t, "--store", storeDir, "import", src, "-t", "two", "--platform", host); code != 0 {
		t.Fatal(stderr)
	}
	code, stdout, stderr := cli(t, "--store", storeDir, "export", "two", "-o", out)
	if code != 0 || !strings.HasPrefix(stdout, "two@"+strings.ReplaceAll(host, "/", "-")+" ") {
		t.Fatalf("export with the host's platform there: exit %d\n%s%s", code, stdout, stderr)
	}
	code, stdout, stderr = cli(t, "--store", storeDir, "export", "two", "--platform", "linux/s390x", "-o", out)
	if code != 0 || !strings.HasPrefix(stdout, "two@linux-s390x ") {
		t.Fatalf("export --platform linux/s390x: exit %d\n%s%s", code, stdout, stderr)
	}
}
