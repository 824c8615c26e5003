package pausepoint

import (
	"bytes"
	"context"
	"errors"
	"testing"
)

func TestReachHonoursCancellation(t *testing.T) {
	if err := Reach(context.Background(), MidBlob); err != nil {
		t.Fatalf("Reach on a live context: %v", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if err := Reach(ctx, MidBlob); !errors.Is(err, context.Canceled) {
		t.Fatalf("Reach on a cancelled context: %v, want context.Canceled", err)
	}
}

func TestWriterStopsAfterItsFirstWrite(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	var buf bytes.Buffer
	w := Writer(ctx, MidBlob, &buf)
	n, err := w.Write([]byte("abc"))
	if n != 3 || !errors.Is(err, context.Canceled) {
		t.Fatalf("first write: %d, %v; want 3 bytes written and context.Canceled", n, err)
	}
	if buf.String() != "abc" {
		t.Fatalf("underlying writer has %q", buf.String())
	}
	// The point is reached once: later writes pass through (the caller has stopped by then).
	if n, err := w.Write([]byte("d")); n != 1 || err != nil {
		t.Fatalf("second write: %d, %v", n, err)
	}
}
