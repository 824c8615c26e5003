package store

import (
	"encoding/json"
	"fmt"
	"io"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/types"
)

// Limits on what the store reads whole into memory. A manifest or index above them is refused
// (by name) rather than parsed: whoever wrote it, it is no image anyone builds.
const (
	MaxManifestBytes = 4 << 20  // a manifest or index blob
	MaxConfigBytes   = 16 << 20 // an image config blob
	MaxIndexBytes    = 64 << 20 // the store's index.json (some 200,000 entries)
	MaxLayers        = 1000     // layers of one image (overlayfs mounts far fewer at once)
)

// CheckBounds refuses an image (from a registry, a tarball, anywhere) that the store would
// refuse to read back: a manifest over MaxManifestBytes, more than MaxLayers layers, a config
// over MaxConfigBytes, a negative size. It reads the manifest only, so that an image that
// declares a 10 GiB config or 100,000 layers is refused before any of it is fetched.
func CheckBounds(img v1.Image) error {
	raw, err := img.RawManifest()
	if err != nil {
		return err
	}
	if len(raw) > MaxManifestBytes {
		return fmt.Errorf("a manifest of %d bytes: at most %d", len(raw), MaxManifestBytes)
	}
	m, err := img.Manifest()
	if err != nil {
		return err
	}
	switch {
	case len(m.Layers) > MaxLayers:
		return fmt.Errorf("%d layers: at most %d", len(m.Layers), MaxLayers)
	case m.Config.Size < 0 || m.Config.Size > MaxConfigBytes:
		return fmt.Errorf("a config of %d bytes: at most %d", m.Config.Size, MaxConfigBytes)
	}
	for i, l := range m.Layers {
		if l.Size < 0 {
			return fmt.Errorf("layer %d: a size of %d bytes", i, l.Size)
		}
	}
	return nil
}

// mediaTypeOf is d's media type, or, for a descriptor that names none (index.json entries
// written by hand or by tools that leave it out), the one its blob says: its own mediaType
// field, else its shape (manifests: an index; config and layers: a manifest). It returns ""
// when neither tells, and every reader of the store (resolve, run, fsck, gc) goes by the
// same answer.
func (s *Store) mediaTypeOf(d v1.Descriptor) types.MediaType {
	if d.MediaType != "" {
		return d.MediaType
	}
	b, err := s.readSmallBlob(d.Digest, MaxManifestBytes)
	if err != nil {
		return ""
	}
	return kindOfBlob(b)
}

// kindOfBlob is the media type a manifest or index blob says it is: its own mediaType field,
// else its shape (manifests: an index; config and layers: a manifest); "" when it is neither,
// or names another media type. Descriptors can lie (a hand-edited index.json, a registry's
// entry); the bytes the digest names cannot.
func kindOfBlob(b []byte) types.MediaType {
	var probe struct {
		MediaType types.MediaType `json:"mediaType"`
		Manifests json.RawMessage `json:"manifests"`
		Config    json.RawMessage `json:"config"`
		Layers    json.RawMessage `json:"layers"`
	}
	if json.Unmarshal(b, &probe) != nil {
		return ""
	}
	switch {
	case probe.MediaType != "" && !isIndex(probe.MediaType) && !isManifest(probe.MediaType):
		return ""
	case isIndex(probe.MediaType) && probe.Config == nil && probe.Layers == nil:
		return probe.MediaType
	case isManifest(probe.MediaType) && probe.Config != nil && probe.Manifests == nil:
		return probe.MediaType
	case probe.MediaType != "":
		return "" // a mediaType field its shape contradicts
	case probe.Manifests != nil && probe.Config == nil:
		return types.OCIImageIndex
	case probe.Config != nil && probe.Layers != nil && probe.Manifests == nil:
		return types.OCIManifestSchema1
	}
	return ""
}

// readSmallBlob reads blob h whole, refusing one larger than limit.
func (s *Store) readSmallBlob(h v1.Hash, limit int64) ([]byte, error) {
	f, err := s.openBlob(h)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	b, err := io.ReadAll(io.LimitReader(f, limit+1))
	if err != nil {
		return nil, fmt.Errorf("read blob %s: %w", h, err)
	}
	if int64(len(b)) > limit {
		return nil, fmt.Errorf("blob %s is larger than %d bytes: too large to be a manifest or config", h, limit)
	}
	return b, nil
}
