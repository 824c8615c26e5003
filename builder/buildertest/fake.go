package buildertest

import (
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"

	"github.com/serpent-os/serpent-oci/builder"
	"github.com/serpent-os/serpent-oci/oci/image"
	"github.com/serpent-os/serpent-oci/oci/store"
)

// FakeExecutor is a builder.Executor that runs no process: a run's captured layer holds one
// file, /fake-run/NAME, with a digest of everything the process could depend on (its
// arguments, environment, working directory, network, base image, what it captures, and the
// content of its read-only mounts: recipe files, sources, images by digest). Read-write mounts
// (cache directories) are left out, as a cache must not change what a stage makes. A run's
// Prepare does run, on an empty root, and what it writes is in the layer too (without a
// process, as for the runner, only that: a spin's copy step). So a fake build is
// deterministic, changes when a real one would, and needs no root, runc or qemu. It fakes
// the run alone: the layer is written as the runner writes one, and the image is
// builder.RunAndCommit's, as for a real run.
type FakeExecutor struct {
	st *store.Store
	// Fail, when set, is asked before each run: an error it returns is the run's.
	Fail func(builder.RunOptions) error
	// DependsOn, when set, maps a run's options to those its output depends on: a test's
	// model of something a run is given that changes nothing it makes (an accelerator that
	// compiles as the emulated compiler does).
	DependsOn func(builder.RunOptions) builder.RunOptions
	// Writes, when set, gives the files a run leaves in its root (absolute path -> content):
	// a test's model of what a script writes, such as the packages it installs
	// (Output.Packages), captured as the runner captures them.
	Writes func(builder.RunOptions) map[string]string

	mu   sync.Mutex
	runs []string
}

var _ builder.Executor = (*FakeExecutor)(nil)

// NewFake is a fake executor over st.
func NewFake(st *store.Store) *FakeExecutor { return &FakeExecutor{st: st} }

// Runs lists the names of the runs so far, in order.
func (f *FakeExecutor) Runs() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return slices.Clone(f.runs)
}

// On is a fake over st that shares f's failures and record of runs.
func (f *FakeExecutor) On(st *store.Store) (builder.Executor, error) {
	return &onStore{f, st}, nil
}

type onStore struct {
	*FakeExecutor
	st *store.Store
}

func (o *onStore) Store() *store.Store { return o.st }

func (o *onStore) Run(ctx context.Context, opts builder.RunOptions) (builder.Result, error) {
	return o.run(ctx, o.st, opts)
}

// RunHost runs nothing and fails: a fake has no host programs (stub the step out instead).
func (f *FakeExecutor) RunHost(_ context.Context, name string, cmd *exec.Cmd) (string, error) {
	return "", fmt.Errorf("%s: the fake executor runs no host program (%s)", name, cmd.Path)
}

// Store is the store the fake's runs are committed to.
func (f *FakeExecutor) Store() *store.Store { return f.st }

// Run makes the run's layer as described on FakeExecutor.
func (f *FakeExecutor) Run(ctx context.Context, opts builder.RunOptions) (builder.Result, error) {
	return f.run(ctx, f.st, opts)
}

func (f *FakeExecutor) run(ctx context.Context, st *store.Store, opts builder.RunOptions) (builder.Result, error) {
	name := opts.Name
	if name == "" {
		name = "run"
	}
	f.mu.Lock()
	f.runs = append(f.runs, name)
	f.mu.Unlock()
	res := builder.Result{ID: fmt.Sprintf("fake-%d", len(f.runs)), Provider: "fake"}
	if f.Fail != nil {
		if err := f.Fail(opts); err != nil {
			return res, err
		}
	}
	inputs := opts
	if f.DependsOn != nil {
		inputs = f.DependsOn(opts)
	}
	sum, err := inputsDigest(inputs)
	if err != nil {
		return res, fmt.Errorf("%s: %w", name, err)
	}
	res.Log = "fake run " + name + ": " + sum + "\n"
	if opts.Output.Capture == builder.CaptureNone {
		return res, nil
	}
	root, err := os.MkdirTemp(st.Dir(), ".fake-run-")
	if err != nil {
		return res, err
	}
	defer os.RemoveAll(root)
	if opts.Prepare != nil {
		if err := opts.Prepare(ctx, root); err != nil {
			return res, fmt.Errorf("%s: prepare: %w", name, err)
		}
	}
	if opts.Prepare == nil || len(opts.Process.Args) > 0 {
		if err := os.MkdirAll(filepath.Join(root, "fake-run"), 0o755); err != nil {
			return res, err
		}
		if err := os.WriteFile(filepath.Join(root, "fake-run", name), []byte(sum), 0o644); err != nil {
			return res, err
		}
	}
	if f.Writes != nil {
		for p, content := range f.Writes(opts) {
			full := filepath.Join(root, filepath.Clean("/"+p))
			if err := os.MkdirAll(filepath.Dir(full), 0o755); err != nil {
				return res, err
			}
			if err := os.WriteFile(full, []byte(content), 0o644); err != nil {
				return res, err
			}
		}
	}
	if opts.Output.Packages != "" {
		if res.Packages, err = builder.CapturePackages(ctx, st, root, opts.Output); err != nil {
			return res, fmt.Errorf("%s: capture: %w", name, err)
		}
		// The rootfs is the rest: the packages are not in it.
		if err := os.RemoveAll(filepath.Join(root, opts.Output.Packages)); err != nil {
			return res, err
		}
	}
	l, err := image.WriteLayer(ctx, st, root, opts.Output.Layer)
	if err != nil {
		return res, fmt.Errorf("%s: %w", name, err)
	}
	res.Layer = l
	res.LayerBytes, err = l.Size()
	return res, err
}

// inputsDigest is the digest of what a real run of opts could depend on.
func inputsDigest(opts builder.RunOptions) (string, error) {
	h := sha256.New()
	fmt.Fprintf(h, "args %q\nenv %q\npath-prepend %q\ncwd %q\nnetwork %v\nuser %q\ncapture %d %q %v\n",
		opts.Process.Args, opts.Process.Env, opts.Process.PathPrepend, opts.Process.Cwd, opts.Process.Network, opts.Process.User, opts.Output.Capture, opts.Output.Dir, opts.Platform)
	if opts.Base != nil {
		d, err := opts.Base.Digest()
		if err != nil {
			return "", err
		}
		fmt.Fprintf(h, "base %s\n", d)
	}
	mounts := slices.Clone(opts.Process.Mounts)
	slices.SortFunc(mounts, func(a, b builder.Mount) int { return strings.Compare(a.Destination, b.Destination) })
	for _, m := range mounts {
		if m.Image != nil {
			d, err := m.Image.Digest()
			if err != nil {
				return "", err
			}
			fmt.Fprintf(h, "mount %s image %s\n", m.Destination, d)
			continue
		}
		if !m.ReadOnly {
			continue
		}
		fmt.Fprintf(h, "mount %s\n", m.Destination)
		err := filepath.WalkDir(m.Source, func(p string, d fs.DirEntry, err error) error {
			if err != nil || d.IsDir() {
				return err
			}
			rel, _ := filepath.Rel(m.Source, p)
			b, err := os.ReadFile(p)
			if err != nil {
				return err
			}
			fmt.Fprintf(h, "file %s %x\n", rel, sha256.Sum256(b))
			return nil
		})
		if err != nil && !errors.Is(err, fs.ErrNotExist) {
			return "", err
		}
	}
	return fmt.Sprintf("sha256:%x", h.Sum(nil)), nil
}
