package layer

import (
	"bufio"
	"bytes"
	"fmt"
	"io"
	"os"
	"os/exec"
	"runtime"
	"time"

	"github.com/google/go-containerregistry/pkg/v1/types"
	"github.com/klauspost/compress/zstd"
	"github.com/klauspost/pgzip"
	"golang.org/x/sys/unix"
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

// Decompress returns the tar stream of a layer blob read from r, gzip, zstd or uncompressed,
// told apart by their magic numbers. Gzip is inflated by unpigz in a process of its own when
// it is installed (zlib's inflate is about twice Go's, and the process overlaps with the
// extraction; containerd does the same), else by pgzip with its blocks read ahead; setting
// SERPENT_OCI_DISABLE_PIGZ keeps it in process. Closing the result closes r.
func Decompress(r io.ReadCloser) (io.ReadCloser, error) {
	br := bufio.NewReaderSize(r, 1<<20)
	head, err := br.Peek(4)
	if err != nil && err != io.EOF {
		r.Close()
		return nil, fmt.Errorf("read layer: %w", err)
	}
	switch {
	case len(head) >= 2 && head[0] == 0x1f && head[1] == 0x8b:
		// A blob file goes to unpigz as its stdin itself, from its start (what was peeked is
		// read again): no goroutine copies it into a pipe.
		var in io.Reader = br
		if f, ok := r.(*os.File); ok {
			if off, err := f.Seek(0, io.SeekCurrent); err == nil && off == int64(br.Buffered()) {
				if _, err := f.Seek(0, io.SeekStart); err == nil {
					in = f
				}
			}
		}
		if rc, ok := unpigz(in, r); ok {
			return rc, nil
		}
		if in != io.Reader(br) {
			// unpigz is not there: the file is at its start again, read it anew.
			br.Reset(r)
		}
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

// unpigz inflates r through the unpigz program, if it is on PATH and not disabled. A corrupt
// stream surfaces as the error of the Read that meets the program's end.
func unpigz(r io.Reader, blob io.Closer) (io.ReadCloser, bool) {
	if os.Getenv("SERPENT_OCI_DISABLE_PIGZ") != "" {
		return nil, false
	}
	bin, err := exec.LookPath("unpigz")
	if err != nil {
		return nil, false
	}
	cmd := exec.Command(bin, "-d", "-c")
	cmd.Stdin = r
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.StdoutPipe()
	if err != nil {
		return nil, false
	}
	if f, ok := out.(*os.File); ok {
		// A pipe of 1 MiB, read blocking (Fd leaves the poller): unpigz writes a megabyte at a
		// time, and the reader is woken once for it, not for each 64 KiB.
		_, _ = unix.FcntlInt(f.Fd(), unix.F_SETPIPE_SZ, 1<<20)
	}
	if err := cmd.Start(); err != nil {
		return nil, false
	}
	// The tar reader asks for 512-byte headers and small files: read the pipe in large
	// pieces, not a syscall (and a wake-up of the poller) each.
	return &pigzReader{cmd: cmd, out: out, buf: bufio.NewReaderSize(out, 1<<20), stderr: &stderr, blob: blob}, true
}

type pigzReader struct {
	cmd    *exec.Cmd
	out    io.ReadCloser
	buf    *bufio.Reader
	stderr *bytes.Buffer
	blob   io.Closer
	done   bool
	err    error
}

func (p *pigzReader) Read(b []byte) (int, error) {
	n, err := p.buf.Read(b)
	if err == io.EOF && !p.done {
		p.done = true
		if werr := p.cmd.Wait(); werr != nil {
			p.err = fmt.Errorf("inflate layer: unpigz: %v: %s", werr, bytes.TrimSpace(p.stderr.Bytes()))
		}
	}
	if err == io.EOF && p.err != nil {
		return n, p.err
	}
	return n, err
}

func (p *pigzReader) Close() error {
	if !p.done {
		p.done = true
		_ = p.cmd.Process.Kill()
		_ = p.out.Close()
		_ = p.cmd.Wait()
	}
	return p.blob.Close()
}
