package builder

import (
	"context"
	"os/exec"

	"github.com/serpent-os/serpent-oci/oci/store"
)

// Executor runs a stage's process in a root made from a base image and captures what changed as
// an image in its store; or runs a program on the host, reported alike. Runner (runc, with
// overlayfs or a copy) is the implementation; buildertest.FakeExecutor makes images without
// root, runc or qemu, for tests of the decisions around runs (plan, keys, reuse, --rebuild).
type Executor interface {
	Run(ctx context.Context, opts RunOptions) (Result, error)
	RunHost(ctx context.Context, name string, cmd *exec.Cmd) (logPath string, err error)
	// On is an executor like this one (same runtime, root filesystem provider, binfmt_misc
	// paths and console) over another store, such as verify's scratch store.
	On(st *store.Store) (Executor, error)
}

var _ Executor = (*Runner)(nil)

// On returns a runner with r's options over st.
func (r *Runner) On(st *store.Store) (Executor, error) {
	n, err := NewRunner(st, WithConsole(r.console), WithBinfmtPaths(r.binfmt), WithRuncBinary(r.runtime.Binary))
	if err != nil {
		return nil, err
	}
	n.provider = r.provider
	return n, nil
}
