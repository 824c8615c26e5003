package image

import (
	"fmt"
	"slices"
	"strings"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/partial"

	"github.com/serpent-os/serpent-oci/oci/platform"
	"github.com/serpent-os/serpent-oci/oci/store"
)

// Selection is what a store tag names for the platforms asked: the index tagged by the name
// itself, or images, one per platform (what push, export and tag act on).
type Selection struct {
	Index     v1.ImageIndex // the index tagged NAME (then no Images)
	IndexDesc v1.Descriptor
	Images    []v1.Image
	Descs     []v1.Descriptor // with Images
	Refs      []store.Ref     // with Images: their tags, platform included
}

// Select reads what ref names in st: with a platform, that platform's image; without one,
// the images of plats, each of which must be there; without either, the index tagged by the
// name itself when there is one, else every image the name has.
func Select(st *store.Store, ref store.Ref, plats []v1.Platform) (Selection, error) {
	var out Selection
	if ref.Platform != nil {
		img, d, err := st.Image(ref)
		if err != nil {
			return out, err
		}
		out.Images, out.Descs, out.Refs = []v1.Image{img}, []v1.Descriptor{d}, []store.Ref{ref.WithPlatform(d.Platform)}
		return out, nil
	}
	tags, err := st.Tags()
	if err != nil {
		return out, err
	}
	var names []string
	asked := platform.List(plats)
	for _, t := range tags {
		if t.Ref.Name != ref.Name {
			continue
		}
		tp := t.Platform()
		if tp == nil && t.Descriptor.MediaType.IsIndex() {
			if len(plats) == 0 {
				idx, err := st.Index(ref.Name)
				if err != nil {
					return out, err
				}
				return Selection{Index: idx, IndexDesc: t.Descriptor}, nil
			}
			continue
		}
		if tp == nil {
			return out, fmt.Errorf("%s: the image's config names no platform", t.Ref)
		}
		if len(plats) > 0 && !slices.ContainsFunc(plats, func(p v1.Platform) bool { return platform.Equal(p, *tp) }) {
			continue
		}
		img, err := st.ImageByDigest(t.Descriptor)
		if err != nil {
			return out, err
		}
		out.Images, out.Descs = append(out.Images, img), append(out.Descs, t.Descriptor)
		out.Refs = append(out.Refs, t.Ref.WithPlatform(tp))
		names = append(names, t.Ref.String())
	}
	switch {
	case len(out.Images) == 0:
		_, err := st.Resolve(ref)
		if err == nil {
			err = fmt.Errorf("%s has none of the platforms %s", ref, asked.String())
		}
		return out, err
	case len(out.Images) < len(plats):
		return out, fmt.Errorf("%s has %s only, not all of %s", ref, strings.Join(names, ", "), asked.String())
	}
	return out, nil
}

// AllImages are the images s names: the index's, or its own.
func (s Selection) AllImages(st *store.Store) ([]v1.Image, error) {
	if s.Index == nil {
		return s.Images, nil
	}
	m, err := s.Index.IndexManifest()
	if err != nil {
		return nil, err
	}
	var imgs []v1.Image
	for _, d := range m.Manifests {
		if d.MediaType.IsIndex() {
			return nil, fmt.Errorf("index %s holds another index (%s): take its images by platform", s.IndexDesc.Digest, d.Digest)
		}
		img, err := st.ImageByDigest(d)
		if err != nil {
			return nil, err
		}
		imgs = append(imgs, img)
	}
	return imgs, nil
}

// Pushable is what a push of s sends: one image as itself, the index, or a new index of the
// images (entries carrying each one's platform and tag).
func (s Selection) Pushable() (partial.Describable, error) {
	switch {
	case s.Index != nil:
		return s.Index, nil
	case len(s.Images) == 1:
		return s.Images[0], nil
	}
	names := make([]string, len(s.Refs))
	for i, r := range s.Refs {
		names[i] = r.String()
	}
	return Index(s.Images, names)
}

// Subjects are the image manifests a push of s sends, of which the store's referrers (SBOMs)
// go with them.
func (s Selection) Subjects() ([]v1.Descriptor, error) {
	if s.Index == nil {
		return s.Descs, nil
	}
	m, err := s.Index.IndexManifest()
	if err != nil {
		return nil, err
	}
	return m.Manifests, nil
}
