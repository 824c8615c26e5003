// Package pausepoint names the moments of a store write at which an interrupt is honoured: a
// blob half written, all blobs written but no tag yet, the tag set. Each is a cancellation
// check in every build. In a binary built with the tag `pausepoint` (tests only), the
// environment variable SERPENT_OCI_PAUSE_AT=NAME also makes the process stop at the point
// NAME, print "serpent-oci: paused at NAME" on stderr and wait there until its context ends,
// so that a test can deliver a signal at that exact moment instead of after a random sleep.
package pausepoint

import (
	"context"
	"io"
)

// EnvPauseAt names the point a pausepoint build stops at.
const EnvPauseAt = "SERPENT_OCI_PAUSE_AT"

// The named points. Keep them few and at the boundaries where what is on disk changes.
const (
	BeforeBlobs = "before-blobs" // the store is held, nothing written yet
	MidBlob     = "mid-blob"     // a layer blob has its first bytes in a temporary file
	BeforeTag   = "before-tag"   // every blob of the image is published, index.json unchanged
	AfterTag    = "after-tag"    // index.json names the new image
)

// Reach marks point name. It returns ctx's error when ctx is done, so that the caller stops
// before the next step; a pausepoint build first waits there if asked to.
func Reach(ctx context.Context, name string) error {
	pause(ctx, name)
	return ctx.Err()
}

// Writer returns w with point name reached after its first successful write: the bytes are in
// w, the rest are not. A Reach error fails that write, so an interrupt there stops the copy.
func Writer(ctx context.Context, name string, w io.Writer) io.Writer {
	return &writer{ctx: ctx, name: name, w: w}
}

type writer struct {
	ctx     context.Context
	name    string
	w       io.Writer
	reached bool
}

func (pw *writer) Write(p []byte) (int, error) {
	n, err := pw.w.Write(p)
	if err != nil || pw.reached || n == 0 {
		return n, err
	}
	pw.reached = true
	return n, Reach(pw.ctx, pw.name)
}
