// Package rootfs gives a run its writable root filesystem on top of a base image, and hands
// back what the run changed as a directory in overlayfs upper-directory form, ready for the
// layer writer. Two implementations share one contract and one test suite:
//
//   - Overlay stacks the base's layer snapshots as overlayfs lower directories under a fresh
//     upper directory: preparing costs nothing once the snapshots exist, and the changes are
//     the upper directory itself, so capturing costs what the change costs.
//   - Copy unpacks the base into a private directory and, after the run, compares the tree
//     with what it unpacked, building an upper directory from the difference. It works where
//     overlayfs cannot be mounted, and costs a walk of the whole tree.
//
// Lifecycle: Prepare → (run in Root()) → Changes → Close. Close is always called, also on
// error paths, and removes everything the workspace made.
package rootfs

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/serpent-os/serpent-oci/builder/snapshot"
)

// Workspace is one run's root filesystem.
type Workspace interface {
	// Root is the directory the container runs in.
	Root() string
	// Changes stops writes to Root and returns a directory holding exactly what changed since
	// Prepare, in overlayfs upper form (0/0 character devices for deletions, opaque
	// directories for replaced ones). Call it once, after the container has stopped.
	Changes(ctx context.Context) (string, error)
	// Close unmounts and removes the workspace. It is idempotent.
	Close() error
}

// Unmounter is a workspace that is a mount: Unmount leaves its directories in place (for a
// failed run kept for inspection) but no mount behind.
type Unmounter interface {
	Unmount() error
}

// SnapshotStats is what preparing ws cost in layer snapshots (made, reused, bytes extracted):
// zero for a workspace that uses none (a copy).
func SnapshotStats(ws Workspace) snapshot.Stats {
	if s, ok := ws.(interface{ SnapshotStats() snapshot.Stats }); ok {
		return s.SnapshotStats()
	}
	return snapshot.Stats{}
}

// Provider makes workspaces over a base image in a scratch directory it may fill.
type Provider interface {
	Prepare(ctx context.Context, base v1.Image, dir string) (Workspace, error)
	Name() string
}

// RemoveCreated removes from changes what a run created at the given paths (files and
// directories the container runtime made as mount points), deepest first, where the path did
// not exist in the base and is still empty. It returns the paths it removed.
//
// The container may have replaced a parent of such a path (moved /a/b away, planted a symlink
// /a/b -> /somewhere): a path whose parents are not all plain directories is left alone, so
// the cleanup never follows anything the container could have put there.
func RemoveCreated(changes string, missing []string) ([]string, error) {
	var removed []string
	for i := len(missing) - 1; i >= 0; i-- {
		if _, err := PlainDir(changes, filepath.Dir(missing[i])); err != nil {
			continue
		}
		p := filepath.Join(changes, missing[i])
		fi, err := os.Lstat(p)
		if errors.Is(err, os.ErrNotExist) {
			continue
		}
		if err != nil {
			return removed, err
		}
		empty := fi.Mode().IsRegular() && fi.Size() == 0
		if fi.IsDir() {
			entries, err := os.ReadDir(p)
			if err != nil {
				return removed, err
			}
			empty = len(entries) == 0
		}
		if !empty {
			continue
		}
		if err := os.Remove(p); err != nil {
			return removed, fmt.Errorf("remove mount point %s from the changes: %w", missing[i], err)
		}
		removed = append(removed, missing[i])
	}
	return removed, nil
}

// ErrNotPlain is returned (wrapped) by PlainDir for a path that is not a directory all the way.
var ErrNotPlain = errors.New("not a plain directory")

// PlainDir returns root joined with p (a path in the container, absolute or relative to
// root) after checking that p and each of its parents below root is a directory, not a
// symlink: nothing in the path was left to lead out of root. The error names the first
// component that is not.
func PlainDir(root, p string) (string, error) {
	rel := strings.Trim(filepath.Clean("/"+p), "/")
	cur := root
	if rel == "" {
		return root, nil
	}
	for _, part := range strings.Split(rel, "/") {
		cur = filepath.Join(cur, part)
		fi, err := os.Lstat(cur)
		if err != nil {
			return "", err
		}
		if !fi.IsDir() {
			what := "not a directory"
			if fi.Mode()&os.ModeSymlink != 0 {
				target, _ := os.Readlink(cur)
				what = "a symlink to " + target
			}
			inside, _ := filepath.Rel(root, cur)
			return "", fmt.Errorf("/%s is %s: %w", filepath.ToSlash(inside), what, ErrNotPlain)
		}
	}
	return cur, nil
}

// Missing returns, for each absolute path in paths, every component of it that does not exist
// below root, shallowest first and without duplicates: what a runtime would create to mount
// something there.
func Missing(root string, paths []string) []string {
	seen := map[string]bool{}
	var out []string
	for _, p := range paths {
		parts := strings.Split(strings.Trim(filepath.Clean(p), "/"), "/")
		for i := range parts {
			rel := strings.Join(parts[:i+1], "/")
			if seen[rel] {
				continue
			}
			if _, err := os.Lstat(filepath.Join(root, rel)); errors.Is(err, os.ErrNotExist) {
				seen[rel] = true
				out = append(out, rel)
			}
		}
	}
	return out
}
