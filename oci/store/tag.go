package store

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"regexp"
	"sort"
	"strings"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/types"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
	"github.com/serpent-os/serpent-oci/oci/platform"
	"github.com/serpent-os/serpent-oci/oci/suggest"
)

// A tag in the store is a name and, for an image, a platform: one name ("stage3") can hold an
// image per platform. In index.json each is its own entry, named NAME@OS-ARCH[-VARIANT]
// ("stage3@linux-arm64") and carrying its platform, so that every entry has a unique ref.name
// and tools that address one manifest per tag (umoci, skopeo's oci: transport) can read each.
// An image index is tagged by its name alone.

// Ref names a tag: Name, and Platform for an image (nil for an index, or for "whichever
// platform the name has" when resolving).
type Ref struct {
	Name     string
	Platform *v1.Platform
}

var nameRE = regexp.MustCompile(`^[A-Za-z0-9]+([._:+-]+[A-Za-z0-9]+)*(/[A-Za-z0-9]+([._:+-]+[A-Za-z0-9]+)*)*$`)

// ParseRef reads a tag as a user writes it: NAME, or NAME@PLATFORM with the platform in any
// form platform.Parse accepts ("stage3@linux/arm64", "stage3@aarch64").
func ParseRef(s string) (Ref, error) {
	name, plat, hasPlat := strings.Cut(s, "@")
	if err := validName(name); err != nil {
		return Ref{}, err
	}
	r := Ref{Name: name}
	if hasPlat {
		p, err := platform.Parse(strings.ReplaceAll(plat, "-", "/"))
		if err != nil {
			return Ref{}, fmt.Errorf("tag %q: %w", s, err)
		}
		r.Platform = &p
	}
	return r, nil
}

func validName(name string) error {
	if !nameRE.MatchString(name) {
		return fmt.Errorf("invalid tag name %q: use letters, digits and . _ - : + between them, / between parts", name)
	}
	return nil
}

// WithPlatform returns r for platform p (r unchanged when p is nil).
func (r Ref) WithPlatform(p *v1.Platform) Ref {
	if p != nil {
		n := platform.Normalize(*p)
		r.Platform = &n
	}
	return r
}

// String is the tag as index.json holds it in its ref.name: NAME, or NAME@OS-ARCH[-VARIANT]
// for an image ("stage3@linux-arm64"). It is the one spelling serpent-oci prints, so that a
// printed tag pastes into skopeo (oci:STORE:stage3@linux-arm64) and umoci; ParseRef takes it
// and NAME@OS/ARCH alike.
func (r Ref) String() string { return r.refName() }

// refName is the ref.name annotation stored in index.json.
func (r Ref) refName() string {
	if r.Platform == nil {
		return r.Name
	}
	return r.Name + "@" + platform.Slug(*r.Platform)
}

// Tag is one entry of the store's index: a ref and the descriptor it points at.
type Tag struct {
	Ref        Ref
	Descriptor v1.Descriptor
}

func tagOf(d v1.Descriptor) (Tag, bool) {
	name := d.Annotations[ocispec.AnnotationRefName]
	if name == "" || d.Annotations[AnnotationSubject] != "" { // a referrer is never a tag
		return Tag{}, false
	}
	r := Ref{Name: name}
	if n, _, ok := strings.Cut(name, "@"); ok && d.Platform != nil {
		p := platform.Normalize(*d.Platform)
		r = Ref{Name: n, Platform: &p}
	}
	return Tag{Ref: r, Descriptor: d}, true
}

// Tags lists the store's tags, sorted by name then platform.
func (s *Store) Tags() ([]Tag, error) {
	idx, err := s.readIndex()
	if err != nil {
		return nil, err
	}
	var tags []Tag
	for _, d := range idx.Manifests {
		if d.Platform == nil && isManifest(d.MediaType) {
			// Written by another tool (skopeo, umoci and buildah leave the platform out): the
			// image's config says what it is for.
			d.Platform = s.configPlatform(d)
		}
		if t, ok := tagOf(d); ok {
			tags = append(tags, t)
		}
	}
	sort.SliceStable(tags, func(i, j int) bool { return tags[i].Ref.String() < tags[j].Ref.String() })
	return tags, nil
}

// SetTag points ref at d, replacing whatever ref pointed at. An image (a manifest) needs a
// platform, an index must have none. d's blob must already be in the store.
func (s *Store) SetTag(ctx context.Context, ref Ref, d v1.Descriptor) error {
	if err := validName(ref.Name); err != nil {
		return err
	}
	switch {
	case isIndex(d.MediaType) && ref.Platform != nil:
		return fmt.Errorf("tag %s: an image index holds several platforms; tag it by name alone", ref)
	case !isIndex(d.MediaType) && ref.Platform == nil:
		return fmt.Errorf("tag %s: an image needs a platform (NAME@os/arch)", ref)
	}
	if !s.HasBlob(d.Digest) {
		return fmt.Errorf("tag %s: %s: %w", ref, d.Digest, ErrNotFound)
	}
	ref = ref.WithPlatform(ref.Platform)
	d.Platform = ref.Platform
	d.Annotations = map[string]string{ocispec.AnnotationRefName: ref.refName()}
	return s.updateIndex(ctx, func(idx *v1.IndexManifest) (bool, error) {
		for i, m := range idx.Manifests {
			if m.Annotations[ocispec.AnnotationRefName] == ref.refName() {
				idx.Manifests[i] = d
				return true, nil
			}
		}
		idx.Manifests = append(idx.Manifests, d)
		return true, nil
	})
}

// Untag removes ref. Without a platform it removes the name for every platform. It returns the
// refs it removed, and ErrNotFound when there were none. Blobs stay until gc.
func (s *Store) Untag(ctx context.Context, ref Ref) ([]Ref, error) {
	var removed []Ref
	err := s.updateIndex(ctx, func(idx *v1.IndexManifest) (bool, error) {
		kept := idx.Manifests[:0]
		for _, d := range idx.Manifests {
			probe := d // matched with the platform its config has, written back as it was
			if probe.Platform == nil && isManifest(probe.MediaType) && ref.Platform != nil {
				probe.Platform = s.configPlatform(probe)
			}
			if t, ok := tagOf(probe); ok && matches(t, ref) {
				removed = append(removed, t.Ref)
				continue
			}
			kept = append(kept, d)
		}
		idx.Manifests = kept
		return len(removed) > 0, nil
	})
	if err != nil {
		return nil, err
	}
	if len(removed) == 0 {
		return nil, fmt.Errorf("untag %s: %w", ref, ErrNotFound)
	}
	return removed, nil
}

// matches reports whether t is a tag want names: by name, and by platform when want has one.
// An image tagged by its name alone matches the platform its config has.
func matches(t Tag, want Ref) bool {
	if t.Ref.Name != want.Name {
		return false
	}
	p := t.Platform()
	return want.Platform == nil || (p != nil && platform.Equal(*p, *want.Platform))
}

// Platform is the platform of the image t names: its tag's, else its descriptor's (nil for an
// index, or an image whose config says none).
func (t Tag) Platform() *v1.Platform {
	if t.Ref.Platform != nil {
		return t.Ref.Platform
	}
	if isIndex(t.Descriptor.MediaType) {
		return nil
	}
	return t.Descriptor.Platform
}

// configPlatform is the platform in the config of the image manifest d describes, or nil
// when it cannot be read or names no architecture.
func (s *Store) configPlatform(d v1.Descriptor) *v1.Platform {
	b, err := s.readSmallBlob(d.Digest, MaxManifestBytes)
	if err != nil {
		return nil
	}
	m, err := v1.ParseManifest(bytes.NewReader(b))
	if err != nil {
		return nil
	}
	c, err := s.readSmallBlob(m.Config.Digest, MaxConfigBytes)
	if err != nil {
		return nil
	}
	var cfg struct {
		OS           string `json:"os"`
		Architecture string `json:"architecture"`
		Variant      string `json:"variant"`
	}
	if json.Unmarshal(c, &cfg) != nil || cfg.OS == "" || cfg.Architecture == "" {
		return nil
	}
	p := platform.Normalize(v1.Platform{OS: cfg.OS, Architecture: cfg.Architecture, Variant: cfg.Variant})
	return &p
}

// Resolve finds the descriptor ref names. With a platform, it is that platform's image (also
// found inside an index tagged with the name). Without one, the name must be unambiguous: an
// index, or an image tagged for one platform only.
func (s *Store) Resolve(ref Ref) (v1.Descriptor, error) {
	tags, err := s.Tags()
	if err != nil {
		return v1.Descriptor{}, err
	}
	var found []Tag
	for _, t := range tags {
		if matches(t, ref) {
			found = append(found, t)
		}
	}
	if ref.Platform != nil {
		for _, t := range found {
			if t.Ref.Platform != nil {
				return t.Descriptor, nil
			}
		}
		if len(found) == 1 { // an image tagged by name alone, for this platform
			return found[0].Descriptor, nil
		}
		for _, t := range tags { // an index tagged by name alone
			if t.Ref.Name == ref.Name && t.Ref.Platform == nil && isIndex(t.Descriptor.MediaType) {
				if d, err := s.findInIndex(t.Descriptor, *ref.Platform); err == nil {
					return d, nil
				}
			}
		}
	}
	switch len(found) {
	case 0:
		return v1.Descriptor{}, s.notFound(ref, tags)
	case 1:
		return found[0].Descriptor, nil
	}
	var plats []string
	for _, t := range found {
		plats = append(plats, t.Ref.String())
	}
	return v1.Descriptor{}, fmt.Errorf("tag %s is %w: it exists as %s; name a platform (--platform or NAME@os/arch)", ref, ErrAmbiguous, strings.Join(plats, ", "))
}

func (s *Store) notFound(ref Ref, tags []Tag) error {
	var same []string
	for _, t := range tags {
		if t.Ref.Name == ref.Name {
			same = append(same, t.Ref.String())
		}
	}
	if len(same) > 0 {
		return fmt.Errorf("tag %s: %w (the store has %s)", ref, ErrNotFound, strings.Join(same, ", "))
	}
	// A mistyped name: the tags whose name (or whole spelling) is close to it.
	var names, near []string
	for _, t := range tags {
		names = append(names, t.Ref.Name)
	}
	for _, n := range suggest.Closest(ref.Name, names) {
		for _, t := range tags {
			if t.Ref.Name == n {
				near = append(near, t.Ref.String())
			}
		}
	}
	if len(near) > 0 {
		return fmt.Errorf("tag %s: %w in %s; did you mean %s?", ref, ErrNotFound, s.root, strings.Join(near, " or "))
	}
	return fmt.Errorf("tag %s: %w in %s", ref, ErrNotFound, s.root)
}

func (s *Store) findInIndex(d v1.Descriptor, p v1.Platform) (v1.Descriptor, error) {
	b, err := s.readBlob(d.Digest)
	if err != nil {
		return v1.Descriptor{}, err
	}
	idx, err := v1.ParseIndexManifest(strings.NewReader(string(b)))
	if err != nil {
		return v1.Descriptor{}, fmt.Errorf("parse index %s: %w", d.Digest, err)
	}
	for _, m := range idx.Manifests {
		if m.Platform != nil && !isIndex(m.MediaType) && platform.Equal(*m.Platform, p) {
			return m, nil
		}
	}
	return v1.Descriptor{}, fmt.Errorf("index %s has no image for %s: %w", d.Digest, platform.String(p), ErrNotFound)
}

func isIndex(mt types.MediaType) bool {
	return mt == types.OCIImageIndex || mt == types.DockerManifestList
}

func fmtPlatform(p *v1.Platform) string {
	if p == nil {
		return "none"
	}
	return platform.String(platform.Normalize(*p))
}
