package store

import (
	"context"
	"errors"
	"fmt"
	"os"
	"time"

	"github.com/containerd/log"
	"golang.org/x/sys/unix"
)

// flock takes a lock on path (shared or exclusive), waiting for it until ctx ends. The lock is
// the kernel's (flock(2)): a process that dies releases it, so a kill -9 never leaves a store
// locked.
//
// A shared lock on a store nobody can write (a read-only mount) is taken on the lock file
// read-only, or not at all when the file does not exist there: no writer can come.
func flock(ctx context.Context, path string, how int) (release func(), err error) {
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o644)
	if err != nil && how == unix.LOCK_SH && errors.Is(err, unix.EROFS) {
		if f, err = os.Open(path); errors.Is(err, os.ErrNotExist) {
			return func() {}, nil
		}
	}
	if err != nil {
		return nil, fmt.Errorf("open lock %s: %w", path, err)
	}
	logged := false
	for {
		err := unix.Flock(int(f.Fd()), how|unix.LOCK_NB)
		if err == nil {
			break
		}
		if !errors.Is(err, unix.EWOULDBLOCK) && !errors.Is(err, unix.EINTR) {
			f.Close()
			return nil, fmt.Errorf("lock %s: %w", path, err)
		}
		if !logged {
			log.G(ctx).WithField("path", path).Info("waiting for another serpent-oci process to release the store lock")
			logged = true
		}
		select {
		case <-ctx.Done():
			f.Close()
			return nil, fmt.Errorf("lock %s: %w", path, ctx.Err())
		case <-time.After(20 * time.Millisecond):
		}
	}
	return func() { f.Close() }, nil
}

// Hold keeps gc away while the caller writes blobs that no tag reaches yet (a layer before its
// image is tagged). Every writing method of Store holds it by itself; a caller needs Hold only
// around a sequence of calls. Release it when done.
func (s *Store) Hold(ctx context.Context) (release func(), err error) {
	return flock(ctx, s.private("gc.lock"), unix.LOCK_SH)
}

func (s *Store) lockGC(ctx context.Context) (func(), error) {
	return flock(ctx, s.private("gc.lock"), unix.LOCK_EX)
}

func (s *Store) lockIndex(ctx context.Context) (func(), error) {
	return flock(ctx, s.private("index.lock"), unix.LOCK_EX)
}
