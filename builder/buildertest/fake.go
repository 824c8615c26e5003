package buildertest

import (
	"archive/tar"
	"bytes"
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
	"github.com/serpent-os/serpent-oci/builder"
	"github.com/serpent-os/serpent-oci/oci/image"
	"github.com/serpent-os/serpent-oci/oci/store"
)

// FakeExecutor is a builder.Executor that runs nothing: a run's captured change is one file,
// /fake-run/NAME, holding a digest of everything the run could depend on (its arguments,
// environment, working directory, network, base image, what it captures, and the content of
// its read-only mounts: recipe files, sources, images by digest). Read-write mounts (cache
// directories) are left out, as a cache must not change what a stage makes. So a fake build
// is deterministic, changes when a real one would, and needs no root, runc or qemu.
type FakeExecutor struct {
	Store *store.Store
	// Fail, when set, is asked before each run: an error it returns is the run's.
	Fail func(builder.RunOptions) error
	// DependsOn, when set, maps a run's options to those its output depends on: a test's
	// model of something a run is given that changes nothing it makes (an accelerator that
	// compiles as the emulated compiler does).
	DependsOn func(builder.RunOptions) builder.RunOptions

	mu   sync.Mutex
	runs []string
}

var _ builder.Executor = (*FakeExecutor)(nil)

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

func (o *onStore) Run(ctx context.Context, opts builder.RunOptions) (builder.Result, error) {
	return o.run(ctx, o.st, opts)
}

// RunHost runs nothing and fails: a fake has no host programs (stub the step out instead).
func (f *FakeExecutor) RunHost(_ context.Context, name string, cmd *exec.Cmd) (string, error) {
	return "", fmt.Errorf("%s: the fake executor runs no host program (%s)", name, cmd.Path)
}

// Run makes the run's image as described on FakeExecutor, tagged as opts.Output.Tag says.
func (f *FakeExecutor) Run(ctx context.Context, opts builder.RunOptions) (builder.Result, error) {
	return f.run(ctx, f.Store, opts)
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
	l, err := fileLayer("fake-run/"+name, sum)
	if err != nil {
		return res, err
	}
	var base v1.Image // CaptureDir: a new image on scratch
	if opts.Output.Capture != builder.CaptureDir {
		base = image.WithoutAnnotations(opts.Base)
	}
	img, err := image.Append(base, opts.Output.Platform, l, image.AppendOptions{Layer: opts.Output.Layer, CreatedBy: opts.Output.CreatedBy})
	if err != nil {
		return res, err
	}
	annotations, err := builder.ImageAnnotations(opts)
	if err != nil {
		return res, err
	}
	img = mutate.Annotations(img, annotations).(v1.Image)
	res.Image = img
	res.LayerBytes, _ = l.Size()
	if opts.Output.Tag != nil {
		if res.Descriptor, err = st.WriteImage(ctx, img, *opts.Output.Tag); err != nil {
			return res, err
		}
	}
	return res, nil
}

// inputsDigest is the digest of what a real run of opts could depend on.
func inputsDigest(opts builder.RunOptions) (string, error) {
	h := sha256.New()
	fmt.Fprintf(h, "args %q\nenv %q\npath-prepend %q\ncwd %q\nnetwork %v\nuser %q\ncapture %d %q %v\n",
		opts.Process.Args, opts.Process.Env, opts.Process.PathPrepend, opts.Process.Cwd, opts.Process.Network, opts.Process.User, opts.Output.Capture, opts.Output.Dir, opts.Output.Platform)
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

// fileLayer is a gzip layer of one regular file, the same bytes every time.
func fileLayer(name, content string) (v1.Layer, error) {
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	hdr := &tar.Header{Name: name, Mode: 0o644, Size: int64(len(content)), Typeflag: tar.TypeReg, Format: tar.FormatPAX}
	if err := tw.WriteHeader(hdr); err != nil {
		return nil, err
	}
	if _, err := io.WriteString(tw, content); err != nil {
		return nil, err
	}
	if err := tw.Close(); err != nil {
		return nil, err
	}
	b := buf.Bytes()
	return tarball.LayerFromOpener(func() (io.ReadCloser, error) { return io.NopCloser(bytes.NewReader(b)), nil })
}
