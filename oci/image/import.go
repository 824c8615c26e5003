package image

import (
	"context"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/klauspost/compress/zstd"
	"github.com/klauspost/pgzip"
	"github.com/serpent-os/serpent-oci/oci/layer"
	"github.com/serpent-os/serpent-oci/oci/pausepoint"
	"github.com/serpent-os/serpent-oci/oci/platform"
	"github.com/serpent-os/serpent-oci/oci/store"
)

// ImportOptions controls Import.
type ImportOptions struct {
	Platform v1.Platform
	Layer    layer.WriteOptions
	// CreatedBy is the layer's history entry (default "serpent-oci import").
	CreatedBy string
	// Annotations are added to the image's manifest.
	Annotations map[string]string
}

// Import makes a one-layer image for opts.Platform from src, a directory or a rootfs tarball
// (plain, gzip, zstd or xz), and tags it as ref. The image is the same bytes whenever and from
// wherever the same tree is imported: the history names no path and every time is the source
// date epoch.
func Import(ctx context.Context, st *store.Store, src string, ref store.Ref, opts ImportOptions) (v1.Descriptor, error) {
	fail := func(err error) (v1.Descriptor, error) {
		return v1.Descriptor{}, fmt.Errorf("import %s: %w", src, err)
	}
	fi, err := os.Stat(src)
	if err != nil {
		return fail(err)
	}
	release, err := st.Hold(ctx)
	if err != nil {
		return fail(err)
	}
	defer release()
	if err := pausepoint.Reach(ctx, pausepoint.BeforeBlobs); err != nil {
		return fail(err)
	}

	root := src
	if !fi.IsDir() {
		tmp, err := st.TempDir("import")
		if err != nil {
			return fail(err)
		}
		defer os.RemoveAll(tmp)
		root = filepath.Join(tmp, "rootfs")
		if err := extractTarball(ctx, src, root); err != nil {
			return fail(err)
		}
	}
	createdBy := opts.CreatedBy
	if createdBy == "" {
		createdBy = "serpent-oci import"
	}
	img, _, err := AppendDir(ctx, st, nil, opts.Platform, root, AppendOptions{
		Layer:     opts.Layer,
		CreatedBy: createdBy,
		Comment:   "rootfs for " + platform.String(opts.Platform),
	})
	if err != nil {
		return fail(err)
	}
	if len(opts.Annotations) > 0 {
		img = mutate.Annotations(img, opts.Annotations).(v1.Image)
	}
	d, err := st.WriteImage(ctx, img, ref.WithPlatform(&opts.Platform))
	if err != nil {
		return fail(err)
	}
	return d, nil
}

// extractTarball unpacks a rootfs tarball into dir with the same safe extractor layers use.
func extractTarball(ctx context.Context, path, dir string) error {
	f, err := os.Open(path)
	if err != nil {
		return err
	}
	defer f.Close()
	r, closeFn, err := decompress(ctx, f)
	if err != nil {
		return fmt.Errorf("%s: %w", path, err)
	}
	defer closeFn()
	return layer.Extract(ctx, dir, r, layer.Dir)
}

var xzMagic = []byte{0xfd, '7', 'z', 'X', 'Z', 0x00}

// decompress recognises gzip, zstd and xz by their magic numbers; anything else is read as a
// plain tar stream.
func decompress(ctx context.Context, f *os.File) (io.Reader, func(), error) {
	head := make([]byte, 6)
	n, _ := io.ReadFull(f, head)
	if _, err := f.Seek(0, io.SeekStart); err != nil {
		return nil, nil, err
	}
	if n == len(xzMagic) && string(head) == string(xzMagic) {
		cmd := exec.CommandContext(ctx, "xz", "-dc")
		cmd.Stdin = f
		out, err := cmd.StdoutPipe()
		if err != nil {
			return nil, nil, err
		}
		if err := cmd.Start(); err != nil {
			return nil, nil, fmt.Errorf("xz-compressed tarball needs the xz program: %w", err)
		}
		return out, func() { _ = cmd.Wait() }, nil
	}
	switch {
	case n >= 2 && head[0] == 0x1f && head[1] == 0x8b:
		zr, err := pgzip.NewReader(f)
		if err != nil {
			return nil, nil, err
		}
		return zr, func() { zr.Close() }, nil
	case n >= 4 && string(head[:4]) == "\x28\xb5\x2f\xfd":
		zr, err := zstd.NewReader(f)
		if err != nil {
			return nil, nil, err
		}
		return zr, zr.Close, nil
	}
	return f, func() {}, nil
}
