package image

import (
	"archive/tar"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"path"
	"strings"
	"time"

	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
	"github.com/serpent-os/serpent-oci/oci/atomicfile"
	"github.com/serpent-os/serpent-oci/oci/internal/ctxio"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/types"
)

// ExportFormat names what Export writes.
type ExportFormat string

// The export formats.
const (
	// Rootfs is the image's filesystem, all layers applied, as one tar stream: what a catalyst
	// user expects of a stage tarball.
	Rootfs ExportFormat = "rootfs"
	// OCIArchive is a tar of an OCI image layout holding the image, which `skopeo copy
	// oci-archive:FILE` and `podman load` read.
	OCIArchive ExportFormat = "oci-archive"
)

// ParseExportFormat reads a format name as a user writes it.
func ParseExportFormat(s string) (ExportFormat, error) {
	switch f := ExportFormat(s); f {
	case Rootfs, OCIArchive:
		return f, nil
	case "":
		return Rootfs, nil
	}
	return "", fmt.Errorf("unknown export format %q: want rootfs or oci-archive", s)
}

// Export writes img to w in format f. name is the tag an OCI archive records for it.
func Export(ctx context.Context, img v1.Image, name string, f ExportFormat, w io.Writer) error {
	switch f {
	case Rootfs:
		rc := mutate.Extract(img)
		defer rc.Close()
		if err := relativeNames(ctx, rc, w); err != nil {
			return fmt.Errorf("export rootfs: %w", err)
		}
		// go-containerregistry's flattening closes its tar stream (the end-of-archive blocks)
		// before it closes the pipe with its error: an entry it refuses ("unsafe tar path")
		// ends the archive early and cleanly. Its error is only in what follows, so read on.
		if _, err := io.Copy(io.Discard, ctxio.Reader(ctx, rc)); err != nil {
			return fmt.Errorf("export rootfs: %w", err)
		}
		return nil
	case OCIArchive:
		return ExportArchive(ctx, []v1.Image{img}, name, w)
	}
	return fmt.Errorf("unknown export format %q", f)
}

// ExportFile writes imgs to the file path in format f (a rootfs takes one image, an OCI
// archive one or more), tagged name: into a temporary file beside it, renamed into place when
// complete, so that an interrupted or failed export leaves no partial file, and an existing
// one stays as it was.
func ExportFile(ctx context.Context, imgs []v1.Image, name string, f ExportFormat, path string) error {
	if f == Rootfs && len(imgs) != 1 {
		return fmt.Errorf("export rootfs: one image, not %d", len(imgs))
	}
	err := atomicfile.Write(path, func(w io.Writer) error {
		if f == OCIArchive {
			return ExportArchive(ctx, imgs, name, w)
		}
		return Export(ctx, imgs[0], name, f, w)
	})
	if err != nil {
		return fmt.Errorf("export: %w", err)
	}
	return nil
}

// ExportArchive writes an OCI archive (a tar of an OCI image layout) of imgs to w, tagged name:
// one image as itself, several (one per platform) as an image index of them, which `skopeo
// copy --all oci-archive:FILE:NAME` copies whole and a platform-aware reader picks from.
func ExportArchive(ctx context.Context, imgs []v1.Image, name string, w io.Writer) error {
	if err := writeOCIArchive(ctx, imgs, name, w); err != nil {
		return fmt.Errorf("export oci-archive: %w", err)
	}
	return nil
}

// writeOCIArchive streams an OCI layout holding imgs (an index of them when there are several).
// Every entry is dated at the newest image's creation time, so that an archive of the same
// images is the same bytes.
func writeOCIArchive(ctx context.Context, imgs []v1.Image, name string, w io.Writer) error {
	if len(imgs) == 0 {
		return errors.New("no image to export")
	}
	type blobFile struct {
		digest v1.Hash
		raw    []byte
	}
	var (
		mtime     time.Time
		manifests []v1.Descriptor
		small     []blobFile // manifests and configs
	)
	for _, img := range imgs {
		cfg, err := img.ConfigFile()
		if err != nil {
			return err
		}
		if cfg.Created.After(mtime) {
			mtime = cfg.Created.Time
		}
		digest, err := img.Digest()
		if err != nil {
			return err
		}
		rawManifest, err := img.RawManifest()
		if err != nil {
			return err
		}
		mt, err := img.MediaType()
		if err != nil {
			return err
		}
		rawConfig, err := img.RawConfigFile()
		if err != nil {
			return err
		}
		cfgName, err := img.ConfigName()
		if err != nil {
			return err
		}
		manifests = append(manifests, v1.Descriptor{
			MediaType: mt, Digest: digest, Size: int64(len(rawManifest)),
			Platform: &v1.Platform{OS: cfg.OS, Architecture: cfg.Architecture, Variant: cfg.Variant},
		})
		small = append(small, blobFile{digest, rawManifest}, blobFile{cfgName, rawConfig})
	}
	top := manifests[0]
	if len(manifests) > 1 {
		rawIndex, err := json.Marshal(v1.IndexManifest{SchemaVersion: 2, MediaType: types.OCIImageIndex, Manifests: manifests})
		if err != nil {
			return err
		}
		h, _, err := v1.SHA256(bytes.NewReader(rawIndex))
		if err != nil {
			return err
		}
		top = v1.Descriptor{MediaType: types.OCIImageIndex, Digest: h, Size: int64(len(rawIndex))}
		small = append([]blobFile{{h, rawIndex}}, small...)
	}
	top.Annotations = map[string]string{ocispec.AnnotationRefName: name}
	indexJSON, err := json.Marshal(v1.IndexManifest{SchemaVersion: 2, MediaType: types.OCIImageIndex, Manifests: []v1.Descriptor{top}})
	if err != nil {
		return err
	}

	tw := tar.NewWriter(w)
	dir := func(name string) error {
		return tw.WriteHeader(&tar.Header{Typeflag: tar.TypeDir, Name: name, Mode: 0o755, ModTime: mtime})
	}
	file := func(name string, size int64, r io.Reader) error {
		if err := tw.WriteHeader(&tar.Header{Typeflag: tar.TypeReg, Name: name, Mode: 0o644, Size: size, ModTime: mtime}); err != nil {
			return err
		}
		_, err := io.Copy(tw, ctxio.Reader(ctx, r))
		return err
	}
	bytesFile := func(name string, b []byte) error {
		return file(name, int64(len(b)), bytes.NewReader(b))
	}
	blob := func(h v1.Hash) string { return "blobs/" + h.Algorithm + "/" + h.Hex }
	written := map[v1.Hash]bool{}
	steps := []func() error{
		func() error { return bytesFile("oci-layout", []byte(`{"imageLayoutVersion":"1.0.0"}`)) },
		func() error { return bytesFile("index.json", indexJSON) },
		func() error { return dir("blobs/") },
		func() error { return dir("blobs/sha256/") },
	}
	for _, step := range steps {
		if err := step(); err != nil {
			return err
		}
	}
	for _, b := range small {
		if written[b.digest] {
			continue
		}
		written[b.digest] = true
		if err := bytesFile(blob(b.digest), b.raw); err != nil {
			return err
		}
	}
	for _, img := range imgs {
		layers, err := img.Layers()
		if err != nil {
			return err
		}
		for _, l := range layers {
			d, err := l.Digest()
			if err != nil {
				return err
			}
			if written[d] {
				continue
			}
			written[d] = true
			size, err := l.Size()
			if err != nil {
				return err
			}
			rc, err := l.Compressed()
			if err != nil {
				return fmt.Errorf("layer %s: %w", d, err)
			}
			err = file(blob(d), size, rc)
			rc.Close()
			if err != nil {
				return fmt.Errorf("layer %s: %w", d, err)
			}
		}
	}
	return tw.Close()
}

// relativeNames copies the tar stream r to w with every name (and hardlink target) made
// relative and clean, as in a layer: an absolute or `..` name in a hostile image must not
// become one in a rootfs tarball that a user unpacks with tar -x as root.
func relativeNames(ctx context.Context, r io.Reader, w io.Writer) error {
	tr := tar.NewReader(ctxio.Reader(ctx, r))
	tw := tar.NewWriter(w)
	for {
		hdr, err := tr.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			return err
		}
		name := strings.TrimPrefix(path.Clean("/"+hdr.Name), "/")
		if name == "" {
			continue
		}
		if hdr.Typeflag == tar.TypeDir {
			name += "/"
		}
		hdr.Name = name
		if hdr.Typeflag == tar.TypeLink {
			hdr.Linkname = strings.TrimPrefix(path.Clean("/"+hdr.Linkname), "/")
		}
		if err := tw.WriteHeader(hdr); err != nil {
			return err
		}
		if _, err := io.Copy(tw, tr); err != nil {
			return err
		}
	}
	return tw.Close()
}
