// Package image builds and converts images over the store: an OCI scratch image for a
// platform, layers written from directories straight into the store, import of a directory or
// rootfs tarball as a one-layer image, and export as a rootfs tarball or an OCI archive.
package image

import (
	"fmt"
	"io"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/partial"
	"github.com/google/go-containerregistry/pkg/v1/types"
	"github.com/serpent-os/serpent-oci/oci/store"
)

// DefaultPath is the PATH of a new image's config.
const DefaultPath = "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"

// Scratch returns an empty OCI-typed image for platform p, created at created (the source date
// epoch, so that the config is the same bytes whenever it is made). go-containerregistry's
// empty.Image is Docker-typed and names no platform, which umoci refuses.
func Scratch(p v1.Platform, created time.Time) (v1.Image, error) {
	img := mutate.MediaType(empty.Image, types.OCIManifestSchema1)
	img = mutate.ConfigMediaType(img, types.OCIConfigJSON)
	cfg, err := img.ConfigFile()
	if err != nil {
		return nil, fmt.Errorf("scratch image: %w", err)
	}
	cfg = cfg.DeepCopy()
	cfg.OS, cfg.Architecture, cfg.Variant = p.OS, p.Architecture, p.Variant
	cfg.Created = v1.Time{Time: created.UTC()}
	cfg.Config.Env = []string{DefaultPath}
	cfg.RootFS.Type = "layers"
	return mutate.ConfigFile(img, cfg)
}

// storedLayer is a layer whose compressed blob is already in the store and whose diff ID was
// computed while it was written, so nothing reads it again to describe it.
type storedLayer struct {
	st        *store.Store
	digest    v1.Hash
	diffID    v1.Hash
	size      int64
	mediaType types.MediaType
}

func (l *storedLayer) Digest() (v1.Hash, error)            { return l.digest, nil }
func (l *storedLayer) DiffID() (v1.Hash, error)            { return l.diffID, nil }
func (l *storedLayer) Size() (int64, error)                { return l.size, nil }
func (l *storedLayer) MediaType() (types.MediaType, error) { return l.mediaType, nil }
func (l *storedLayer) Compressed() (io.ReadCloser, error)  { return l.st.Blob(l.digest) }

func (l *storedLayer) layer() (v1.Layer, error) { return partial.CompressedToLayer(l) }

// Size is what img takes in a store or a registry: its layers and config, compressed.
func Size(img v1.Image) (int64, error) {
	m, err := img.Manifest()
	if err != nil {
		return 0, err
	}
	n := m.Config.Size
	for _, l := range m.Layers {
		n += l.Size
	}
	return n, nil
}

// WithoutAnnotations is img as the base of a new image: the manifest annotations describe the
// manifest they are in (its stage, its cache key, its base), so an image built on img must
// not inherit them. go-containerregistry's mutate copies the base's manifest, annotations
// included, and can add annotations but not remove them; this drops them at the source.
// Only the manifest read by mutate changes: use the result as a base for mutate, nothing else.
func WithoutAnnotations(img v1.Image) v1.Image { return &unannotated{img} }

type unannotated struct{ v1.Image }

func (u *unannotated) Manifest() (*v1.Manifest, error) {
	m, err := u.Image.Manifest()
	if err != nil {
		return nil, err
	}
	m = m.DeepCopy()
	m.Annotations = nil
	return m, nil
}
