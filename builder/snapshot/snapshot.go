// Package snapshot keeps each layer of the store's images extracted once, read-only, in a
// directory named by the layer's digest, the way containerd's overlay snapshotter does: every
// run on any image that shares the layer stacks the same directory with overlayfs, so a second
// run on a base extracts nothing. Snapshots hold whiteouts in overlayfs's form (0/0 character
// devices, trusted.overlay.opaque directories), so they stack as they are. They live in the
// store's derived data and gc removes them with their layer.
package snapshot

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/containerd/log"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/serpent-os/serpent-oci/oci/atomicfile"
	"github.com/serpent-os/serpent-oci/oci/layer"
	"github.com/serpent-os/serpent-oci/oci/store"
	"golang.org/x/sys/unix"
)

// Snapshotter extracts layers into snapshots.
type Snapshotter struct {
	dir string
}

// New returns the snapshotter of st.
func New(st *store.Store) (*Snapshotter, error) {
	dir, err := st.DerivedDir("snapshots")
	if err != nil {
		return nil, err
	}
	return &Snapshotter{dir: dir}, nil
}

// Stats says what Prepare did.
type Stats struct {
	Extracted int           // layers extracted now
	Reused    int           // layers found extracted
	Bytes     int64         // compressed bytes read to extract
	Took      time.Duration // time spent extracting
}

// Prepare returns the snapshot directory of each of img's layers, bottom layer first,
// extracting the layers that have none yet. Concurrent callers extract a layer once. The
// caller must hold the store while it uses the directories, and must not write to them.
func (s *Snapshotter) Prepare(ctx context.Context, img v1.Image) ([]string, Stats, error) {
	var st Stats
	layers, err := img.Layers()
	if err != nil {
		return nil, st, fmt.Errorf("snapshot: %w", err)
	}
	dirs := make([]string, 0, len(layers))
	for _, l := range layers {
		d, err := l.Digest()
		if err != nil {
			return nil, st, fmt.Errorf("snapshot: %w", err)
		}
		dir, extracted, err := s.ensure(ctx, d, l)
		if err != nil {
			return nil, st, err
		}
		if extracted {
			st.Extracted++
			if n, err := l.Size(); err == nil {
				st.Bytes += n
			}
		} else {
			st.Reused++
		}
		dirs = append(dirs, dir)
	}
	return dirs, st, nil
}

// Path is where the snapshot of layer d lives (whether or not it exists yet).
func (s *Snapshotter) Path(d v1.Hash) string { return filepath.Join(s.dir, d.Hex) }

func (s *Snapshotter) ensure(ctx context.Context, d v1.Hash, l v1.Layer) (string, bool, error) {
	dst := s.Path(d)
	if _, err := os.Stat(dst); err == nil {
		return dst, false, nil
	}
	// One extraction per layer at a time, machine-wide: the lock is a file beside the
	// snapshots, released by the kernel if this process dies.
	lock, err := os.OpenFile(filepath.Join(s.dir, "."+d.Hex+".lock"), os.O_CREATE|os.O_RDWR, 0o600)
	if err != nil {
		return "", false, fmt.Errorf("snapshot %s: %w", d, err)
	}
	defer lock.Close()
	if err := unix.Flock(int(lock.Fd()), unix.LOCK_EX); err != nil {
		return "", false, fmt.Errorf("snapshot %s: lock: %w", d, err)
	}
	if _, err := os.Stat(dst); err == nil {
		return dst, false, nil // another process extracted it while we waited
	}
	start := time.Now()
	tmp, err := os.MkdirTemp(s.dir, "."+d.Hex+"-")
	if err != nil {
		return "", false, fmt.Errorf("snapshot %s: %w", d, err)
	}
	defer os.RemoveAll(tmp) // gone after the rename; cleans up a failed extraction
	blob, err := l.Compressed()
	if err != nil {
		return "", false, fmt.Errorf("snapshot %s: %w", d, err)
	}
	rc, err := layer.Decompress(blob) // gzip decoded on every core
	if err != nil {
		return "", false, fmt.Errorf("snapshot %s: %w", d, err)
	}
	var whiteouts []string
	err = layer.ExtractWith(ctx, tmp, rc, layer.ExtractOptions{Format: layer.OverlayUpper, OnWhiteout: func(rel string) { whiteouts = append(whiteouts, rel) }})
	rc.Close()
	if err != nil {
		return "", false, fmt.Errorf("snapshot %s: %w", d, err)
	}
	// Beside the snapshot before it is in place: a snapshot without its list is one made
	// before the lists were kept (Whiteouts lists it then).
	if err := writeWhiteouts(dst, whiteouts); err != nil {
		return "", false, fmt.Errorf("snapshot %s: %w", d, err)
	}
	if err := os.Chmod(tmp, 0o755); err != nil {
		return "", false, fmt.Errorf("snapshot %s: %w", d, err)
	}
	if err := os.Rename(tmp, dst); err != nil {
		if errors.Is(err, os.ErrExist) {
			return dst, false, nil
		}
		return "", false, fmt.Errorf("snapshot %s: %w", d, err)
	}
	log.G(ctx).WithFields(log.Fields{"digest": d.String(), "took": time.Since(start).Round(time.Millisecond)}).Debug("layer extracted")
	return dst, true, nil
}

// whiteoutsSuffix names the file beside a snapshot that lists its overlayfs whiteouts.
const whiteoutsSuffix = ".whiteouts"

// maxWhiteoutsBytes bounds a snapshot's whiteout list as read back.
const maxWhiteoutsBytes = 64 << 20

func writeWhiteouts(snapshot string, whiteouts []string) error {
	var b strings.Builder
	for _, w := range whiteouts {
		b.WriteString(w + "\x00") // NUL-terminated: the one byte no path holds
	}
	return atomicfile.Write(snapshot+whiteoutsSuffix, func(w io.Writer) error {
		_, err := io.WriteString(w, b.String())
		return err
	})
}

// Whiteouts lists the overlayfs whiteouts of the snapshot at dir (a directory Prepare
// returned), by their paths below it. A snapshot made before such lists were kept is walked
// once and its list written.
func (s *Snapshotter) Whiteouts(dir string) ([]string, error) {
	f, err := os.Open(dir + whiteoutsSuffix)
	if errors.Is(err, os.ErrNotExist) {
		var found []string
		err := filepath.WalkDir(dir, func(p string, e fs.DirEntry, err error) error {
			if err != nil || e.Type()&fs.ModeCharDevice == 0 {
				return err
			}
			var st unix.Stat_t
			if err := unix.Lstat(p, &st); err != nil {
				return err
			}
			if st.Rdev == 0 {
				found = append(found, p[len(dir)+1:])
			}
			return nil
		})
		if err != nil {
			return nil, fmt.Errorf("whiteouts of %s: %w", dir, err)
		}
		return found, writeWhiteouts(dir, found)
	}
	if err != nil {
		return nil, fmt.Errorf("whiteouts of %s: %w", dir, err)
	}
	defer f.Close()
	b, err := io.ReadAll(io.LimitReader(f, maxWhiteoutsBytes+1))
	if err != nil {
		return nil, fmt.Errorf("whiteouts of %s: %w", dir, err)
	}
	if len(b) > maxWhiteoutsBytes {
		return nil, fmt.Errorf("whiteouts of %s: list larger than %d bytes", dir, maxWhiteoutsBytes)
	}
	var out []string
	for _, w := range strings.SplitAfter(string(b), "\x00") {
		if w != "" {
			out = append(out, strings.TrimSuffix(w, "\x00"))
		}
	}
	return out, nil
}
