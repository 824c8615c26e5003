package builder

import (
	"context"
	"errors"
	"os/exec"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/serpent-os/serpent-oci/builder/runc"
	"github.com/serpent-os/serpent-oci/oci/store"
)

// Executor runs a process in a root made from a base image and captures what changed as a
// layer in its store; or runs a program on the host, reported alike. It makes no image:
// RunAndCommit commits the layer, the same way for every executor. Runner (runc, with
// overlayfs or a copy) is the implementation; buildertest.FakeExecutor fakes the run alone
// (a layer of one file) without root, runc or qemu, for tests of the decisions around runs
// (plan, keys, reuse, --rebuild).
type Executor interface {
	Run(ctx context.Context, opts RunOptions) (Result, error)
	// Store is the store the executor reads base images from and writes layers into.
	Store() *store.Store
	RunHost(ctx context.Context, name string, cmd *exec.Cmd) (logPath string, err error)
	// On is an executor like this one (same runtime, root filesystem provider, binfmt_misc
	// paths and console) over another store, such as verify's scratch store.
	On(st *store.Store) (Executor, error)
}

// Mount binds a host path, or the tree of an image, into a run's container. Nothing under a
// mount point is captured.
type Mount struct {
	Source      string // on the host
	Destination string // absolute, in the container
	ReadOnly    bool
	// Image, instead of Source: a one-layer image (a rootfs output, such as a tool stage's)
	// whose tree is bound read-only, from its layer's snapshot (extracted once, shared).
	Image v1.Image
}

// ExitStatus is the exit status of a run's process when err says it exited non-zero (and not
// that it could not start, was killed on a timeout, or failed in its capture).
func ExitStatus(err error) (int, bool) {
	var exit *runc.ExitError
	if errors.As(err, &exit) {
		return exit.Code, true
	}
	return 0, false
}

var _ Executor = (*Runner)(nil)

// Store is the runner's store.
func (r *Runner) Store() *store.Store { return r.store }

// On returns a runner with r's options over st.
func (r *Runner) On(st *store.Store) (Executor, error) {
	n, err := NewRunner(st, WithConsole(r.console), WithBinfmtPaths(r.binfmt), WithRuncBinary(r.runtime.Binary))
	if err != nil {
		return nil, err
	}
	n.provider = r.provider
	return n, nil
}
