package builder

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"maps"
	"os"
	"os/exec"
	"path"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/containerd/log"
	securejoin "github.com/cyphar/filepath-securejoin"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/serpent-os/serpent-oci/builder/binfmt"
	"github.com/serpent-os/serpent-oci/builder/rootfs"
	"github.com/serpent-os/serpent-oci/builder/runc"
	"github.com/serpent-os/serpent-oci/builder/snapshot"
	"github.com/serpent-os/serpent-oci/oci/filekind"
	"github.com/serpent-os/serpent-oci/oci/image"
	"github.com/serpent-os/serpent-oci/oci/layer"
	"github.com/serpent-os/serpent-oci/oci/packages"
	"github.com/serpent-os/serpent-oci/oci/platform"
	"github.com/serpent-os/serpent-oci/oci/store"
	"golang.org/x/sys/unix"
)

// ContainerPrefix starts the name of every container serpent-oci runs.
const ContainerPrefix = "serpent-"

// Runner runs commands in images of one store.
type Runner struct {
	store    *store.Store
	runtime  *runc.Runtime
	binfmt   binfmt.Paths
	provider rootfs.Provider
	snaps    *snapshot.Snapshotter
	console  io.Writer
	runsDir  string
	logsDir  string
}

// Option configures a Runner.
type Option func(*Runner) error

// WithProvider chooses how runs get their root filesystem (default: overlayfs, falling back to
// a copy where overlayfs cannot be mounted).
func WithProvider(p rootfs.Provider) Option {
	return func(r *Runner) error {
		if p == nil {
			return errors.New("nil rootfs provider")
		}
		r.provider = p
		return nil
	}
}

// WithConsole sends the live output of runs to w, each line prefixed with the run's name
// (default: standard error).
func WithConsole(w io.Writer) Option {
	return func(r *Runner) error { r.console = w; return nil }
}

// WithRuncBinary runs containers with the given runc binary (default: runc from PATH).
func WithRuncBinary(path string) Option {
	return func(r *Runner) error { r.runtime.Binary = path; return nil }
}

// WithBinfmtPaths says where binfmt_misc is (tests point it elsewhere).
func WithBinfmtPaths(p binfmt.Paths) Option {
	return func(r *Runner) error { r.binfmt = p; return nil }
}

// NewRunner returns a runner over st. It does not clean up after earlier runs: call Recover.
func NewRunner(st *store.Store, opts ...Option) (*Runner, error) {
	runs, err := st.PrivateDir("runs")
	if err != nil {
		return nil, err
	}
	logs, err := st.PrivateDir("logs")
	if err != nil {
		return nil, err
	}
	state, err := st.PrivateDir("runc")
	if err != nil {
		return nil, err
	}
	snaps, err := snapshot.New(st)
	if err != nil {
		return nil, err
	}
	r := &Runner{
		store:   st,
		runtime: &runc.Runtime{StateDir: state},
		binfmt:  binfmt.DefaultPaths,
		snaps:   snaps,
		console: os.Stderr,
		runsDir: runs,
		logsDir: logs,
	}
	for _, o := range opts {
		if err := o(r); err != nil {
			return nil, err
		}
	}
	return r, nil
}

// Capture says what a run's result is.
type Capture int

const (
	// CaptureNone keeps nothing: the run is for its exit status and output.
	CaptureNone Capture = iota
	// CaptureLayer appends what the run changed, as one layer, to the base image.
	CaptureLayer
	// CaptureDir makes a new one-layer image, on scratch, of a directory the run filled.
	CaptureDir
)

// RunOptions describes one run: a process (or a Prepare step alone) in a root made from
// Base, and what is made of what it changed.
type RunOptions struct {
	Name     string      // for the console prefix, the log file and the history (default "run")
	Base     v1.Image    // the image to run in
	BaseName string      // how the base is known (for the history and annotations)
	Platform v1.Platform // the base's platform

	Process Process

	// Prepare, when set, is called with the root filesystem's path (on the host) before the
	// container starts: what it writes there is part of the run's changes. With Prepare and
	// no Process.Args, no container runs at all (a spin's copy step).
	Prepare func(ctx context.Context, root string) error

	Output Output

	KeepFailed bool // keep a failed run's directory (unmounted) and say where
}

// Process is what runs in the container and how it meets the world.
type Process struct {
	Args    []string
	Env     []string // added to the image's environment; later keys win
	Cwd     string   // default: the image's working directory, else /
	Network bool     // the host's network (default: a namespace with loopback only)
	// NetNS, without Network, is a network namespace for the process to join instead of a
	// new one (builder/netns): loopback, and listeners the caller serves in it.
	NetNS  string
	Mounts []Mount
	// PathPrepend are directories put ahead of the process's PATH, whichever set it (the
	// image's config or Env): an accelerator's tools, found before the root's own.
	PathPrepend []string
	Timeout     time.Duration
	// User is who the process runs as, in the image config's form: uid, uid:gid, name or
	// name:group, names read from the root's /etc/passwd and /etc/group ("": root).
	User     string
	Stdin    io.Reader
	Terminal bool // interactive: the process gets a terminal (output is then not logged)
	// Stdout and Stderr, when set, receive the process's output as it is, apart (no console
	// prefix, as podman run); the log still gets both.
	Stdout, Stderr io.Writer
}

// Output is what a run keeps of what it changed: the executor captures it as one layer,
// stored in the store (Result.Layer), and reads the files Files names; what image is made of
// them, and where it is tagged, is Commit's.
type Output struct {
	Capture Capture
	Dir     string // with CaptureDir: the directory in the container
	Layer   layer.WriteOptions
	// Files maps keys to files the run writes (absolute paths in the container): each
	// file's content is read from the root the run left into Result.Files under its key
	// (JSON compacted), for Commit to make annotations of.
	Files map[string]string
	// Packages, with a capture, is a directory in the container whose subdirectories the run
	// filled as packages: NAME/ one component's tree (all under usr/), NAME.json beside it.
	// Each is captured as a layer of its own, read (packages.Scan) into Result.Packages.
	Packages string
}

// CapturedPackage is a package a run left: its layer in the store, what its files say, and
// its NAME.json as the run wrote it, for the commit to read.
type CapturedPackage struct {
	Name     string
	Meta     []byte
	Contents packages.Contents
	Layer    v1.Layer
}

// Result is what a run did.
type Result struct {
	ID  string
	Log string // the run's whole output
	// Layer is, with a capture, the layer of what the run changed (or of the captured
	// directory), in the store: hold the store (store.Hold) until an image that uses it is
	// tagged, as RunAndCommit does.
	Layer v1.Layer
	Files map[string]string // Output.Files' contents, by key
	// Packages are the packages captured from Output.Packages, by name; PackageImages are
	// what the commit made of them, in the same order.
	Packages      []CapturedPackage
	PackageImages []v1.Image
	// Image and Descriptor are what Commit made of Layer: the image, and where it is tagged.
	Image      v1.Image
	Descriptor v1.Descriptor
	Provider   string
	Snapshots  snapshot.Stats
	Prepare    time.Duration // snapshots and root filesystem
	Run        time.Duration // the container
	Capture    time.Duration // layer, image and tag
	LayerBytes int64         // compressed size of the captured layer
}

// FailedRunError is a run that failed after its container started: the log says why.
type FailedRunError struct {
	Name, Log, Kept string
	Err             error
}

func (e *FailedRunError) Error() string {
	msg := fmt.Sprintf("run %s: %v (log: %s)", e.Name, e.Err, e.Log)
	if e.Kept != "" {
		msg += fmt.Sprintf("; kept its files at %s", e.Kept)
	}
	return msg
}

func (e *FailedRunError) Unwrap() error { return e.Err }

func newID() string {
	b := make([]byte, 6)
	_, _ = rand.Read(b)
	return ContainerPrefix + hex.EncodeToString(b)
}

// Run runs opts.Process in opts.Base and, with a capture, stores what it changed as a layer
// (Result.Layer). On failure or interruption the container is gone, nothing is left mounted,
// and the log stays. It makes no image: RunAndCommit does.
func (r *Runner) Run(ctx context.Context, opts RunOptions) (Result, error) {
	if opts.Name == "" {
		opts.Name = "run"
	}
	var res Result
	if len(opts.Process.Args) == 0 && opts.Prepare == nil {
		return res, errors.New("run: no command given")
	}
	if opts.Output.Capture == CaptureDir && !filepath.IsAbs(opts.Output.Dir) {
		return res, fmt.Errorf("run: captured directory %q must be absolute", opts.Output.Dir)
	}
	if err := r.binfmt.Check(opts.Platform); err != nil {
		return res, fmt.Errorf("run %s: %w", opts.Name, err)
	}
	res.ID = newID()
	ctx = log.WithLogger(ctx, log.G(ctx).WithFields(log.Fields{"stage": opts.Name, "platform": platform.String(opts.Platform), "container": res.ID}))

	release, err := r.store.Hold(ctx)
	if err != nil {
		return res, err
	}
	defer release()
	unlock, err := r.lockRun(res.ID)
	if err != nil {
		return res, err
	}
	defer unlock()

	runDir := filepath.Join(r.runsDir, res.ID)
	start := time.Now()
	ws, err := r.prepare(ctx, opts, runDir, &res)
	if err != nil {
		_ = os.RemoveAll(runDir)
		return res, fmt.Errorf("run %s: prepare root filesystem: %w", opts.Name, err)
	}
	err = r.runIn(ctx, ws, runDir, start, opts, &res)
	keep := err != nil && opts.KeepFailed
	if cerr := closeWorkspace(ws, runDir, keep); cerr != nil && err == nil {
		err = cerr
	}
	if keep {
		var fre *FailedRunError
		if errors.As(err, &fre) {
			fre.Kept = runDir
		} else {
			log.G(ctx).WithField("path", runDir).Warn("kept the failed run's files")
		}
	}
	return res, err
}

// prepare makes the run's root filesystem in runDir/fs with the runner's provider: overlayfs
// unless told otherwise, a private copy where overlayfs cannot be mounted.
func (r *Runner) prepare(ctx context.Context, opts RunOptions, runDir string, res *Result) (rootfs.Workspace, error) {
	provider := r.provider
	if provider == nil {
		provider = &rootfs.Overlay{Snapshots: r.snaps}
	}
	dir := filepath.Join(runDir, "fs")
	ws, err := provider.Prepare(ctx, opts.Base, dir)
	if errors.Is(err, rootfs.ErrOverlayUnavailable) && r.provider == nil {
		// Only a failed mount falls back: a layer that cannot be extracted fails the copy too,
		// and is said once, as what it is.
		log.G(ctx).WithError(err).Warn("falling back to a private copy of the base")
		_ = os.RemoveAll(dir)
		provider = rootfs.Copy{}
		ws, err = provider.Prepare(ctx, opts.Base, dir)
	}
	if err != nil {
		return nil, err
	}
	res.Provider = provider.Name()
	res.Snapshots = rootfs.SnapshotStats(ws)
	return ws, nil
}

// closeWorkspace removes the run's directory, or with keep unmounts it and leaves its files
// (marked kept, so that Recover leaves them too).
func closeWorkspace(ws rootfs.Workspace, runDir string, keep bool) error {
	if keep {
		_ = os.WriteFile(filepath.Join(runDir, "kept"), nil, 0o600)
		if u, ok := ws.(rootfs.Unmounter); ok {
			return u.Unmount()
		}
		return nil
	}
	err := ws.Close()
	_ = os.RemoveAll(runDir)
	return err
}

// runIn does the run's work in its workspace: the Prepare step, the process, the capture.
func (r *Runner) runIn(ctx context.Context, ws rootfs.Workspace, runDir string, start time.Time, opts RunOptions, res *Result) error {
	if opts.Prepare != nil {
		if err := opts.Prepare(ctx, ws.Root()); err != nil {
			return fmt.Errorf("run %s: %w", opts.Name, err)
		}
	}
	res.Prepare = time.Since(start)
	var missing []string
	if len(opts.Process.Args) > 0 {
		var err error
		if missing, err = r.runProcess(ctx, ws, runDir, opts, res); err != nil {
			return err
		}
		if res.Files, err = readFiles(ws.Root(), opts.Output.Files); err != nil {
			return fmt.Errorf("run %s: %w", opts.Name, err)
		}
	}
	return r.capture(ctx, ws, missing, opts, res)
}

// runProcess runs the process in a runc container over ws and returns the mount points the
// runtime had to create in the root (to be left out of a capture). A process that fails is a
// *FailedRunError.
func (r *Runner) runProcess(ctx context.Context, ws rootfs.Workspace, runDir string, opts RunOptions, res *Result) ([]string, error) {
	p := opts.Process
	cfg, err := opts.Base.ConfigFile()
	if err != nil {
		return nil, fmt.Errorf("run %s: base config: %w", opts.Name, err)
	}
	cwd := p.Cwd
	if cwd == "" {
		cwd = cfg.Config.WorkingDir
	}
	env := runc.MergeEnv(append(append([]string{image.DefaultPath}, cfg.Config.Env...), p.Env...))
	if len(p.PathPrepend) > 0 {
		for i, kv := range env {
			if path, ok := strings.CutPrefix(kv, "PATH="); ok {
				env[i] = "PATH=" + strings.Join(p.PathPrepend, ":") + ":" + path
			}
		}
	}
	if len(p.Args) > 0 {
		pathList := ""
		for _, kv := range env {
			if v, ok := strings.CutPrefix(kv, "PATH="); ok {
				pathList = v
			}
		}
		var mountPoints []string
		for _, m := range p.Mounts {
			mountPoints = append(mountPoints, path.Clean(m.Destination))
		}
		if err := findCommand(ws.Root(), p.Args[0], cwd, pathList, mountPoints); err != nil {
			return nil, fmt.Errorf("run %s: %w", opts.Name, err)
		}
	}
	uid, gid, err := ResolveUser(ws.Root(), p.User)
	if err != nil {
		return nil, fmt.Errorf("run %s: %w", opts.Name, err)
	}
	mounts, err := r.runcMounts(ctx, p.Mounts)
	if err != nil {
		return nil, fmt.Errorf("run %s: %w", opts.Name, err)
	}
	spec, err := runc.Spec(runc.SpecOptions{
		Rootfs: ws.Root(), Args: p.Args, Env: env, Cwd: cwd,
		Network: p.Network, ResolvConf: resolvConf(p.Network), NetNS: p.NetNS,
		Mounts: mounts, Terminal: p.Terminal, UID: uid, GID: gid,
	})
	if err != nil {
		return nil, err
	}
	missing := rootfs.Missing(ws.Root(), runc.MountPoints(spec))
	bundle := filepath.Join(runDir, "bundle")
	if err := runc.WriteBundle(bundle, spec); err != nil {
		return nil, fmt.Errorf("run %s: %w", opts.Name, err)
	}

	// A tag may have parts (full/stage3): the log is one file all the same.
	res.Log = filepath.Join(r.logsDir, strings.ReplaceAll(opts.Name, "/", "_")+"-"+res.ID+".log")
	logFile, err := os.Create(res.Log)
	if err != nil {
		return nil, fmt.Errorf("run %s: log: %w", opts.Name, err)
	}
	defer logFile.Close()
	stdio, flush := r.stdio(p, opts.Name, logFile)

	runCtx := ctx
	if p.Timeout > 0 {
		var cancel context.CancelFunc
		runCtx, cancel = context.WithTimeoutCause(ctx, p.Timeout, fmt.Errorf("timed out after %v", p.Timeout))
		defer cancel()
	}
	log.G(ctx).WithFields(log.Fields{"provider": res.Provider, "args": strings.Join(p.Args, " ")}).Debug("starting container")
	start := time.Now()
	runErr := r.runtime.Run(runCtx, res.ID, bundle, stdio)
	res.Run = time.Since(start)
	flush()
	if runErr != nil {
		if cause := context.Cause(runCtx); cause != nil && runCtx.Err() != nil && ctx.Err() == nil {
			runErr = fmt.Errorf("%w: %w", cause, runErr)
		}
		return nil, &FailedRunError{Name: opts.Name, Log: res.Log, Err: runErr}
	}
	return missing, nil
}

// stdio is where the process's streams go: a terminal's straight to ours; with Stdout or
// Stderr, to them as they are and to the log; else to the log and the console, each line
// prefixed with the run's name. flush writes out a last unfinished console line.
func (r *Runner) stdio(p Process, name string, logFile io.Writer) (stdio runc.Stdio, flush func()) {
	stdio.Stdin = p.Stdin
	switch {
	case p.Terminal:
		stdio.Stdout, stdio.Stderr, stdio.Terminal = os.Stdout, os.Stderr, true
	case p.Stdout != nil || p.Stderr != nil:
		stdout, stderr := p.Stdout, p.Stderr
		if stdout == nil {
			stdout = io.Discard
		}
		if stderr == nil {
			stderr = io.Discard
		}
		// Both streams reach the log, each from a goroutine of its own: one lock between them.
		lf := &syncWriter{w: logFile}
		stdio.Stdout, stdio.Stderr = io.MultiWriter(lf, stdout), io.MultiWriter(lf, stderr)
	default:
		console := newPrefixWriter(r.console, name+" | ")
		out := io.MultiWriter(logFile, console)
		stdio.Stdout, stdio.Stderr = out, out
		return stdio, func() { _ = console.Flush() }
	}
	return stdio, func() {}
}

// runcMounts are the run's mounts as runc takes them: an image mount binds its layer's
// snapshot, read-only (the run holds the store, so gc leaves the snapshot alone).
func (r *Runner) runcMounts(ctx context.Context, ms []Mount) ([]runc.Mount, error) {
	out := make([]runc.Mount, len(ms))
	for i, m := range ms {
		out[i] = runc.Mount{Source: m.Source, Destination: m.Destination, ReadOnly: m.ReadOnly}
		if m.Image == nil {
			continue
		}
		if m.Source != "" {
			return nil, fmt.Errorf("mount at %s: both a source and an image", m.Destination)
		}
		dirs, _, err := r.snaps.Prepare(ctx, m.Image)
		if err != nil {
			return nil, fmt.Errorf("mount at %s: %w", m.Destination, err)
		}
		if len(dirs) != 1 {
			return nil, fmt.Errorf("mount at %s: the image has %d layers; only a one-layer image (a rootfs output) can be mounted", m.Destination, len(dirs))
		}
		out[i].Source, out[i].ReadOnly = dirs[0], true
	}
	return out, nil
}

// capture makes the run's result, as opts.Output.Capture says.
func (r *Runner) capture(ctx context.Context, ws rootfs.Workspace, missing []string, opts RunOptions, res *Result) error {
	start := time.Now()
	var err error
	switch opts.Output.Capture {
	case CaptureLayer:
		err = r.captureLayer(ctx, ws, missing, opts, res)
	case CaptureDir:
		err = r.captureDir(ctx, ws, opts, res)
	}
	if err == nil && opts.Output.Packages != "" {
		res.Packages, err = CapturePackages(ctx, r.store, ws.Root(), opts.Output)
	}
	res.Capture = time.Since(start)
	if err != nil {
		return fmt.Errorf("run %s: capture: %w", opts.Name, err)
	}
	return nil
}

// Bounds on the packages a run may leave.
const (
	maxPackages    = 10_000
	maxPackageMeta = 64 << 10
)

// CapturePackages captures the packages a run left under out.Packages in root: each
// subdirectory NAME (a plain directory, named as a package is) with NAME.json beside it, as
// a layer written as out.Layer says, in name order. Anything else there is an error: the
// packages are the recipe's to make exactly. The executors share it: the fake captures what
// a Prepare wrote alike.
func CapturePackages(ctx context.Context, st *store.Store, root string, out Output) ([]CapturedPackage, error) {
	dir, err := rootfs.PlainDir(root, out.Packages)
	switch {
	case errors.Is(err, rootfs.ErrNotPlain):
		return nil, fmt.Errorf("refusing to capture packages from %s: %w", out.Packages, err)
	case err != nil:
		return nil, fmt.Errorf("the run left no directory of packages at %s", out.Packages)
	}
	entries, err := os.ReadDir(dir)
	if err != nil {
		return nil, err
	}
	names := map[string]bool{}
	for _, e := range entries {
		if name, ok := strings.CutSuffix(e.Name(), ".json"); ok && e.Type().IsRegular() {
			if _, ok := names[name]; !ok {
				names[name] = false // a directory must come too
			}
			continue
		}
		if !e.IsDir() {
			return nil, fmt.Errorf("packages: %s/%s is a %s: want NAME/ and NAME.json only", out.Packages, e.Name(), filekind.Of(e.Type()))
		}
		if err := packages.CheckName(e.Name()); err != nil {
			return nil, fmt.Errorf("packages: %s/%s: %w", out.Packages, e.Name(), err)
		}
		names[e.Name()] = true
	}
	if len(names) > maxPackages {
		return nil, fmt.Errorf("packages: %d in %s, more than %d", len(names), out.Packages, maxPackages)
	}
	w := out.Layer
	w.Format = layer.Dir
	var captured []CapturedPackage
	for _, name := range slices.Sorted(maps.Keys(names)) {
		where := out.Packages + "/" + name
		if !names[name] {
			return nil, fmt.Errorf("packages: %s.json has no directory %s/ beside it", where, name)
		}
		meta, err := readRegularInRoot(root, where+".json", maxPackageMeta)
		if err != nil {
			return nil, fmt.Errorf("packages: %s.json: %w", where, err)
		}
		pdir := filepath.Join(dir, name)
		c, err := packages.Scan(pdir)
		if err != nil {
			return nil, fmt.Errorf("package %s (%s): %w", name, where, err)
		}
		l, err := image.WriteLayer(ctx, st, pdir, w)
		if err != nil {
			return nil, fmt.Errorf("package %s: %w", name, err)
		}
		captured = append(captured, CapturedPackage{Name: name, Meta: meta, Contents: c, Layer: l})
	}
	return captured, nil
}

// maxAnnotation bounds a file read for an annotation: manifests are meant to stay small.
const maxAnnotation = 256 << 10

// readFiles reads the files files names (by key) from the root the run left. What a run
// leaves is the recipe's doing: each path is resolved inside root as the root's own programs
// would see it (securejoin: symlinks, absolute ones too, stay in it), must be a regular file
// (a FIFO would hang the build) and is read no further than maxAnnotation.
func readFiles(root string, files map[string]string) (map[string]string, error) {
	if len(files) == 0 {
		return nil, nil
	}
	out := make(map[string]string, len(files))
	for key, p := range files {
		b, err := readRegularInRoot(root, p, maxAnnotation)
		if err != nil {
			return nil, fmt.Errorf("annotation %s: %s: %w", key, p, err)
		}
		out[key] = compactJSON(b)
	}
	return out, nil
}

// readRegularInRoot reads the regular file name, resolved inside root, whole; it refuses one
// over limit bytes. Nothing but a regular file is opened: a FIFO would hang the caller and a
// device would be opened on the host. A missing file is an error that wraps fs.ErrNotExist.
func readRegularInRoot(root, name string, limit int64) ([]byte, error) {
	full, err := securejoin.SecureJoin(root, name)
	if err != nil {
		return nil, err
	}
	fi, err := os.Lstat(full)
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return nil, fmt.Errorf("no such file: %w", fs.ErrNotExist)
		}
		return nil, err
	}
	if !fi.Mode().IsRegular() {
		return nil, fmt.Errorf("is a %s, not a regular file", filekind.Of(fi.Mode()))
	}
	// Resolved and looked at: the last element is no symlink and the file no FIFO or device,
	// unless the root changed since (O_NOFOLLOW, O_NONBLOCK, O_NOCTTY, and the check after).
	f, err := os.OpenFile(full, os.O_RDONLY|syscall.O_NOFOLLOW|syscall.O_NONBLOCK|syscall.O_NOCTTY, 0)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	fi, err = f.Stat()
	switch {
	case err != nil:
		return nil, err
	case !fi.Mode().IsRegular():
		return nil, fmt.Errorf("is a %s, not a regular file", filekind.Of(fi.Mode()))
	case fi.Size() > limit:
		return nil, fmt.Errorf("%d bytes, over the limit of %d", fi.Size(), limit)
	}
	b, err := io.ReadAll(io.LimitReader(f, limit+1))
	if err == nil && int64(len(b)) > limit {
		err = fmt.Errorf("over the limit of %d bytes", limit)
	}
	return b, err
}

// compactJSON returns b without insignificant space when it is JSON, else trimmed.
func compactJSON(b []byte) string {
	var buf bytes.Buffer
	if err := json.Compact(&buf, b); err == nil {
		return buf.String()
	}
	return strings.TrimSpace(string(b))
}

func resolvConf(network bool) string {
	if !network {
		return ""
	}
	if _, err := os.Stat("/etc/resolv.conf"); err == nil {
		return "/etc/resolv.conf"
	}
	return ""
}

func (r *Runner) captureLayer(ctx context.Context, ws rootfs.Workspace, missing []string, opts RunOptions, res *Result) error {
	changes, err := ws.Changes(ctx)
	if err != nil {
		return err
	}
	removed, err := rootfs.RemoveCreated(changes, missing)
	if err != nil {
		return err
	}
	if len(removed) > 0 {
		log.G(ctx).WithField("paths", removed).Debug("left the runtime's mount points out of the layer")
	}
	w := opts.Output.Layer
	w.Format = layer.OverlayUpper
	return r.storeLayer(ctx, changes, w, res)
}

func (r *Runner) captureDir(ctx context.Context, ws rootfs.Workspace, opts RunOptions, res *Result) error {
	// Every component a plain directory: a run that replaced /build by a symlink to a host
	// directory must not get that directory captured.
	dir, err := rootfs.PlainDir(ws.Root(), opts.Output.Dir)
	switch {
	case errors.Is(err, rootfs.ErrNotPlain):
		return fmt.Errorf("refusing to capture %s: %w", opts.Output.Dir, err)
	case err != nil:
		return fmt.Errorf("the run left no directory at %s to capture", opts.Output.Dir)
	}
	w := opts.Output.Layer
	w.Format = layer.Dir
	return r.storeLayer(ctx, dir, w, res)
}

// storeLayer writes the tree at root into the store as the run's layer.
func (r *Runner) storeLayer(ctx context.Context, root string, w layer.WriteOptions, res *Result) error {
	l, err := image.WriteLayer(ctx, r.store, root, w)
	if err != nil {
		return err
	}
	res.Layer = l
	res.LayerBytes, _ = l.Size()
	return nil
}

// lockRun marks run id as alive for as long as this process holds the lock, so that Recover
// in another process leaves it alone.
func (r *Runner) lockRun(id string) (func(), error) {
	f, err := os.OpenFile(filepath.Join(r.runsDir, id+".lock"), os.O_CREATE|os.O_RDWR, 0o600)
	if err != nil {
		return nil, fmt.Errorf("lock run: %w", err)
	}
	if err := unix.Flock(int(f.Fd()), unix.LOCK_EX|unix.LOCK_NB); err != nil {
		f.Close()
		return nil, fmt.Errorf("lock run %s: %w", id, err)
	}
	return func() {
		os.Remove(f.Name())
		f.Close()
	}, nil
}

// OverlayProvider is the overlayfs provider over st's layer snapshots.
func OverlayProvider(st *store.Store) (rootfs.Provider, error) {
	snaps, err := snapshot.New(st)
	if err != nil {
		return nil, err
	}
	return &rootfs.Overlay{Snapshots: snaps}, nil
}

// syncWriter serialises writes to w from several goroutines.
type syncWriter struct {
	mu sync.Mutex
	w  io.Writer
}

func (s *syncWriter) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.w.Write(p)
}

// RunHost runs cmd on the host itself (no container: for what is made before there is an image
// to run in, such as the seed) the way Run reports a container's process: its output on the
// console, each line prefixed with name, and whole in a log in the store's log directory,
// whose path it returns. cmd's Stdout and Stderr are set here.
func (r *Runner) RunHost(ctx context.Context, name string, cmd *exec.Cmd) (string, error) {
	logPath := filepath.Join(r.logsDir, strings.ReplaceAll(name, "/", "_")+"-"+newID()+".log")
	f, err := os.Create(logPath)
	if err != nil {
		return "", fmt.Errorf("%s: log: %w", name, err)
	}
	defer f.Close()
	console := newPrefixWriter(r.console, name+" | ")
	out := &syncWriter{w: io.MultiWriter(f, console)}
	cmd.Stdout, cmd.Stderr = out, out
	log.G(ctx).WithFields(log.Fields{"stage": name, "command": strings.Join(cmd.Args, " ")}).Debug("running on the host")
	err = cmd.Run()
	_ = console.Flush()
	if err != nil {
		return logPath, fmt.Errorf("%s: %w (log: %s)", filepath.Base(cmd.Path), err, logPath)
	}
	return logPath, nil
}
