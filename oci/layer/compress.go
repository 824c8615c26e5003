package layer

import (
	"bufio"
	"fmt"
	"io"
	"runtime"
	"time"

	"github.com/google/go-containerregistry/pkg/v1/types"
	"github.com/klauspost/compress/zstd"
	"github.com/klauspost/pgzip"
)

// Compression names how a layer's tar stream is compressed.
type Compression string

// The compressions a layer can be written with.
const (
	Gzip Compression = "gzip"
	Zstd Compression = "zstd"
	None Compression = "none"
)

// ParseCompression reads a compression name as a user writes it.
func ParseCompression(s string) (Compression, error) {
	switch c := Compression(s); c {
	case Gzip, Zstd, None:
		return c, nil
	case "":
		return Gzip, nil
	}
	return "", fmt.Errorf("unknown compression %q: want gzip, zstd or none", s)
}

// MediaType is the OCI media type of a layer compressed with c.
func (c Compression) MediaType() types.MediaType {
	switch c {
	case Zstd:
		return types.OCILayerZStd
	case None:
		return types.OCIUncompressedLayer
	default:
		return types.OCILayer
	}
}

// gzipBlockSize is the unit pgzip compresses in parallel. It is part of the output's identity:
// the same tar stream compressed with another block size gives other bytes, so it never changes
// without a change of the builder's format version.
const gzipBlockSize = 1 << 20

// compressor wraps w in an encoder for c. Every encoder is set up so that its output depends on
// the input bytes alone: no timestamps or names in headers, fixed block sizes, and parallelism
// (both cores are used where there are two) that changes speed but not bytes.
func compressor(w io.Writer, c Compression) (io.WriteCloser, error) {
	switch c {
	case Gzip:
		gz, err := pgzip.NewWriterLevel(w, pgzip.DefaultCompression)
		if err != nil {
			return nil, err
		}
		if err := gz.SetConcurrency(gzipBlockSize, 2*runtime.GOMAXPROCS(0)); err != nil {
			return nil, err
		}
		gz.ModTime = time.Unix(0, 0)
		gz.OS = 255 // unknown, as Go's own gzip writes it
		return gz, nil
	case Zstd:
		return zstd.NewWriter(w,
			zstd.WithEncoderLevel(zstd.SpeedDefault),
			zstd.WithEncoderConcurrency(runtime.GOMAXPROCS(0)),
			zstd.WithEncoderCRC(true),
			zstd.WithZeroFrames(true))
	case None:
		return nopCloser{w}, nil
	}
	return nil, fmt.Errorf("unknown compression %q", c)
}

type nopCloser struct{ io.Writer }

func (nopCloser) Close() error { return nil }

// Decompress returns the tar stream of a layer blob read from r, gzip (decoded by pgzip on
// every core, blocks read ahead), zstd or uncompressed, told apart by their magic numbers.
// Closing the result closes r.
func Decompress(r io.ReadCloser) (io.ReadCloser, error) {
	br := bufio.NewReaderSize(r, 1<<20)
	head, err := br.Peek(4)
	if err != nil && err != io.EOF {
		r.Close()
		return nil, fmt.Errorf("read layer: %w", err)
	}
	switch {
	case len(head) >= 2 && head[0] == 0x1f && head[1] == 0x8b:
		zr, err := pgzip.NewReaderN(br, gzipBlockSize, 2*runtime.GOMAXPROCS(0))
		if err != nil {
			r.Close()
			return nil, fmt.Errorf("read gzip layer: %w", err)
		}
		return &decoder{Reader: zr, close: func() error { zr.Close(); return r.Close() }}, nil
	case len(head) == 4 && string(head) == "\x28\xb5\x2f\xfd":
		zr, err := zstd.NewReader(br, zstd.WithDecoderConcurrency(runtime.GOMAXPROCS(0)))
		if err != nil {
			r.Close()
			return nil, fmt.Errorf("read zstd layer: %w", err)
		}
		return &decoder{Reader: zr, close: func() error { zr.Close(); return r.Close() }}, nil
	}
	return &decoder{Reader: br, close: r.Close}, nil
}

type decoder struct {
	io.Reader
	close func() error
}

func (d *decoder) Close() error { return d.close() }
