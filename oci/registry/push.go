package registry

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"strings"
	"sync/atomic"

	"github.com/containerd/log"
	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/partial"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/types"
	"github.com/serpent-os/serpent-oci/oci/image"
	"github.com/serpent-os/serpent-oci/oci/progress"
	"github.com/serpent-os/serpent-oci/oci/store"
)

// PushOptions tunes a push.
type PushOptions struct {
	// MountFrom names repositories that may already hold the layers: on the same registry
	// they are mounted from there rather than uploaded, where the registry allows it (the
	// first repository on the pushed-to registry is asked; a refusal falls back to upload).
	MountFrom []name.Repository
	// Store, when set, is where the pushed blobs are: a layer its distribution sources say a
	// repository of the pushed-to registry holds is mounted from there (before MountFrom),
	// and once pushed, the layers are recorded as held by ref's repository too.
	Store *store.Store
}

// Pushed is what a push did.
type Pushed struct {
	Descriptor v1.Descriptor // of the pushed manifest or index
	// Uploaded is how many blob bytes went over the wire: layers and configs the registry
	// already had (or mounted) cost nothing.
	Uploaded int64
}

// Push uploads an image or an image index to ref: blobs first (those the registry has are
// skipped), the manifest last, so an interrupted push leaves ref untouched.
func (c *Client) Push(ctx context.Context, t partial.Describable, ref name.Reference, o PushOptions) (Pushed, error) {
	reg := ref.Context().RegistryStr()
	from := mountFrom(ref.Context(), o)
	var taggable remote.Taggable
	switch v := t.(type) {
	case v1.Image:
		taggable = &mountableImage{Image: v, from: from}
	case v1.ImageIndex:
		taggable = &mountableIndex{inner: v, from: from}
	default:
		return Pushed{}, fmt.Errorf("push %s: %T is neither an image nor an index", ref, t)
	}
	var uploaded atomic.Int64
	opts := append(c.remoteOptions(ctx), remote.WithTransport(&uploadCounter{inner: c.transport, n: &uploaded}))
	updates, wait := c.watch("pushing " + ref.String())
	if updates != nil {
		opts = append(opts, remote.WithProgress(updates))
	}
	err := remote.Push(ref, taggable, opts...)
	wait()
	if err != nil {
		return Pushed{Uploaded: uploaded.Load()}, c.describe("push", ref, reg, err)
	}
	d, err := partial.Descriptor(t)
	if err != nil {
		return Pushed{}, fmt.Errorf("push %s: %w", ref, err)
	}
	if o.Store != nil {
		recordSources(ctx, o.Store, ref.Context(), t)
	}
	return Pushed{Descriptor: *d, Uploaded: uploaded.Load()}, nil
}

// mountFrom says where on dst's registry each layer may be mounted from: a repository the
// store's distribution sources name for it, else the first of o.MountFrom there; never dst
// itself (a blob already there is skipped anyway).
func mountFrom(dst name.Repository, o PushOptions) func(v1.Hash) name.Reference {
	other := func(r name.Repository) bool {
		return r.RegistryStr() == dst.RegistryStr() && r.RepositoryStr() != dst.RepositoryStr()
	}
	var fallback name.Reference
	for _, r := range o.MountFrom {
		if other(r) {
			fallback = mountSource(r)
			break
		}
	}
	return func(h v1.Hash) name.Reference {
		if o.Store != nil {
			for _, s := range o.Store.DistributionSources(h) {
				if r, err := name.NewRepository(s, name.Insecure); err == nil && other(r) {
					return mountSource(r)
				}
			}
		}
		return fallback
	}
}

// recordSources records in st that repo holds the layers of t (an image, or an index of
// images), for later pushes to mount them. A failure costs a later mount, not this push.
func recordSources(ctx context.Context, st *store.Store, repo name.Repository, t partial.Describable) {
	layers, err := layerDigests(t)
	if err == nil {
		err = st.AddDistributionSource(repo, layers...)
	}
	if err != nil {
		log.G(ctx).WithError(err).WithField("repository", repo.Name()).Warn("could not record where the layers are: a later push uploads them")
	}
}

// layerDigests lists the layers of an image, or of each image of an index (and of the indexes
// in it).
func layerDigests(t partial.Describable) ([]v1.Hash, error) {
	switch v := t.(type) {
	case v1.Image:
		m, err := v.Manifest()
		if err != nil {
			return nil, err
		}
		out := make([]v1.Hash, len(m.Layers))
		for i, l := range m.Layers {
			out[i] = l.Digest
		}
		return out, nil
	case v1.ImageIndex:
		m, err := v.IndexManifest()
		if err != nil {
			return nil, err
		}
		var out []v1.Hash
		for _, d := range m.Manifests {
			var child partial.Describable
			switch {
			case d.MediaType.IsImage():
				child, err = v.Image(d.Digest)
			case d.MediaType.IsIndex():
				child, err = v.ImageIndex(d.Digest)
			default:
				continue
			}
			if err != nil {
				return nil, err
			}
			ls, err := layerDigests(child)
			if err != nil {
				return nil, err
			}
			out = append(out, ls...)
		}
		return out, nil
	}
	return nil, fmt.Errorf("%T is neither an image nor an index", t)
}

// watch turns the remote package's progress updates into progress lines; wait returns once
// the updates channel is closed (the remote package closes it when the transfer ends).
func (c *Client) watch(label string) (chan<- v1.Update, func()) {
	m := progress.NewEvery(c.opts.Progress, label, 0, c.opts.ProgressInterval)
	if m == nil {
		return nil, func() {}
	}
	updates := make(chan v1.Update, 64)
	done := make(chan struct{})
	go func() {
		defer close(done)
		for u := range updates {
			m.SetTotal(u.Total)
			m.Set(u.Complete)
		}
		m.Done()
	}()
	return updates, func() { <-done }
}

// uploadCounter counts the request body bytes of blob uploads.
type uploadCounter struct {
	inner http.RoundTripper
	n     *atomic.Int64
}

func (u *uploadCounter) RoundTrip(req *http.Request) (*http.Response, error) {
	if req.Body != nil && (req.Method == http.MethodPatch || req.Method == http.MethodPut || req.Method == http.MethodPost) &&
		strings.Contains(req.URL.Path, "/blobs/uploads/") {
		req.Body = &countingBody{ReadCloser: req.Body, n: u.n}
	}
	return u.inner.RoundTrip(req)
}

type countingBody struct {
	io.ReadCloser
	n *atomic.Int64
}

func (b *countingBody) Read(p []byte) (int, error) {
	n, err := b.ReadCloser.Read(p)
	b.n.Add(int64(n))
	return n, err
}

// mountSource is a reference into repository r: a mount names only the repository, so the
// tag is never read.
func mountSource(r name.Repository) name.Reference { return r.Tag("latest") }

// mountableImage offers its layers for a cross-repository mount, each from the repository
// from names for it (nil: none, the layer is uploaded).
type mountableImage struct {
	v1.Image
	from func(v1.Hash) name.Reference
}

func (m *mountableImage) mountable(l v1.Layer) v1.Layer {
	h, err := l.Digest()
	if err != nil {
		return l
	}
	if ref := m.from(h); ref != nil {
		return &remote.MountableLayer{Layer: l, Reference: ref}
	}
	return l
}

func (m *mountableImage) Layers() ([]v1.Layer, error) {
	ls, err := m.Image.Layers()
	if err != nil {
		return nil, err
	}
	out := make([]v1.Layer, len(ls))
	for i, l := range ls {
		out[i] = m.mountable(l)
	}
	return out, nil
}

func (m *mountableImage) LayerByDigest(h v1.Hash) (v1.Layer, error) {
	l, err := m.Image.LayerByDigest(h)
	if err != nil {
		return nil, err
	}
	return m.mountable(l), nil
}

// mountableIndex offers the layers of its images for a cross-repository mount.
type mountableIndex struct {
	inner v1.ImageIndex
	from  func(v1.Hash) name.Reference
}

func (m *mountableIndex) MediaType() (types.MediaType, error)       { return m.inner.MediaType() }
func (m *mountableIndex) Digest() (v1.Hash, error)                  { return m.inner.Digest() }
func (m *mountableIndex) Size() (int64, error)                      { return m.inner.Size() }
func (m *mountableIndex) IndexManifest() (*v1.IndexManifest, error) { return m.inner.IndexManifest() }
func (m *mountableIndex) RawManifest() ([]byte, error)              { return m.inner.RawManifest() }

func (m *mountableIndex) Image(h v1.Hash) (v1.Image, error) {
	img, err := m.inner.Image(h)
	if err != nil {
		return nil, err
	}
	return &mountableImage{Image: img, from: m.from}, nil
}

func (m *mountableIndex) ImageIndex(h v1.Hash) (v1.ImageIndex, error) {
	idx, err := m.inner.ImageIndex(h)
	if err != nil {
		return nil, err
	}
	return &mountableIndex{inner: idx, from: m.from}, nil
}

// PushImages pushes images, one per platform, to ref as one multi-platform index whose
// entries carry each image's platform and nothing else. names label the images in errors.
func (c *Client) PushImages(ctx context.Context, imgs []v1.Image, names []string, ref name.Reference, o PushOptions) (Pushed, error) {
	if len(imgs) == 0 {
		return Pushed{}, fmt.Errorf("push %s: no image to push", ref)
	}
	idx, err := image.Index(imgs, names)
	if err != nil {
		return Pushed{}, fmt.Errorf("push %s: %w", ref, err)
	}
	return c.Push(ctx, idx, ref, o)
}

// PushReferrers pushes artifacts (manifests whose subject is an image already in repo, such
// as SBOMs) to repo by digest. A registry with the OCI referrers API lists them itself; for
// one without it (distribution 2.x), the referrers tag (sha256-HEX) is kept up to date, the
// OCI 1.1 fallback that clients know to read.
func (c *Client) PushReferrers(ctx context.Context, repo name.Repository, arts []v1.Image) error {
	for _, a := range arts {
		h, err := a.Digest()
		if err != nil {
			return err
		}
		ref := repo.Digest(h.String())
		opts := append(c.remoteOptions(ctx), remote.WithReferrersTagFallback(true))
		if err := remote.Write(ref, a, opts...); err != nil {
			return c.describe("push referrer", ref, repo.RegistryStr(), err)
		}
	}
	return nil
}

// Referrers lists the artifacts that refer to the manifest ref names (through the referrers
// API, or the fallback tag), of artifactType ("" for any).
func (c *Client) Referrers(ctx context.Context, ref name.Digest, artifactType string) ([]v1.Descriptor, error) {
	opts := c.remoteOptions(ctx)
	if artifactType != "" {
		opts = append(opts, remote.WithFilter("artifactType", artifactType))
	}
	idx, err := remote.Referrers(ref, opts...)
	if err != nil {
		return nil, c.describe("list referrers of", ref, ref.RegistryStr(), err)
	}
	m, err := idx.IndexManifest()
	if err != nil {
		return nil, err
	}
	var out []v1.Descriptor
	for _, d := range m.Manifests {
		if artifactType == "" || d.ArtifactType == artifactType {
			out = append(out, d)
		}
	}
	return out, nil
}

// PushStored is the one push of what a build or a spin made: the images of st that descs name
// (one per platform; names are their store tags) go to ref as one multi-platform index whose
// entries carry each image's platform and nothing else (PushImages), then what st holds about
// each image (its SBOM) as referrers of it, never as index entries.
func (c *Client) PushStored(ctx context.Context, st *store.Store, descs []v1.Descriptor, names []string, ref name.Reference, o PushOptions) (Pushed, error) {
	imgs := make([]v1.Image, len(descs))
	for i, d := range descs {
		img, err := st.ImageByDigest(d)
		if err != nil {
			return Pushed{}, fmt.Errorf("push %s: %s: %w", ref, names[i], err)
		}
		imgs[i] = img
	}
	if o.Store == nil {
		o.Store = st
	}
	p, err := c.PushImages(ctx, imgs, names, ref, o)
	if err != nil {
		return p, err
	}
	return p, c.PushStoredReferrers(ctx, st, descs, "", ref.Context())
}

// PushStoredReferrers pushes to repo the artifacts of artifactType that st holds about each of
// subjects (images already pushed there), as referrers of them.
func (c *Client) PushStoredReferrers(ctx context.Context, st *store.Store, subjects []v1.Descriptor, artifactType string, repo name.Repository) error {
	var arts []v1.Image
	for _, d := range subjects {
		refs, err := st.Referrers(d.Digest, artifactType)
		if err != nil {
			return err
		}
		for _, r := range refs {
			a, err := st.ReferrerImage(r)
			if err != nil {
				return err
			}
			arts = append(arts, a)
		}
	}
	return c.PushReferrers(ctx, repo, arts)
}
