package store

import (
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"hash"
	"io"
	"os"
	"path/filepath"
	"strings"
	"syscall"

	"github.com/serpent-os/serpent-oci/oci/filekind"
	"github.com/serpent-os/serpent-oci/oci/internal/ctxio"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"golang.org/x/sys/unix"
)

// BlobWriter streams a new blob into the store. Its bytes go to a temporary file beside the
// layout and become a blob only at Commit, once synced and hashed. Abort (or a crash) leaves
// only a temporary file, which gc removes.
type BlobWriter struct {
	s    *Store
	f    *os.File
	h    hash.Hash
	n    int64
	done bool
	// flushed is how far the kernel was asked to start writing the file back (see Write).
	flushed int64
}

// writebackChunk is how much of a blob is written before the kernel is asked to start writing
// it back to disk, so that the writeback overlaps the download and Commit's fsync waits for
// the last chunk rather than the whole blob.
const writebackChunk = 8 << 20

// NewBlob starts a blob. The caller must Commit or Abort it, and should hold the store (Hold)
// until whatever reaches the blob is tagged.
func (s *Store) NewBlob() (*BlobWriter, error) {
	f, err := os.CreateTemp(s.private("tmp"), tempBlobPrefix+"*")
	if err != nil {
		return nil, fmt.Errorf("create temporary blob: %w", err)
	}
	// Locked while it is written: SweepStaleBlobs removes only files no writer holds.
	if err := unix.Flock(int(f.Fd()), unix.LOCK_EX|unix.LOCK_NB); err != nil {
		f.Close()
		os.Remove(f.Name())
		return nil, fmt.Errorf("lock temporary blob: %w", err)
	}
	return &BlobWriter{s: s, f: f, h: sha256.New()}, nil
}

// newVerifiedBlob starts a blob whose bytes come from a reader that checks them against the
// digest itself (see VerifiedLayer): it is not hashed a second time, and Commit takes the
// digest it is given.
func (s *Store) newVerifiedBlob() (*BlobWriter, error) {
	w, err := s.NewBlob()
	if err != nil {
		return nil, err
	}
	w.h = nil
	return w, nil
}

const tempBlobPrefix = "blob-"

// SweepStaleBlobs removes the temporary blobs that writers killed outright left (their lock
// died with them), so that repeated killed pulls do not pile up partial downloads until the
// next gc. Blobs being written, by this process or another, are locked and left alone. It
// returns the files and bytes removed.
func (s *Store) SweepStaleBlobs() (int, int64) {
	entries, err := os.ReadDir(s.private("tmp"))
	if err != nil {
		return 0, 0
	}
	var n int
	var bytes int64
	for _, e := range entries {
		if !e.Type().IsRegular() || !strings.HasPrefix(e.Name(), tempBlobPrefix) {
			continue
		}
		p := s.private("tmp", e.Name())
		f, err := os.OpenFile(p, os.O_RDONLY|syscall.O_NOFOLLOW, 0)
		if err != nil {
			continue
		}
		if unix.Flock(int(f.Fd()), unix.LOCK_EX|unix.LOCK_NB) == nil {
			if fi, err := f.Stat(); err == nil && os.Remove(p) == nil {
				n++
				bytes += fi.Size()
			}
		}
		f.Close()
	}
	return n, bytes
}

// Write implements io.Writer.
func (w *BlobWriter) Write(p []byte) (int, error) {
	n, err := w.f.Write(p)
	if w.h != nil {
		w.h.Write(p[:n])
	}
	w.n += int64(n)
	if w.n-w.flushed >= writebackChunk {
		// Start the writeback, without waiting for it (git's core.fsyncMethod=batch does
		// the same). Only a hint: where the filesystem refuses it, Commit's fsync does it all.
		_ = unix.SyncFileRange(int(w.f.Fd()), w.flushed, w.n-w.flushed, unix.SYNC_FILE_RANGE_WRITE)
		w.flushed = w.n
	}
	return n, err
}

// Commit publishes the blob and returns its digest and size. If want is not nil and the bytes
// do not hash to it, nothing is published and the error names both digests.
func (w *BlobWriter) Commit(want *v1.Hash) (v1.Hash, int64, error) {
	if w.done {
		return v1.Hash{}, 0, errors.New("commit blob: already committed or aborted")
	}
	w.done = true
	var got v1.Hash
	switch {
	case w.h != nil:
		got = v1.Hash{Algorithm: "sha256", Hex: fmt.Sprintf("%x", w.h.Sum(nil))}
	case want != nil:
		got = *want // its reader checked the bytes against it
	default:
		w.f.Close()
		os.Remove(w.f.Name())
		return v1.Hash{}, 0, errors.New("commit blob: a blob that was not hashed needs the digest its reader checked")
	}
	tmp := w.f.Name()
	// The file stays open, and so locked, until it is renamed: SweepStaleBlobs removes a
	// temporary blob the moment nobody holds its lock.
	fail := func(format string, err error) (v1.Hash, int64, error) {
		w.f.Close()
		os.Remove(tmp)
		return got, 0, fmt.Errorf(format, got, err)
	}
	if want != nil && *want != got {
		w.f.Close()
		os.Remove(tmp)
		return got, 0, fmt.Errorf("blob content does not match its digest: expected %s, got %s", want, got)
	}
	if err := w.f.Sync(); err != nil {
		return fail("sync blob %s: %w", err)
	}
	dst := w.s.blobPath(got)
	if _, err := os.Stat(dst); err == nil {
		w.f.Close()
		os.Remove(tmp) // already there: content addressing makes it the same bytes
		return got, w.n, nil
	}
	if err := w.f.Chmod(0o644); err != nil {
		return fail("publish blob %s: %w", err)
	}
	if err := os.Rename(tmp, dst); err != nil {
		return fail("publish blob %s: %w", err)
	}
	if err := w.f.Close(); err != nil {
		return got, 0, fmt.Errorf("close blob %s: %w", got, err)
	}
	if err := syncDir(filepath.Dir(dst)); err != nil {
		return got, 0, fmt.Errorf("publish blob %s: %w", got, err)
	}
	return got, w.n, nil
}

// Abort discards the blob. It is safe to call after Commit (it then does nothing), so that
// `defer w.Abort()` covers every error path.
func (w *BlobWriter) Abort() {
	if w.done {
		return
	}
	w.done = true
	w.f.Close()
	os.Remove(w.f.Name())
}

// WriteBlob copies r into the store as a blob, checking it against want when want is not nil.
func (s *Store) WriteBlob(ctx context.Context, r io.Reader, want *v1.Hash) (v1.Hash, int64, error) {
	if want != nil && s.HasBlob(*want) {
		return *want, s.blobSize(*want), nil
	}
	return s.copyBlob(ctx, r, want, s.NewBlob)
}

// copyBlob copies r into a blob that newBlob starts and commits it (see Commit for want).
func (s *Store) copyBlob(ctx context.Context, r io.Reader, want *v1.Hash, newBlob func() (*BlobWriter, error)) (v1.Hash, int64, error) {
	w, err := newBlob()
	if err != nil {
		return v1.Hash{}, 0, err
	}
	defer w.Abort()
	if _, err := io.Copy(w, ctxio.Reader(ctx, r)); err != nil {
		return v1.Hash{}, 0, fmt.Errorf("write blob: %w", err)
	}
	return w.Commit(want)
}

// HasBlob reports whether the blob h is in the store.
func (s *Store) HasBlob(h v1.Hash) bool {
	_, err := os.Stat(s.blobPath(h))
	return err == nil
}

func (s *Store) blobSize(h v1.Hash) int64 {
	fi, err := os.Stat(s.blobPath(h))
	if err != nil {
		return -1
	}
	return fi.Size()
}

// Blob opens the blob h for reading.
func (s *Store) Blob(h v1.Hash) (io.ReadCloser, error) { return s.openBlob(h) }

// openBlob opens the file of blob h (see openStoreFile).
func (s *Store) openBlob(h v1.Hash) (*os.File, error) {
	f, err := s.openStoreFile(filepath.Join("blobs", h.Algorithm, h.Hex))
	if errors.Is(err, os.ErrNotExist) {
		return nil, fmt.Errorf("blob %s: %w", h, ErrNotFound)
	}
	if err != nil {
		return nil, fmt.Errorf("blob %s: %w", h, err)
	}
	return f, nil
}

// openStoreFile opens the store's file rel for reading. A store on disk is input like any
// other: the file is opened inside the store's directory (a symlink that leads out of it, to
// a host file, is refused) and must be a regular file (a FIFO would hang the reader).
func (s *Store) openStoreFile(rel string) (*os.File, error) {
	root, err := os.OpenRoot(s.root)
	if err != nil {
		return nil, err
	}
	defer root.Close()
	// O_NONBLOCK: opening a FIFO for reading would wait for a writer; on a regular file it
	// changes nothing.
	f, err := root.OpenFile(rel, os.O_RDONLY|syscall.O_NONBLOCK, 0)
	if err != nil {
		return nil, err
	}
	fi, err := f.Stat()
	if err == nil && !fi.Mode().IsRegular() {
		err = fmt.Errorf("%s is a %s, not a regular file", rel, filekind.Of(fi.Mode()))
	}
	if err != nil {
		f.Close()
		return nil, err
	}
	return f, nil
}

// BlobPath is the file holding blob h, for readers that want a path (umoci, skopeo, tests).
func (s *Store) BlobPath(h v1.Hash) string { return s.blobPath(h) }

// readBlob returns a small blob (a manifest, index, config or an artifact's data) whole, at
// most MaxConfigBytes of it.
func (s *Store) readBlob(h v1.Hash) ([]byte, error) { return s.readSmallBlob(h, MaxConfigBytes) }

// writeFileAtomic replaces dst with data: a temporary file in tmpDir (on the same filesystem),
// synced, renamed over dst, and dst's directory synced.
func writeFileAtomic(tmpDir, dst string, data []byte) error {
	f, err := os.CreateTemp(tmpDir, filepath.Base(dst)+"-*")
	if err != nil {
		return err
	}
	tmp := f.Name()
	if _, err := f.Write(data); err != nil {
		f.Close()
		os.Remove(tmp)
		return err
	}
	if err := f.Sync(); err != nil {
		f.Close()
		os.Remove(tmp)
		return err
	}
	if err := f.Close(); err != nil {
		os.Remove(tmp)
		return err
	}
	if err := os.Chmod(tmp, 0o644); err != nil {
		os.Remove(tmp)
		return err
	}
	if err := os.Rename(tmp, dst); err != nil {
		os.Remove(tmp)
		return err
	}
	return syncDir(filepath.Dir(dst))
}

func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	return d.Sync()
}
