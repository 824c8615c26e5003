package store

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"sync"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/partial"
	"github.com/google/go-containerregistry/pkg/v1/types"
	"github.com/serpent-os/serpent-oci/oci/pausepoint"
	"github.com/serpent-os/serpent-oci/oci/platform"
	"golang.org/x/sync/errgroup"
)

// WriteImage stores img (its layers, config and manifest, each skipped when already present)
// and tags it as ref for the platform in its config. ref.Platform, when set, must agree with
// the config. The tag is set last: an interrupted write leaves no tag, only blobs gc removes.
func (s *Store) WriteImage(ctx context.Context, img v1.Image, ref Ref) (v1.Descriptor, error) {
	release, err := s.Hold(ctx)
	if err != nil {
		return v1.Descriptor{}, err
	}
	defer release()
	d, err := s.writeImageBlobs(ctx, img)
	if err != nil {
		return v1.Descriptor{}, fmt.Errorf("write image %s: %w", ref, err)
	}
	if ref.Platform != nil && !platformEqual(ref.Platform, d.Platform) {
		return v1.Descriptor{}, fmt.Errorf("write image %s: its config says platform %s", ref, fmtPlatform(d.Platform))
	}
	// An interrupt that came while the blobs were written stops here: nothing is tagged.
	if err := pausepoint.Reach(ctx, pausepoint.BeforeTag); err != nil {
		return v1.Descriptor{}, fmt.Errorf("write image %s: %w", ref, err)
	}
	if err := s.SetTag(ctx, ref.WithPlatform(d.Platform), d); err != nil {
		return v1.Descriptor{}, err
	}
	// Once tagged the image is written: an interrupt after this moment does not undo it.
	_ = pausepoint.Reach(ctx, pausepoint.AfterTag)
	return d, nil
}

// layerJobs is how many layers of an image are written at once.
const layerJobs = 4

// writeImageBlobs stores img's blobs and returns a descriptor of its manifest carrying the
// platform from its config.
func (s *Store) writeImageBlobs(ctx context.Context, img v1.Image) (v1.Descriptor, error) {
	if err := CheckBounds(img); err != nil {
		return v1.Descriptor{}, err
	}
	layers, err := img.Layers()
	if err != nil {
		return v1.Descriptor{}, fmt.Errorf("list layers: %w", err)
	}
	// Layers are written side by side: from a registry each is its own download.
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(layerJobs)
	for _, l := range layers {
		g.Go(func() error { return s.writeLayer(gctx, l) })
	}
	if err := g.Wait(); err != nil {
		return v1.Descriptor{}, err
	}
	cfgName, err := img.ConfigName()
	if err != nil {
		return v1.Descriptor{}, fmt.Errorf("config digest: %w", err)
	}
	rawCfg, err := img.RawConfigFile()
	if err != nil {
		return v1.Descriptor{}, fmt.Errorf("read config: %w", err)
	}
	if _, _, err := s.WriteBlob(ctx, bytes.NewReader(rawCfg), &cfgName); err != nil {
		return v1.Descriptor{}, fmt.Errorf("config: %w", err)
	}
	cfg, err := img.ConfigFile()
	if err != nil {
		return v1.Descriptor{}, fmt.Errorf("parse config: %w", err)
	}
	if cfg.OS == "" || cfg.Architecture == "" {
		return v1.Descriptor{}, fmt.Errorf("config %s names no platform (os/architecture)", cfgName)
	}
	raw, err := img.RawManifest()
	if err != nil {
		return v1.Descriptor{}, fmt.Errorf("read manifest: %w", err)
	}
	mt, err := img.MediaType()
	if err != nil {
		return v1.Descriptor{}, fmt.Errorf("manifest media type: %w", err)
	}
	digest, size, err := s.WriteBlob(ctx, bytes.NewReader(raw), nil)
	if err != nil {
		return v1.Descriptor{}, fmt.Errorf("manifest: %w", err)
	}
	return v1.Descriptor{
		MediaType: mt,
		Digest:    digest,
		Size:      size,
		Platform:  &v1.Platform{OS: cfg.OS, Architecture: cfg.Architecture, Variant: cfg.Variant},
	}, nil
}

func (s *Store) writeLayer(ctx context.Context, l v1.Layer) error {
	digest, err := l.Digest()
	if err != nil {
		return fmt.Errorf("layer digest: %w", err)
	}
	if s.HasBlob(digest) {
		return nil
	}
	rc, err := l.Compressed()
	if err != nil {
		return fmt.Errorf("read layer %s: %w", digest, err)
	}
	defer rc.Close()
	newBlob := s.NewBlob
	if v, ok := l.(VerifiedLayer); ok && v.VerifiesCompressed() {
		newBlob = s.newVerifiedBlob
	}
	if _, _, err := s.copyBlob(ctx, rc, &digest, newBlob); err != nil {
		return fmt.Errorf("layer %s: %w", digest, err)
	}
	return nil
}

// VerifiedLayer is a layer whose Compressed stream checks its own bytes: a read returns an
// error, at the latest where the stream ends, when they do not hash to the layer's digest or
// do not have its size. go-containerregistry's remote layers are such (verify.ReadCloser); a pull says so,
// and the store then hashes a layer once, not twice (a fifth of a pull's time).
type VerifiedLayer interface {
	v1.Layer
	VerifiesCompressed() bool
}

// WriteIndex stores a multi-platform index with every image it holds and tags it by name.
func (s *Store) WriteIndex(ctx context.Context, idx v1.ImageIndex, name string) (v1.Descriptor, error) {
	release, err := s.Hold(ctx)
	if err != nil {
		return v1.Descriptor{}, err
	}
	defer release()
	m, err := idx.IndexManifest()
	if err != nil {
		return v1.Descriptor{}, fmt.Errorf("write index %s: %w", name, err)
	}
	for _, child := range m.Manifests {
		if isIndex(child.MediaType) {
			return v1.Descriptor{}, fmt.Errorf("write index %s: nested indexes are not supported", name)
		}
		img, err := idx.Image(child.Digest)
		if err != nil {
			return v1.Descriptor{}, fmt.Errorf("write index %s: image %s: %w", name, child.Digest, err)
		}
		if _, err := s.writeImageBlobs(ctx, img); err != nil {
			return v1.Descriptor{}, fmt.Errorf("write index %s: image %s: %w", name, child.Digest, err)
		}
	}
	raw, err := idx.RawManifest()
	if err != nil {
		return v1.Descriptor{}, fmt.Errorf("write index %s: %w", name, err)
	}
	mt, err := idx.MediaType()
	if err != nil {
		return v1.Descriptor{}, fmt.Errorf("write index %s: %w", name, err)
	}
	digest, size, err := s.WriteBlob(ctx, bytes.NewReader(raw), nil)
	if err != nil {
		return v1.Descriptor{}, fmt.Errorf("write index %s: %w", name, err)
	}
	d := v1.Descriptor{MediaType: mt, Digest: digest, Size: size}
	return d, s.SetTag(ctx, Ref{Name: name}, d)
}

// Image returns the image ref names (see Resolve), read lazily from the store's blobs.
func (s *Store) Image(ref Ref) (v1.Image, v1.Descriptor, error) {
	d, err := s.Resolve(ref)
	if err != nil {
		return nil, d, err
	}
	if isIndex(d.MediaType) {
		return nil, d, fmt.Errorf("tag %s is %w (a multi-platform index): name a platform (--platform or NAME@os/arch)", ref, ErrAmbiguous)
	}
	img, err := s.ImageByDigest(d)
	return img, d, err
}

// ImageFor is Image, except that a ref naming no platform whose name holds several (tags of
// several platforms, or an index) is read as that name for platform p, when it has p: the
// rule podman and pull follow with the host's platform. Without p there, it is Image's error,
// which lists the platforms the name has.
func (s *Store) ImageFor(ref Ref, p v1.Platform) (v1.Image, v1.Descriptor, error) {
	img, d, err := s.Image(ref)
	if ref.Platform != nil || !errors.Is(err, ErrAmbiguous) {
		return img, d, err
	}
	if img2, d2, err2 := s.Image(ref.WithPlatform(&p)); err2 == nil {
		return img2, d2, nil
	}
	return img, d, err
}

// ImageByDigest returns the image whose manifest descriptor is d.
func (s *Store) ImageByDigest(d v1.Descriptor) (v1.Image, error) {
	if !s.HasBlob(d.Digest) {
		return nil, fmt.Errorf("manifest %s: %w", d.Digest, ErrNotFound)
	}
	return partial.CompressedToImage(&storedImage{s: s, desc: d})
}

// ImageByHash returns the image whose manifest has digest h, whatever its tags (the media type
// is read from the manifest itself).
func (s *Store) ImageByHash(h v1.Hash) (v1.Image, error) {
	raw, err := s.readBlob(h)
	if err != nil {
		return nil, fmt.Errorf("manifest %s: %w", h, ErrNotFound)
	}
	var m struct {
		MediaType types.MediaType `json:"mediaType"`
	}
	if err := json.Unmarshal(raw, &m); err != nil || !m.MediaType.IsImage() {
		return nil, fmt.Errorf("blob %s is not an image manifest", h)
	}
	return s.ImageByDigest(v1.Descriptor{MediaType: m.MediaType, Digest: h, Size: int64(len(raw))})
}

// Index returns the image index tagged name.
func (s *Store) Index(name string) (v1.ImageIndex, error) {
	d, err := s.Resolve(Ref{Name: name})
	if err != nil {
		return nil, err
	}
	if !isIndex(d.MediaType) {
		return nil, fmt.Errorf("tag %s is an image, not an index", name)
	}
	return &storedIndex{s: s, desc: d}, nil
}

// storedImage reads an image from the store's blobs (partial fills in the rest of v1.Image).
// The manifest is read and parsed once, within the store's limits, and its blobs indexed by
// digest: a lookup per layer costs nothing however many layers there are.
type storedImage struct {
	s      *Store
	desc   v1.Descriptor
	once   sync.Once
	raw    []byte
	blobs  map[v1.Hash]v1.Descriptor // config and layers
	config v1.Descriptor
	err    error
}

var _ partial.CompressedImageCore = (*storedImage)(nil)

func (i *storedImage) MediaType() (types.MediaType, error) { return i.desc.MediaType, nil }

func (i *storedImage) load() error {
	i.once.Do(func() {
		i.raw, i.err = i.s.readSmallBlob(i.desc.Digest, MaxManifestBytes)
		if i.err != nil {
			i.err = fmt.Errorf("manifest %s: %w", i.desc.Digest, i.err)
			return
		}
		m, err := v1.ParseManifest(bytes.NewReader(i.raw))
		if err != nil {
			i.err = fmt.Errorf("manifest %s: %w", i.desc.Digest, err)
			return
		}
		if len(m.Layers) > MaxLayers {
			i.err = fmt.Errorf("manifest %s has %d layers: at most %d", i.desc.Digest, len(m.Layers), MaxLayers)
			return
		}
		i.config = m.Config
		i.blobs = make(map[v1.Hash]v1.Descriptor, len(m.Layers)+1)
		for _, l := range m.Layers {
			i.blobs[l.Digest] = l
		}
		i.blobs[m.Config.Digest] = m.Config
	})
	return i.err
}

func (i *storedImage) RawManifest() ([]byte, error) {
	if err := i.load(); err != nil {
		return nil, err
	}
	return i.raw, nil
}

func (i *storedImage) RawConfigFile() ([]byte, error) {
	if err := i.load(); err != nil {
		return nil, err
	}
	b, err := i.s.readSmallBlob(i.config.Digest, MaxConfigBytes)
	if err != nil {
		return nil, fmt.Errorf("config of %s: %w", i.desc.Digest, err)
	}
	return b, nil
}

func (i *storedImage) LayerByDigest(h v1.Hash) (partial.CompressedLayer, error) {
	if err := i.load(); err != nil {
		return nil, err
	}
	if d, ok := i.blobs[h]; ok {
		return &storedBlob{s: i.s, desc: d}, nil
	}
	return nil, fmt.Errorf("layer %s is not in image %s: %w", h, i.desc.Digest, ErrNotFound)
}

type storedBlob struct {
	s    *Store
	desc v1.Descriptor
}

func (b *storedBlob) Digest() (v1.Hash, error)            { return b.desc.Digest, nil }
func (b *storedBlob) Compressed() (io.ReadCloser, error)  { return b.s.Blob(b.desc.Digest) }
func (b *storedBlob) Size() (int64, error)                { return b.desc.Size, nil }
func (b *storedBlob) MediaType() (types.MediaType, error) { return b.desc.MediaType, nil }
func (b *storedBlob) Descriptor() (*v1.Descriptor, error) { return &b.desc, nil }

// storedIndex reads an image index from the store's blobs.
type storedIndex struct {
	s    *Store
	desc v1.Descriptor
}

var _ v1.ImageIndex = (*storedIndex)(nil)

func (x *storedIndex) MediaType() (types.MediaType, error) { return x.desc.MediaType, nil }
func (x *storedIndex) Digest() (v1.Hash, error)            { return x.desc.Digest, nil }
func (x *storedIndex) Size() (int64, error)                { return x.desc.Size, nil }
func (x *storedIndex) RawManifest() ([]byte, error)        { return x.s.readBlob(x.desc.Digest) }

func (x *storedIndex) IndexManifest() (*v1.IndexManifest, error) {
	b, err := x.RawManifest()
	if err != nil {
		return nil, err
	}
	return v1.ParseIndexManifest(bytes.NewReader(b))
}

func (x *storedIndex) child(h v1.Hash) (v1.Descriptor, error) {
	m, err := x.IndexManifest()
	if err != nil {
		return v1.Descriptor{}, err
	}
	for _, d := range m.Manifests {
		if d.Digest == h {
			return d, nil
		}
	}
	return v1.Descriptor{}, fmt.Errorf("%s is not in index %s: %w", h, x.desc.Digest, ErrNotFound)
}

func (x *storedIndex) Image(h v1.Hash) (v1.Image, error) {
	d, err := x.child(h)
	if err != nil {
		return nil, err
	}
	return x.s.ImageByDigest(d)
}

func (x *storedIndex) ImageIndex(h v1.Hash) (v1.ImageIndex, error) {
	d, err := x.child(h)
	if err != nil {
		return nil, err
	}
	return &storedIndex{s: x.s, desc: d}, nil
}

func platformEqual(a, b *v1.Platform) bool {
	if a == nil || b == nil {
		return a == b
	}
	return fmtPlatform(a) == fmtPlatform(b)
}

// ImageForPlatform returns the image for platform p that the blob h names: h itself when it
// is an image manifest for p, or p's image in the index h. It is how NAME@sha256:DIGEST reads
// in the store, for a digest that a tag there reports.
func (s *Store) ImageForPlatform(h v1.Hash, p v1.Platform) (v1.Image, v1.Descriptor, error) {
	mt := s.mediaTypeOf(v1.Descriptor{Digest: h})
	switch {
	case isIndex(mt):
		d, err := s.findInIndex(v1.Descriptor{MediaType: mt, Digest: h}, p)
		if err != nil {
			return nil, d, err
		}
		img, err := s.ImageByDigest(d)
		return img, d, err
	case isManifest(mt):
		raw, err := s.readSmallBlob(h, MaxManifestBytes)
		if err != nil {
			return nil, v1.Descriptor{}, err
		}
		d := v1.Descriptor{MediaType: mt, Digest: h, Size: int64(len(raw))}
		d.Platform = s.configPlatform(d)
		if d.Platform == nil || !platform.Equal(*d.Platform, p) {
			return nil, d, fmt.Errorf("image %s is for %s, not %s", h, fmtPlatform(d.Platform), platform.String(p))
		}
		img, err := s.ImageByDigest(d)
		return img, d, err
	}
	return nil, v1.Descriptor{}, fmt.Errorf("%s: %w (no image or index with this digest in the store)", h, ErrNotFound)
}

// TaggedDigest reports whether name is tagged in the store, and whether one of its tags (an
// image's or an index's) points at h.
func (s *Store) TaggedDigest(name string, h v1.Hash) (named, pointsAt bool) {
	tags, err := s.Tags()
	if err != nil {
		return false, false
	}
	for _, t := range tags {
		if t.Ref.Name == name {
			named = true
			if t.Descriptor.Digest == h {
				return true, true
			}
		}
	}
	return named, false
}
