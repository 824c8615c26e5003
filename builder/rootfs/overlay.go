package rootfs

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/serpent-os/serpent-oci/builder/snapshot"
	"github.com/serpent-os/serpent-oci/oci/xattr"
	"golang.org/x/sys/unix"
)

// Overlay is the overlayfs provider.
type Overlay struct {
	Snapshots *snapshot.Snapshotter
}

var _ Provider = (*Overlay)(nil)

// Name implements Provider.
func (o *Overlay) Name() string { return "overlay" }

// Prepare implements Provider: dir/upper and dir/work for overlayfs, mounted at dir/rootfs.
func (o *Overlay) Prepare(ctx context.Context, base v1.Image, dir string) (Workspace, error) {
	lowers, stats, err := o.Snapshots.Prepare(ctx, base)
	if err != nil {
		return nil, err
	}
	lowers = belowOpaqueRoot(slices.Compact(lowers))
	w := &overlayWorkspace{dir: dir, stats: stats}
	for _, d := range []string{"upper", "work", "rootfs", "empty"} {
		if err := os.MkdirAll(filepath.Join(dir, d), 0o755); err != nil {
			return nil, fmt.Errorf("overlay workspace: %w", err)
		}
	}
	if len(lowers) == 0 { // scratch: overlayfs wants at least one lower directory
		lowers = []string{filepath.Join(dir, "empty")}
	}
	// overlayfs lists lower directories top first.
	top := make([]string, len(lowers))
	for i, l := range lowers {
		top[len(lowers)-1-i] = escapeOverlay(l)
	}
	opts := fmt.Sprintf("lowerdir=%s,upperdir=%s,workdir=%s,index=off,redirect_dir=off,metacopy=off",
		strings.Join(top, ":"), escapeOverlay(w.upper()), escapeOverlay(filepath.Join(dir, "work")))
	if len(opts) < unix.Getpagesize() {
		err = unix.Mount("overlay", w.Root(), "overlay", 0, opts)
	} else {
		// Options past a page (some 37 layers at the store's path lengths): the new mount API
		// takes the lower directories one by one (lowerdir+, Linux 6.8).
		err = mountOverlayByParts(lowers, w.upper(), filepath.Join(dir, "work"), w.Root())
	}
	if err != nil {
		return nil, fmt.Errorf("mount overlay at %s: %w: %w", w.Root(), err, ErrOverlayUnavailable)
	}
	w.mounted = true
	if err := o.noDanglingWhiteouts(w.Root(), lowers); err != nil {
		w.Close()
		return nil, err
	}
	return w, nil
}

// noDanglingWhiteouts checks that no whiteout of the stack shows in the mounted tree. A
// whiteout hiding nothing (its name in no layer below) is listed by overlayfs, as a name that
// cannot be looked up, where the image-spec's tree has nothing: such an image takes a copy.
func (o *Overlay) noDanglingWhiteouts(root string, lowers []string) error {
	listed := map[string]map[string]bool{} // names in each merged directory, read once
	for _, l := range lowers {
		whiteouts, err := o.Snapshots.Whiteouts(l)
		if err != nil {
			return err
		}
		for _, w := range whiteouts {
			dir, name := filepath.Split(w)
			names, ok := listed[dir]
			if !ok {
				names = map[string]bool{}
				if entries, err := os.ReadDir(filepath.Join(root, dir)); err == nil {
					for _, e := range entries {
						names[e.Name()] = true
					}
				}
				listed[dir] = names
			}
			if !names[name] {
				continue
			}
			if _, err := os.Lstat(filepath.Join(root, w)); errors.Is(err, os.ErrNotExist) {
				return fmt.Errorf("the whiteout of %s in layer %s hides nothing, and overlayfs would show it: %w", w, filepath.Base(l), ErrOverlayUnavailable)
			}
		}
	}
	return nil
}

// A layer repeated right above itself changes nothing (a changeset applied twice is applied
// once) and overlayfs refuses a lower directory twice, so Prepare stacks it once. A layer
// repeated further up fails the mount (ErrOverlayUnavailable): such an image takes a copy.
//
// belowOpaqueRoot drops the layers (bottom first) that a layer above hides whole: one with an
// opaque whiteout at its root (.wh..wh..opq at the top of the layer) hides every layer under
// it, but overlayfs ignores the opaque mark on a lower directory's root, so those layers are
// left out of the stack instead.
func belowOpaqueRoot(lowers []string) []string {
	for i := len(lowers) - 1; i > 0; i-- {
		if v, err := xattr.Get(lowers[i], "trusted.overlay.opaque"); err == nil && string(v) == "y" {
			return lowers[i:]
		}
	}
	return lowers
}

// ErrOverlayUnavailable marks a Prepare error of the overlay provider that is the mount's: the
// copy provider can do the work instead. Any other error (a layer that cannot be extracted)
// would fail the copy as well.
var ErrOverlayUnavailable = errors.New("overlayfs unavailable")

// mountOverlayByParts mounts overlayfs with fsopen/fsconfig, one lower directory (bottom
// first given, added top first) a call, so that no option string has a length limit.
func mountOverlayByParts(lowers []string, upper, work, target string) error {
	fsfd, err := unix.Fsopen("overlay", unix.FSOPEN_CLOEXEC)
	if err != nil {
		return fmt.Errorf("fsopen: %w", err)
	}
	defer unix.Close(fsfd)
	for i := len(lowers) - 1; i >= 0; i-- {
		if err := unix.FsconfigSetString(fsfd, "lowerdir+", lowers[i]); err != nil {
			return fmt.Errorf("fsconfig lowerdir+ %s: %w", lowers[i], err)
		}
	}
	for _, kv := range [][2]string{{"upperdir", upper}, {"workdir", work}, {"index", "off"}, {"redirect_dir", "off"}, {"metacopy", "off"}} {
		if err := unix.FsconfigSetString(fsfd, kv[0], kv[1]); err != nil {
			return fmt.Errorf("fsconfig %s: %w", kv[0], err)
		}
	}
	if err := unix.FsconfigCreate(fsfd); err != nil {
		return fmt.Errorf("fsconfig create: %w", err)
	}
	mfd, err := unix.Fsmount(fsfd, unix.FSMOUNT_CLOEXEC, 0)
	if err != nil {
		return fmt.Errorf("fsmount: %w", err)
	}
	defer unix.Close(mfd)
	if err := unix.MoveMount(mfd, "", unix.AT_FDCWD, target, unix.MOVE_MOUNT_F_EMPTY_PATH); err != nil {
		return fmt.Errorf("move_mount: %w", err)
	}
	return nil
}

// escapeOverlay escapes the characters overlayfs's option parser treats specially.
func escapeOverlay(p string) string {
	return strings.NewReplacer(`\`, `\\`, `:`, `\:`, `,`, `\,`).Replace(p)
}

type overlayWorkspace struct {
	dir     string
	mounted bool
	stats   snapshot.Stats
}

// SnapshotStats is what Prepare's layer snapshots cost: the workspace's own, so that two
// runs preparing at once on one provider each report theirs.
func (w *overlayWorkspace) SnapshotStats() snapshot.Stats { return w.stats }

func (w *overlayWorkspace) Root() string  { return filepath.Join(w.dir, "rootfs") }
func (w *overlayWorkspace) upper() string { return filepath.Join(w.dir, "upper") }

// Changes unmounts the overlay and returns its upper directory.
func (w *overlayWorkspace) Changes(ctx context.Context) (string, error) {
	if err := w.Unmount(); err != nil {
		return "", err
	}
	return w.upper(), nil
}

// Unmount unmounts the overlay, keeping its directories.
func (w *overlayWorkspace) Unmount() error {
	if !w.mounted {
		return nil
	}
	if err := Unmount(w.Root()); err != nil {
		return err
	}
	w.mounted = false
	return nil
}

func (w *overlayWorkspace) Close() error {
	err := w.Unmount()
	if rmErr := os.RemoveAll(w.dir); rmErr != nil && err == nil {
		err = rmErr
	}
	return err
}

// Unmount unmounts path, retrying while it is busy, and lazily as a last resort so that no
// mount outlives serpent-oci. It is not an error if nothing is mounted there.
func Unmount(path string) error {
	var err error
	for range 50 {
		err = unix.Unmount(path, 0)
		if err == nil || errors.Is(err, unix.EINVAL) || errors.Is(err, unix.ENOENT) {
			return nil
		}
		if !errors.Is(err, unix.EBUSY) {
			break
		}
		sleepBriefly()
	}
	if lazyErr := unix.Unmount(path, unix.MNT_DETACH); lazyErr == nil || errors.Is(lazyErr, unix.EINVAL) {
		return nil
	}
	return fmt.Errorf("unmount %s: %w", path, err)
}
