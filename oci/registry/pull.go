package registry

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"time"

	"github.com/containerd/log"
	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/serpent-os/serpent-oci/oci/platform"
	"github.com/serpent-os/serpent-oci/oci/progress"
	"github.com/serpent-os/serpent-oci/oci/store"
)

// Head returns the descriptor ref names at its registry, or an error wrapping ErrNotFound.
func (c *Client) Head(ctx context.Context, ref name.Reference) (v1.Descriptor, error) {
	d, err := remote.Head(ref, c.remoteOptions(ctx)...)
	if err != nil {
		return v1.Descriptor{}, c.describe("look up", ref, ref.Context().RegistryStr(), err)
	}
	return *d, nil
}

// Image returns the image ref names for platform p: ref itself when it is an image (whose
// config must say p), or p's entry when it is an index. Its blobs are read lazily.
func (c *Client) Image(ctx context.Context, ref name.Reference, p v1.Platform) (v1.Image, error) {
	reg := ref.Context().RegistryStr()
	desc, err := remote.Get(ref, c.remoteOptions(ctx)...)
	if err != nil {
		return nil, c.describe("pull", ref, reg, err)
	}
	var img v1.Image
	if desc.MediaType.IsIndex() {
		idx, err := desc.ImageIndex()
		if err != nil {
			return nil, c.describe("pull", ref, reg, err)
		}
		im, err := idx.IndexManifest()
		if err != nil {
			return nil, c.describe("pull", ref, reg, err)
		}
		var have []string
		for _, m := range im.Manifests {
			if m.Platform == nil || !m.MediaType.IsImage() {
				continue
			}
			if platform.Equal(*m.Platform, p) {
				if img, err = idx.Image(m.Digest); err != nil {
					return nil, c.describe("pull", ref, reg, err)
				}
				break
			}
			have = append(have, platform.String(*m.Platform))
		}
		if img == nil {
			return nil, fmt.Errorf("pull %s: the index has no image for %s (it has: %v)", ref, platform.String(p), have)
		}
		if err := store.CheckBounds(img); err != nil {
			return nil, fmt.Errorf("pull %s for %s: %w", ref, platform.String(p), err)
		}
	} else {
		if img, err = desc.Image(); err != nil {
			return nil, c.describe("pull", ref, reg, err)
		}
		if err := store.CheckBounds(img); err != nil {
			return nil, fmt.Errorf("pull %s: %w", ref, err)
		}
		cfg, err := img.ConfigFile()
		if err != nil {
			return nil, c.describe("pull", ref, reg, err)
		}
		if got := cfg.Platform(); got == nil || !platform.Equal(*got, p) {
			return nil, fmt.Errorf("pull %s: the image is for %s, not %s", ref, platformOf(got), platform.String(p))
		}
	}
	return img, nil
}

func platformOf(p *v1.Platform) string {
	if p == nil || p.OS == "" {
		return "no platform"
	}
	return platform.String(*p)
}

// Pull copies the image ref names for platform p into st and tags it tag (for p). Blobs the
// store has are not fetched again; broken transfers are retried, keeping what arrived whole.
// The tag is set last: an interrupted pull tags nothing.
func (c *Client) Pull(ctx context.Context, st *store.Store, ref name.Reference, p v1.Platform, tag string) (v1.Descriptor, error) {
	img, err := c.Image(ctx, ref, p)
	if err != nil {
		return v1.Descriptor{}, err
	}
	return c.Store(ctx, st, img, ref, store.Ref{Name: tag}.WithPlatform(&p))
}

// Store copies img, read from ref, into st as tag.
func (c *Client) Store(ctx context.Context, st *store.Store, img v1.Image, ref name.Reference, tag store.Ref) (v1.Descriptor, error) {
	reg := ref.Context().RegistryStr()
	if n, b := st.SweepStaleBlobs(); n > 0 {
		log.G(ctx).WithFields(log.Fields{"files": n, "bytes": b}).Info("removed partial blobs of interrupted writes")
	}
	m, err := img.Manifest()
	if err != nil {
		return v1.Descriptor{}, c.describe("pull", ref, reg, err)
	}
	var total int64
	for _, l := range m.Layers {
		total += l.Size
	}
	meter := progress.NewEvery(c.opts.Progress, "pulling "+ref.String(), total, c.opts.ProgressInterval)
	b, tries := c.opts.Backoff, c.opts.Backoff.Steps
	for try := 1; ; try++ {
		var d v1.Descriptor
		d, err = st.WriteImage(ctx, &meteredImage{Image: img, m: meter}, tag)
		if err == nil {
			meter.Done()
			// Where its layers came from: a push of them to another repository of that
			// registry mounts them from there.
			recordSources(ctx, st, ref.Context(), img)
			return d, nil
		}
		if try >= tries || !Retryable(err) {
			break
		}
		wait := b.Step()
		log.G(ctx).WithError(err).WithFields(log.Fields{"ref": ref.String(), "try": try, "wait": wait.Round(time.Millisecond).String()}).Warn("pull failed: retrying")
		select {
		case <-ctx.Done():
			return v1.Descriptor{}, fmt.Errorf("pull %s: %w", ref, ctx.Err())
		case <-time.After(wait):
		}
	}
	return v1.Descriptor{}, c.describe("pull", ref, reg, err)
}

// meteredImage counts the compressed bytes read from its layers on a progress meter.
type meteredImage struct {
	v1.Image
	m *progress.Meter
}

func (i *meteredImage) Layers() ([]v1.Layer, error) {
	ls, err := i.Image.Layers()
	if err != nil {
		return nil, err
	}
	out := make([]v1.Layer, len(ls))
	for k, l := range ls {
		out[k] = &meteredLayer{Layer: l, m: i.m}
	}
	return out, nil
}

type meteredLayer struct {
	v1.Layer
	m *progress.Meter
}

// VerifiesCompressed says whether the layer's stream checks itself (store.VerifiedLayer), so
// that the store need not hash it again: go-containerregistry's remote images (Image, the
// cache's lookups) hand out their layers as remote.MountableLayer, whose Compressed fails on
// bytes that do not match the digest or the size (TestPullRefusesBlobsNotTheirDigest).
func (l *meteredLayer) VerifiesCompressed() bool {
	_, ok := l.Layer.(*remote.MountableLayer)
	return ok
}

func (l *meteredLayer) Compressed() (io.ReadCloser, error) {
	rc, err := l.Layer.Compressed()
	if err != nil {
		return nil, err
	}
	return struct {
		io.Reader
		io.Closer
	}{progress.Reader(rc, l.m), rc}, nil
}

// IsNotFound reports whether err says a registry has no such image.
func IsNotFound(err error) bool { return errors.Is(err, ErrNotFound) }

// What a registry says about an image is hostile input like the image: PullReferrers takes
// at most maxReferrers artifacts, each one layer of at most maxReferrerBytes, with at most
// maxReferrerAnnotationBytes of annotations.
const (
	maxReferrers               = 16
	maxReferrerBytes           = 8 << 20
	maxReferrerAnnotationBytes = 64 << 10
)

// PullReferrers copies into st the one-layer artifacts of artifactType ("" for any) that repo
// holds about subject (an image st has: its SBOMs), as referrers of it with their annotations,
// and returns how many it stored.
func (c *Client) PullReferrers(ctx context.Context, st *store.Store, repo name.Repository, subject v1.Descriptor, artifactType string) (int, error) {
	refs, err := c.Referrers(ctx, repo.Digest(subject.Digest.String()), artifactType)
	if err != nil {
		return 0, err
	}
	if len(refs) > maxReferrers {
		return 0, fmt.Errorf("referrers of %s in %s: %d, more than the %d taken", subject.Digest, repo, len(refs), maxReferrers)
	}
	n := 0
	for _, r := range refs {
		ref := repo.Digest(r.Digest.String())
		data, m, err := c.referrerData(ctx, ref, subject.Digest)
		if err != nil {
			return n, err
		}
		if _, err := st.WriteReferrer(ctx, subject, m.ArtifactType, m.Layers[0].MediaType, data, m.Annotations); err != nil {
			return n, fmt.Errorf("store referrer %s of %s: %w", ref, subject.Digest, err)
		}
		n++
	}
	return n, nil
}

// referrerData reads the artifact ref names: its manifest, which must be one layer about
// subject, within the bounds above, and that layer, checked against its digest.
func (c *Client) referrerData(ctx context.Context, ref name.Digest, subject v1.Hash) ([]byte, *v1.Manifest, error) {
	art, err := remote.Image(ref, c.remoteOptions(ctx)...)
	if err != nil {
		return nil, nil, c.describe("pull referrer", ref, ref.RegistryStr(), err)
	}
	m, err := art.Manifest()
	if err != nil {
		return nil, nil, c.describe("pull referrer", ref, ref.RegistryStr(), err)
	}
	annotationBytes := 0
	for k, v := range m.Annotations {
		annotationBytes += len(k) + len(v)
	}
	switch {
	case m.Subject == nil || m.Subject.Digest != subject:
		return nil, nil, fmt.Errorf("referrer %s: its subject is not %s", ref, subject)
	case len(m.Layers) != 1:
		return nil, nil, fmt.Errorf("referrer %s: %d layers, want one", ref, len(m.Layers))
	case m.Layers[0].Size < 0 || m.Layers[0].Size > maxReferrerBytes:
		return nil, nil, fmt.Errorf("referrer %s: a layer of %d bytes, more than the %d taken", ref, m.Layers[0].Size, maxReferrerBytes)
	case annotationBytes > maxReferrerAnnotationBytes:
		return nil, nil, fmt.Errorf("referrer %s: %d bytes of annotations, more than the %d taken", ref, annotationBytes, maxReferrerAnnotationBytes)
	}
	l, err := art.LayerByDigest(m.Layers[0].Digest)
	if err != nil {
		return nil, nil, c.describe("pull referrer", ref, ref.RegistryStr(), err)
	}
	rc, err := l.Compressed()
	if err != nil {
		return nil, nil, c.describe("pull referrer", ref, ref.RegistryStr(), err)
	}
	defer rc.Close()
	data, err := io.ReadAll(io.LimitReader(rc, m.Layers[0].Size+1))
	if err != nil {
		return nil, nil, c.describe("pull referrer", ref, ref.RegistryStr(), err)
	}
	if h, size, _ := v1.SHA256(bytes.NewReader(data)); h != m.Layers[0].Digest || size != m.Layers[0].Size {
		return nil, nil, fmt.Errorf("referrer %s: its layer is not %s (%d bytes)", ref, m.Layers[0].Digest, m.Layers[0].Size)
	}
	return data, m, nil
}

// Index reads the image index ref names, lazily: an image of it is fetched only when read,
// and its blobs only when written (a package repository's packages, as a resolution needs
// them).
func (c *Client) Index(ctx context.Context, ref name.Reference) (v1.ImageIndex, error) {
	idx, err := remote.Index(ref, c.remoteOptions(ctx)...)
	if err != nil {
		return nil, c.describe("read index", ref, ref.Context().RegistryStr(), err)
	}
	return idx, nil
}
