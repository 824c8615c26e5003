package builder_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/serpent-os/serpent-oci/builder"
	"github.com/serpent-os/serpent-oci/builder/buildertest"
	"github.com/serpent-os/serpent-oci/builder/rootfs"
	"github.com/serpent-os/serpent-oci/builder/runc"
	"github.com/serpent-os/serpent-oci/oci/platform"
	"github.com/serpent-os/serpent-oci/oci/store"
	"github.com/serpent-os/serpent-oci/oci/testenv"
)

type env struct {
	st      *store.Store
	console *testenv.Buffer
	images  map[string]v1.Image
}

func setup(t *testing.T) *env {
	t.Helper()
	buildertest.RequireRunc(t)
	st, err := store.Open(context.Background(), filepath.Join(t.TempDir(), "store"))
	if err != nil {
		t.Fatal(err)
	}
	e := &env{st: st, console: &testenv.Buffer{}, images: map[string]v1.Image{}}
	for _, p := range buildertest.Platforms {
		img, _ := buildertest.Busybox(t, st, p)
		e.images[platform.String(p)] = img
	}
	t.Cleanup(func() { assertNothingLeft(t, st) })
	return e
}

func (e *env) runner(t *testing.T, opts ...builder.Option) *builder.Runner {
	t.Helper()
	r, err := builder.NewRunner(e.st, append([]builder.Option{builder.WithConsole(e.console)}, opts...)...)
	if err != nil {
		t.Fatal(err)
	}
	return r
}

func (e *env) opts(p v1.Platform, script string) builder.RunOptions {
	return builder.RunOptions{
		Name: "test", Base: e.images[platform.String(p)], BaseName: "busybox", Platform: p,
		Process: builder.Process{Args: []string{"/bin/sh", "-c", script}},
	}
}

// assertNothingLeft checks what every run must leave behind: no mount under the store, no
// container, a store that fsck passes.
func assertNothingLeft(t *testing.T, st *store.Store) {
	t.Helper()
	mounts, err := rootfs.MountsUnder(st.Dir())
	if err != nil {
		t.Fatal(err)
	}
	if len(mounts) > 0 {
		t.Errorf("mounts left under the store: %v", mounts)
		for _, m := range mounts {
			_ = rootfs.Unmount(m)
		}
	}
	rt := &runc.Runtime{StateDir: filepath.Join(st.Dir(), ".serpent", "runc")}
	ids, err := rt.List(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if len(ids) > 0 {
		t.Errorf("containers left: %v", ids)
		for _, id := range ids {
			rt.Kill(context.Background(), id)
		}
	}
	res, err := st.Fsck(context.Background())
	if err != nil || len(res.Problems) > 0 {
		t.Errorf("fsck: %v %v", res.Problems, err)
	}
}

// changeScript creates, modifies and deletes files and replaces a directory.
const changeScript = `set -e
echo created > /etc/created
echo modified >> /etc/motd
rm /etc/app/main.conf
rm -r /etc/app/conf.d && mkdir /etc/app/conf.d && echo c=3 > /etc/app/conf.d/c.conf
mkdir -p /opt/new/dir && echo deep > /opt/new/dir/file
rm -r /usr/share/doc/busybox
echo "machine: $(uname -m)"
`

// wantChanges is the layer changeScript must give, entry by entry.
var wantChanges = []string{
	"etc/", "etc/app/", "etc/app/.wh.main.conf", "etc/app/conf.d/", "etc/app/conf.d/.wh..wh..opq",
	"etc/app/conf.d/c.conf", "etc/created", "etc/motd",
	"opt/", "opt/new/", "opt/new/dir/", "opt/new/dir/file",
	"usr/", "usr/share/", "usr/share/doc/", "usr/share/doc/.wh.busybox",
}

func layerEntries(t *testing.T, img v1.Image) ([]string, map[string]string) {
	t.Helper()
	var names []string
	content := map[string]string{}
	for _, e := range testenv.TopLayer(t, img) {
		names = append(names, e.Header.Name)
		content[e.Header.Name] = e.Content
	}
	sort.Strings(names)
	return names, content
}

// TestRunCapturesExactlyTheChanges runs changeScript on each platform with each root
// filesystem provider: the layer holds exactly the changes, whiteouts included, and both
// providers give the same digest.
func TestRunCapturesExactlyTheChanges(t *testing.T) {
	e := setup(t)
	ctx := context.Background()
	for _, p := range buildertest.Platforms {
		digests := map[string]v1.Hash{}
		for _, prov := range []string{"overlay", "copy"} {
			t.Run(platform.Slug(p)+"/"+prov, func(t *testing.T) {
				var provider rootfs.Provider = rootfs.Copy{}
				if prov == "overlay" {
					var err error
					if provider, err = builder.OverlayProvider(e.st); err != nil {
						t.Fatal(err)
					}
				}
				o := e.opts(p, changeScript)
				o.Output.Capture = builder.CaptureLayer
				tag := store.Ref{Name: "changed-" + prov}
				res, err := builder.RunAndCommit(ctx, e.runner(t, builder.WithProvider(provider)), o, builder.Commit{CreatedBy: "test", Tag: &tag})
				if err != nil {
					t.Fatal(err)
				}
				if res.Provider != prov {
					t.Fatalf("ran with %s, want %s", res.Provider, prov)
				}
				names, content := layerEntries(t, res.Image)
				want := append([]string(nil), wantChanges...)
				sort.Strings(want)
				if strings.Join(names, "\n") != strings.Join(want, "\n") {
					t.Fatalf("layer entries:\n%s\nwant:\n%s", strings.Join(names, "\n"), strings.Join(want, "\n"))
				}
				if got := content["etc/motd"]; got != "hello from busybox\nmodified\n" {
					t.Errorf("etc/motd in the layer: %q", got)
				}
				log, err := os.ReadFile(res.Log)
				if err != nil {
					t.Fatal(err)
				}
				if want := "machine: " + platform.UnameMachine(p); !strings.Contains(string(log), want) {
					t.Errorf("log %q lacks %q", log, want)
				}
				if !strings.Contains(e.console.String(), "test | "+"machine: "+platform.UnameMachine(p)) {
					t.Errorf("console lacks the prefixed output line:\n%s", e.console.String())
				}
				cfg, _ := res.Image.ConfigFile()
				if cfg.Architecture != p.Architecture || len(cfg.History) != 2 {
					t.Errorf("config: architecture %s, %d history entries", cfg.Architecture, len(cfg.History))
				}
				digests[prov] = res.Descriptor.Digest
			})
		}
		if digests["overlay"] != digests["copy"] {
			t.Errorf("%s: overlay gave %s, copy %s", platform.String(p), digests["overlay"], digests["copy"])
		}
	}
}

func TestRunReusesSnapshots(t *testing.T) {
	e := setup(t)
	r := e.runner(t)
	p := buildertest.Platforms[0]
	first, err := r.Run(context.Background(), e.opts(p, "true"))
	if err != nil {
		t.Fatal(err)
	}
	second, err := r.Run(context.Background(), e.opts(p, "true"))
	if err != nil {
		t.Fatal(err)
	}
	if first.Snapshots.Extracted != 1 || second.Snapshots.Extracted != 0 || second.Snapshots.Reused != 1 {
		t.Fatalf("snapshots: first run %+v, second %+v; want 1 extracted, then 0 extracted and 1 reused", first.Snapshots, second.Snapshots)
	}
	// gc removes the snapshot with its layer.
	if _, err := e.st.Untag(context.Background(), store.Ref{Name: "busybox"}); err != nil {
		t.Fatal(err)
	}
	res, err := e.st.GC(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if res.Derived != 3 {
		t.Fatalf("gc removed %d entries of derived data, want 3 (the layer's snapshot, its list of whiteouts and its lock)", res.Derived)
	}
}

func TestNoNetworkUnlessAsked(t *testing.T) {
	e := setup(t)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { io.WriteString(w, "reached the host\n") })}
	go srv.Serve(ln)
	defer srv.Close()
	// busybox's nc, not its wget: Debian's static wget crashes in the resolver.
	host, port, _ := net.SplitHostPort(ln.Addr().String())
	script := fmt.Sprintf(`printf 'GET / HTTP/1.0\r\n\r\n' | nc %s %s`, host, port)
	p := buildertest.Platforms[0]

	res, err := e.runner(t).Run(context.Background(), e.opts(p, script))
	var failed *builder.FailedRunError
	if !errors.As(err, &failed) {
		t.Fatalf("without --network the host's loopback server was reachable (error %v)", err)
	}
	if log, _ := os.ReadFile(failed.Log); !strings.Contains(string(log), "Connection refused") {
		t.Fatalf("without network, nc should be refused; log: %q", log)
	}
	o := e.opts(p, script)
	o.Process.Network = true
	res, err = e.runner(t).Run(context.Background(), o)
	if err != nil {
		t.Fatalf("with network: %v", err)
	}
	if log, _ := os.ReadFile(res.Log); !strings.Contains(string(log), "reached the host") {
		t.Fatalf("with network the server's answer is missing: %q", log)
	}
}

func TestFailedRunTagsNothing(t *testing.T) {
	e := setup(t)
	tests := []struct {
		name    string
		script  string
		ctx     func() (context.Context, context.CancelFunc)
		timeout time.Duration
		wantErr string
	}{
		{name: "non-zero exit", script: "echo failing; exit 3", wantErr: "exited with status 3"},
		{name: "timeout", script: "echo sleeping; sleep 60", timeout: time.Second, wantErr: "timed out after 1s"},
		{name: "interrupted", script: "echo sleeping; sleep 60", ctx: func() (context.Context, context.CancelFunc) {
			return context.WithTimeout(context.Background(), 1500*time.Millisecond)
		}, wantErr: "context deadline exceeded"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ctx, cancel := context.Background(), context.CancelFunc(func() {})
			if tt.ctx != nil {
				ctx, cancel = tt.ctx()
			}
			defer cancel()
			o := e.opts(buildertest.Platforms[1], "echo partial > /partial; "+tt.script)
			o.Output.Capture, o.Process.Timeout = builder.CaptureLayer, tt.timeout
			start := time.Now()
			_, err := builder.RunAndCommit(ctx, e.runner(t), o, builder.Commit{Tag: &store.Ref{Name: "never"}})
			var failed *builder.FailedRunError
			if !errors.As(err, &failed) || !strings.Contains(err.Error(), tt.wantErr) {
				t.Fatalf("error %v, want a failed run saying %q", err, tt.wantErr)
			}
			if time.Since(start) > 20*time.Second {
				t.Errorf("stopping took %v", time.Since(start))
			}
			if log, _ := os.ReadFile(failed.Log); !bytes.Contains(log, []byte("test |")) && len(log) == 0 {
				t.Errorf("log %s is empty", failed.Log)
			}
			if _, _, err := e.st.Image(store.Ref{Name: "never"}); !errors.Is(err, store.ErrNotFound) {
				t.Errorf("a failed run tagged its image: %v", err)
			}
			assertNothingLeft(t, e.st)
			runs, _ := os.ReadDir(filepath.Join(e.st.Dir(), ".serpent", "runs"))
			if len(runs) != 0 {
				t.Errorf("run directories left: %d", len(runs))
			}
		})
	}
}

func TestKeepFailedKeepsFilesNotMounts(t *testing.T) {
	e := setup(t)
	o := e.opts(buildertest.Platforms[0], "echo evidence > /evidence; exit 1")
	o.KeepFailed = true
	_, err := e.runner(t).Run(context.Background(), o)
	var failed *builder.FailedRunError
	if !errors.As(err, &failed) || failed.Kept == "" || !strings.Contains(err.Error(), failed.Kept) {
		t.Fatalf("error %v, want a failed run naming the kept directory", err)
	}
	if b, err := os.ReadFile(filepath.Join(failed.Kept, "fs", "upper", "evidence")); err != nil || string(b) != "evidence\n" {
		t.Fatalf("kept upper directory lacks the run's file: %q %v", b, err)
	}
	if _, err := os.Stat(filepath.Join(failed.Kept, "bundle", "config.json")); err != nil {
		t.Fatalf("kept bundle: %v", err)
	}
	// Recover leaves a kept run alone.
	if _, err := e.runner(t).Recover(context.Background()); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(failed.Kept); err != nil {
		t.Fatalf("Recover removed a kept run: %v", err)
	}
}

func TestCaptureDirMakesANewImage(t *testing.T) {
	e := setup(t)
	o := e.opts(buildertest.Platforms[0], "mkdir -p /out/rootfs/bin && cp /bin/busybox /out/rootfs/bin/ && ln -s busybox /out/rootfs/bin/sh && echo made > /out/rootfs/marker")
	o.Output.Capture, o.Output.Dir = builder.CaptureDir, "/out/rootfs"
	res, err := builder.RunAndCommit(context.Background(), e.runner(t), o,
		builder.Commit{Platform: platform.MustParse("linux/arm64"), CreatedBy: "test", Tag: &store.Ref{Name: "made"}})
	if err != nil {
		t.Fatal(err)
	}
	names, content := layerEntries(t, res.Image)
	if strings.Join(names, " ") != "bin/ bin/busybox bin/sh marker" || content["marker"] != "made\n" {
		t.Fatalf("captured directory: %v %q", names, content["marker"])
	}
	layers, _ := res.Image.Layers()
	cfg, _ := res.Image.ConfigFile()
	if len(layers) != 1 || cfg.Architecture != "arm64" {
		t.Fatalf("captured image: %d layers, architecture %s; want 1 and arm64", len(layers), cfg.Architecture)
	}
}

// TestKilledRunIsRecovered kills a process that runs a container outright, as kill -9 does to
// serpent-oci: Recover removes the container, the mount and the run directory it left.
func TestKilledRunIsRecovered(t *testing.T) {
	e := setup(t)
	if os.Getenv("SERPENT_OCI_TEST_CHILD") == "" {
		exe, err := os.Executable()
		if err != nil {
			t.Fatal(err)
		}
		cmd := exec.Command(exe, "-test.run", "^TestKilledRunIsRecovered$", "-test.v")
		cmd.Env = append(os.Environ(), "SERPENT_OCI_TEST_CHILD="+e.st.Dir())
		var out testenv.Buffer
		cmd.Stdout, cmd.Stderr = &out, &out
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		deadline := time.Now().Add(30 * time.Second)
		for !strings.Contains(out.String(), "child | running") && time.Now().Before(deadline) {
			time.Sleep(50 * time.Millisecond)
		}
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
		child := strings.TrimSpace(out.String())
		st, err := store.Open(context.Background(), childStore(child))
		if err != nil {
			t.Fatal(err)
		}
		r, err := builder.NewRunner(st)
		if err != nil {
			t.Fatal(err)
		}
		rec, err := r.Recover(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		if len(rec.Mounts) == 0 || len(rec.Runs) == 0 {
			t.Errorf("Recover after a kill found %+v; want the run's mount and directory (child output:\n%s)", rec, child)
		}
		if _, _, err := st.Image(store.Ref{Name: "never"}); !errors.Is(err, store.ErrNotFound) {
			t.Errorf("killed run tagged its image: %v", err)
		}
		assertNothingLeft(t, st)
		return
	}
	// The child: announce its store, start a long run, be killed.
	fmt.Printf("store=%s\n", e.st.Dir())
	o := e.opts(buildertest.Platforms[1], "echo running; sleep 60")
	o.Name = "child"
	o.Output.Capture = builder.CaptureLayer
	_, _ = builder.RunAndCommit(context.Background(), e.runner(t, builder.WithConsole(os.Stdout)), o, builder.Commit{Tag: &store.Ref{Name: "never"}})
	t.Fatal("the child's run was not killed")
}

func childStore(out string) string {
	for _, line := range strings.Split(out, "\n") {
		if s, ok := strings.CutPrefix(strings.TrimSpace(line), "store="); ok {
			return s
		}
	}
	return ""
}

func TestRunRefusesMissingBinfmt(t *testing.T) {
	e := setup(t)
	o := e.opts(buildertest.Platforms[1], "true")
	_, err := e.runner(t, builder.WithBinfmtPaths(binfmtNowhere(t))).Run(context.Background(), o)
	if err == nil || !strings.Contains(err.Error(), "linux/arm64") || !strings.Contains(err.Error(), "serpent-oci binfmt --install") {
		t.Fatalf("run of arm64 without binfmt_misc: %v, want an error naming the platform and the fix", err)
	}
	_ = testenv.InCI
}

// TestConcurrentRunsDoNotCollide runs two committing runs at once in one store, on the same
// base: both succeed with their own changes.
func TestConcurrentRunsDoNotCollide(t *testing.T) {
	e := setup(t)
	var wg sync.WaitGroup
	results := make([]builder.Result, 2)
	errs := make([]error, 2)
	for i := range 2 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			o := e.opts(buildertest.Platforms[i], fmt.Sprintf("echo %d > /which; sleep 1", i))
			o.Output.Capture = builder.CaptureLayer
			results[i], errs[i] = builder.RunAndCommit(context.Background(), e.runner(t), o, builder.Commit{Tag: &store.Ref{Name: fmt.Sprintf("concurrent-%d", i)}})
		}()
	}
	wg.Wait()
	for i := range 2 {
		if errs[i] != nil {
			t.Fatalf("run %d: %v", i, errs[i])
		}
		_, content := layerEntries(t, results[i].Image)
		if content["which"] != fmt.Sprintf("%d\n", i) {
			t.Errorf("run %d captured /which = %q", i, content["which"])
		}
	}
	if results[0].ID == results[1].ID {
		t.Fatal("two runs got one container ID")
	}
}

// TestImageMountRunsHostToolsNatively: the host's busybox image, mounted into a run on the
// other platform, runs natively there (its uname says the host's machine, the emulated one's
// the target's), is found first on PATH when PathPrepend names it (ahead of the run's own
// PATH), cannot be written to, and leaves nothing in the captured layer. This is how a
// host-native toolchain accelerates an emulated stage (issue 17).
func TestImageMountRunsHostToolsNatively(t *testing.T) {
	e := setup(t)
	ctx := context.Background()
	host, foreign := platform.Host(), buildertest.Platforms[1]
	if platform.Equal(host, foreign) {
		foreign = buildertest.Platforms[0]
	}
	if _, ok := e.images[platform.String(host)]; !ok || platform.UnameMachine(host) == platform.UnameMachine(foreign) {
		t.Fatalf("the test images (%v) do not include the host's (%s) and another", buildertest.Platforms, platform.String(host))
	}
	o := e.opts(foreign, `set -e
echo "native: $(/serpent/tools/bin/busybox uname -m)"
echo "emulated: $(uname -m)"
echo "found: $(which uname) says $("$(which uname)" -m)"
echo "path: $PATH"
if echo x > /serpent/tools/written 2>/dev/null; then echo "the mount is writable"; exit 1; fi
echo made > /made`)
	o.Process.Mounts = []builder.Mount{{Image: e.images[platform.String(host)], Destination: "/serpent/tools"}}
	// The prefix goes ahead of the PATH the run has, here one its Env sets.
	o.Process.Env = []string{"PATH=/usr/bin:/bin"}
	o.Process.PathPrepend = []string{"/serpent/tools/bin"}
	o.Output.Capture = builder.CaptureLayer
	res, err := builder.RunAndCommit(ctx, e.runner(t), o, builder.Commit{Tag: &store.Ref{Name: "accelerated"}})
	if err != nil {
		t.Fatal(err)
	}
	log, err := os.ReadFile(res.Log)
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{
		"native: " + platform.UnameMachine(host), "emulated: " + platform.UnameMachine(foreign),
		"found: /serpent/tools/bin/uname says " + platform.UnameMachine(host), "path: /serpent/tools/bin:/usr/bin:/bin\n",
	} {
		if !strings.Contains(string(log), want) {
			t.Errorf("log lacks %q:\n%s", want, log)
		}
	}
	names, _ := layerEntries(t, res.Image)
	if strings.Join(names, " ") != "made" {
		t.Errorf("layer entries %v, want only the file the run made", names)
	}

	// An image of several layers has no one tree to bind.
	o = e.opts(foreign, "true")
	o.Process.Mounts = []builder.Mount{{Image: res.Image, Destination: "/serpent/tools"}}
	if _, err := e.runner(t).Run(ctx, o); err == nil || !strings.Contains(err.Error(), "only a one-layer image") {
		t.Errorf("a two-layer image mount: %v", err)
	}
}
