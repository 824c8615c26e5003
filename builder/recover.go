package builder

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/containerd/log"
	"github.com/serpent-os/serpent-oci/builder/rootfs"
	"github.com/serpent-os/serpent-oci/oci/store"
	"golang.org/x/sys/unix"
)

// Recovered says what Recover cleaned up.
type Recovered struct {
	Containers []string // containers killed and deleted
	Mounts     []string // mounts removed
	Runs       []string // run directories removed
}

// OpenRunner is NewRunner then Recover: a runner for a command that is about to run stages,
// with what killed runs of the store left behind cleaned up first (and said in the log).
func OpenRunner(ctx context.Context, st *store.Store, opts ...Option) (*Runner, error) {
	r, err := NewRunner(st, opts...)
	if err != nil {
		return nil, err
	}
	rec, err := r.Recover(ctx)
	if err != nil {
		return nil, err
	}
	if n := len(rec.Containers) + len(rec.Mounts) + len(rec.Runs); n > 0 {
		log.G(ctx).WithFields(log.Fields{"containers": rec.Containers, "mounts": rec.Mounts, "runs": rec.Runs}).Info("cleaned up after runs that were killed")
	}
	return r, nil
}

// Recover removes what runs of this store killed outright (kill -9, a power cut) left behind:
// containers, mounts and run directories. Runs in progress in other processes hold a lock and
// are left alone; so are directories of failed runs kept with KeepFailed (but not their
// mounts).
func (r *Runner) Recover(ctx context.Context) (Recovered, error) {
	var rec Recovered
	// A run killed while runc created its container can leave a state directory without
	// state.json, which makes every later `runc list` fail: remove those first.
	if states, err := os.ReadDir(r.runtime.StateDir); err == nil {
		for _, e := range states {
			id := e.Name()
			if !e.IsDir() || !strings.HasPrefix(id, ContainerPrefix) || r.alive(id) {
				continue
			}
			if _, err := os.Stat(filepath.Join(r.runtime.StateDir, id, "state.json")); errors.Is(err, os.ErrNotExist) {
				if err := os.RemoveAll(filepath.Join(r.runtime.StateDir, id)); err != nil {
					return rec, fmt.Errorf("recover: %w", err)
				}
				rec.Containers = append(rec.Containers, id)
			}
		}
	}
	ids, err := r.runtime.List(ctx)
	if err != nil {
		return rec, err
	}
	for _, id := range ids {
		if !strings.HasPrefix(id, ContainerPrefix) || r.alive(id) {
			continue
		}
		r.runtime.Kill(ctx, id)
		rec.Containers = append(rec.Containers, id)
	}
	entries, err := os.ReadDir(r.runsDir)
	if err != nil {
		return rec, fmt.Errorf("recover: %w", err)
	}
	for _, e := range entries {
		name := e.Name()
		if strings.HasSuffix(name, ".lock") {
			id := strings.TrimSuffix(name, ".lock")
			if _, err := os.Stat(filepath.Join(r.runsDir, id)); errors.Is(err, os.ErrNotExist) && !r.alive(id) {
				os.Remove(filepath.Join(r.runsDir, name))
			}
			continue
		}
		if !e.IsDir() || r.alive(name) {
			continue
		}
		dir := filepath.Join(r.runsDir, name)
		mounts, err := rootfs.MountsUnder(dir)
		if err != nil {
			return rec, err
		}
		for _, m := range mounts {
			if err := rootfs.Unmount(m); err != nil {
				return rec, fmt.Errorf("recover: %w", err)
			}
			rec.Mounts = append(rec.Mounts, m)
		}
		if _, err := os.Stat(filepath.Join(dir, "kept")); err == nil {
			continue
		}
		if err := os.RemoveAll(dir); err != nil {
			return rec, fmt.Errorf("recover: %w", err)
		}
		rec.Runs = append(rec.Runs, name)
	}
	if n := len(rec.Containers) + len(rec.Mounts) + len(rec.Runs); n > 0 {
		log.G(ctx).WithFields(log.Fields{"containers": len(rec.Containers), "mounts": len(rec.Mounts), "runs": len(rec.Runs)}).Info("cleaned up after runs that were killed")
	}
	return rec, nil
}

// alive reports whether run id is in progress in some process (it holds the run's lock).
func (r *Runner) alive(id string) bool {
	f, err := os.OpenFile(filepath.Join(r.runsDir, id+".lock"), os.O_RDWR, 0)
	if err != nil {
		return false
	}
	defer f.Close()
	if err := unix.Flock(int(f.Fd()), unix.LOCK_EX|unix.LOCK_NB); err != nil {
		return true
	}
	_ = unix.Flock(int(f.Fd()), unix.LOCK_UN)
	return false
}
