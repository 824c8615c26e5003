// Package baseimage finds the image a stage or a spin starts from, by the one rule both follow:
// the store first, then the registry for a reference that names one.
package baseimage

import (
	"context"
	"errors"
	"fmt"
	"strings"

	v1 "github.com/google/go-containerregistry/pkg/v1"

	"github.com/serpent-os/serpent-oci/oci/platform"
	"github.com/serpent-os/serpent-oci/oci/registry"
	"github.com/serpent-os/serpent-oci/oci/store"
)

// Found is a base image for one platform.
type Found struct {
	Image  v1.Image
	Digest v1.Hash
	// Name is how the base is known, for annotations and messages: the store tag with its
	// platform ("busybox@linux-arm64"), the pinned reference as given, or the registry
	// reference in full.
	Name   string
	Remote bool // found in a registry: its layers are read from there when needed
}

// Find resolves ref for platform p:
//   - NAME or NAME@PLATFORM, a store tag: the store's image of it for p;
//   - NAME@sha256:HEX where NAME is a store tag and one of its tags (an image's or an
//     index's) has that digest: that tag, pinned (it resolves in the store, never on a public
//     registry of that name);
//   - a reference that names a registry (a host before the first /), not in the store: the
//     registry's image for p, from an index or as it is; reg nil means no registry access.
//
// An image the store lacks is an error wrapping store.ErrNotFound.
func Find(ctx context.Context, st *store.Store, reg *registry.Client, ref string, p v1.Platform) (Found, error) {
	remote := registry.LooksRemote(ref)
	if name, hex, ok := strings.Cut(ref, "@sha256:"); ok && !remote {
		h, err := v1.NewHash("sha256:" + hex)
		if err != nil {
			return Found{}, fmt.Errorf("%s: %w", ref, err)
		}
		named, pointsAt := st.TaggedDigest(name, h)
		switch {
		case !named:
			return Found{}, fmt.Errorf("%s: no store tag %s: %w", ref, name, store.ErrNotFound)
		case !pointsAt:
			return Found{}, fmt.Errorf("%s: the store's %s is not %s (pin the digest images or inspect shows)", ref, name, h)
		}
		img, d, err := st.ImageForPlatform(h, p)
		if err != nil {
			return Found{}, fmt.Errorf("%s for %s: %w", ref, platform.String(p), err)
		}
		return Found{Image: img, Digest: d.Digest, Name: ref}, nil
	}
	if sref, err := store.ParseRef(ref); err == nil {
		sref = sref.WithPlatform(&p)
		img, d, err := st.Image(sref)
		if err == nil {
			return Found{Image: img, Digest: d.Digest, Name: sref.String()}, nil
		}
		if !errors.Is(err, store.ErrNotFound) || !remote {
			return Found{}, err
		}
	} else if !remote {
		return Found{}, err
	}
	if reg == nil {
		return Found{}, fmt.Errorf("%s: not in the store, and no registry access", ref)
	}
	rref, err := reg.ParseReference(ref)
	if err != nil {
		return Found{}, err
	}
	img, err := reg.Image(ctx, rref, p)
	if err != nil {
		return Found{}, err
	}
	h, err := img.Digest()
	if err != nil {
		return Found{}, fmt.Errorf("%s: %w", rref, err)
	}
	return Found{Image: img, Digest: h, Name: rref.String(), Remote: true}, nil
}

// ByDigest finds the image with manifest digest h that ref named once (a digest recorded by
// an earlier build): in the store, else, when ref names a registry, in its repository there.
func ByDigest(ctx context.Context, st *store.Store, reg *registry.Client, ref string, h v1.Hash, p v1.Platform) (v1.Image, error) {
	img, err := st.ImageByHash(h)
	if err == nil || reg == nil || !registry.LooksRemote(ref) {
		return img, err
	}
	rref, err := reg.ParseReference(ref)
	if err != nil {
		return nil, err
	}
	return reg.Image(ctx, rref.Context().Digest(h.String()), p)
}
