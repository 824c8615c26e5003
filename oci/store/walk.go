package store

import (
	"bytes"
	"encoding/json"
	"fmt"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/types"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
)

// reachVisitor is called for every descriptor reachable from index.json, with the chain of
// descriptions that led to it (for messages). It returns false to stop descending below d.
type reachVisitor func(path string, d v1.Descriptor) bool

// walkReachable visits every descriptor reachable from idx: tagged manifests and indexes, the
// images inside indexes, configs, layers and subjects. Blobs it cannot read or parse are
// reported through visit (which sees them) and not descended into; the error lists them.
func (s *Store) walkReachable(idx *v1.IndexManifest, visit reachVisitor) []error {
	var errs []error
	seen := map[v1.Hash]bool{}
	// walk visits d; top says whether d stands where a manifest or index must (a tag, or an
	// index's entry), and so has its media type inferred when it names none.
	var walk func(path string, d v1.Descriptor, top bool)
	walk = func(path string, d v1.Descriptor, top bool) {
		if !visit(path, d) {
			return
		}
		mt := d.MediaType
		if top {
			// Before the seen check: the same blob may also be reached as a config or layer.
			if mt = s.mediaTypeOf(d); !isIndex(mt) && !isManifest(mt) {
				errs = append(errs, fmt.Errorf("%s: descriptor of media type %q whose blob is neither an image manifest nor an index", path, d.MediaType))
				return
			}
		}
		if seen[d.Digest] {
			return
		}
		seen[d.Digest] = true
		switch {
		case isIndex(mt):
			b, err := s.readBlob(d.Digest)
			if err != nil {
				return // visit has seen it; fsck reports missing blobs itself
			}
			if !s.sameKind(path, d, mt, b, &errs) {
				return
			}
			m, err := v1.ParseIndexManifest(bytes.NewReader(b))
			if err != nil {
				errs = append(errs, fmt.Errorf("%s: index %s does not parse: %w", path, d.Digest, err))
				return
			}
			for _, c := range m.Manifests {
				walk(path+" → "+describe(c), c, true)
			}
		case isManifest(mt):
			b, err := s.readBlob(d.Digest)
			if err != nil {
				return
			}
			if !s.sameKind(path, d, mt, b, &errs) {
				return
			}
			var m v1.Manifest
			if err := json.Unmarshal(b, &m); err != nil {
				errs = append(errs, fmt.Errorf("%s: manifest %s does not parse: %w", path, d.Digest, err))
				return
			}
			walk(path+" → config "+m.Config.Digest.String(), m.Config, false)
			for i, l := range m.Layers {
				walk(fmt.Sprintf("%s → layer %d %s", path, i, l.Digest), l, false)
			}
			if m.Subject != nil {
				walk(path+" → subject "+m.Subject.Digest.String(), *m.Subject, true)
			}
		}
	}
	for _, d := range idx.Manifests {
		name := d.Annotations[ocispec.AnnotationRefName]
		if name == "" {
			name = "untagged " + d.Digest.String()
		}
		walk("tag "+name, d, true)
	}
	return errs
}

// sameKind says whether blob b is what its descriptor's media type mt says (an index, or an
// image manifest), and otherwise adds an error naming both. Parsed as what it is not, an index
// reads as an empty manifest and a manifest as an empty index: everything below it would look
// unreachable, and gc would delete what a tag reaches.
func (s *Store) sameKind(path string, d v1.Descriptor, mt types.MediaType, b []byte, errs *[]error) bool {
	k := kindOfBlob(b)
	if (isIndex(mt) && isIndex(k)) || (isManifest(mt) && isManifest(k)) {
		return true
	}
	is := "neither an image manifest nor an index"
	switch {
	case isIndex(k):
		is = "an index"
	case isManifest(k):
		is = "an image manifest"
	}
	*errs = append(*errs, fmt.Errorf("%s: descriptor of media type %q whose blob %s is %s", path, mt, d.Digest, is))
	return false
}

func describe(d v1.Descriptor) string {
	if d.Platform != nil {
		return fmt.Sprintf("%s %s", fmtPlatform(d.Platform), d.Digest)
	}
	return d.Digest.String()
}

func isManifest(mt types.MediaType) bool {
	return mt == types.OCIManifestSchema1 || mt == types.DockerManifestSchema2
}
