package packages

import (
	"encoding/json"
	"fmt"
	"slices"
	"strings"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/types"
	"github.com/serpent-os/serpent-oci/oci/platform"
)

// AnnotationRepository marks an image index as a package repository, with its format.
const AnnotationRepository = "os.serpent.oci.repository"

// RepositoryFormat is the repository format this package writes and reads.
const RepositoryFormat = "serpent-oci/packages/1"

// MaxEntries bounds a repository's packages.
const MaxEntries = 100_000

// Entry is a package of a repository: what resolution needs (no sources, no file list) and
// the descriptor of its image.
type Entry struct {
	Package
	Descriptor v1.Descriptor
}

// indexKeys are the annotations an index entry carries.
var indexKeys = []string{AnnotationName, AnnotationVersion, AnnotationDepends, AnnotationProvides, AnnotationNeeds}

// Index makes the repository of the package images imgs: an OCI image index, one entry per
// package and platform, sorted by name then platform, each carrying its platform and the
// annotations resolution reads. Two packages of one name for one platform are an error.
func Index(imgs []v1.Image) (v1.ImageIndex, error) {
	type item struct {
		img v1.Image
		pkg Package
	}
	items := make([]item, 0, len(imgs))
	for i, img := range imgs {
		p, err := Read(img)
		if err != nil {
			return nil, fmt.Errorf("repository: image %d: %w", i, err)
		}
		items = append(items, item{img, p})
	}
	slices.SortFunc(items, func(a, b item) int {
		if c := strings.Compare(a.pkg.Name, b.pkg.Name); c != 0 {
			return c
		}
		return strings.Compare(platform.String(a.pkg.Platform), platform.String(b.pkg.Platform))
	})
	idx := mutate.IndexMediaType(empty.Index, types.OCIImageIndex)
	var adds []mutate.IndexAddendum
	for i, it := range items {
		if i > 0 && it.pkg.Name == items[i-1].pkg.Name && platform.Equal(it.pkg.Platform, items[i-1].pkg.Platform) {
			return nil, fmt.Errorf("repository: two packages %s for %s (%s and %s)", it.pkg.Name, platform.String(it.pkg.Platform), items[i-1].pkg.Version, it.pkg.Version)
		}
		m, err := it.img.Manifest()
		if err != nil {
			return nil, err
		}
		a := map[string]string{}
		for _, k := range indexKeys {
			a[k] = m.Annotations[k]
		}
		p := it.pkg.Platform
		adds = append(adds, mutate.IndexAddendum{Add: it.img, Descriptor: v1.Descriptor{Platform: &p, Annotations: a}})
	}
	idx = mutate.AppendManifests(idx, adds...)
	return mutate.Annotations(idx, map[string]string{AnnotationRepository: RepositoryFormat}).(v1.ImageIndex), nil
}

// Entries reads a repository's entries, refusing an index that is not one, or whose entries
// are not packages.
func Entries(idx v1.ImageIndex) ([]Entry, error) {
	m, err := idx.IndexManifest()
	if err != nil {
		return nil, err
	}
	if f := m.Annotations[AnnotationRepository]; f != RepositoryFormat {
		return nil, fmt.Errorf("not a package repository: its index says %s=%q, want %q", AnnotationRepository, f, RepositoryFormat)
	}
	if len(m.Manifests) > MaxEntries {
		return nil, fmt.Errorf("repository: %d entries, more than %d", len(m.Manifests), MaxEntries)
	}
	out := make([]Entry, 0, len(m.Manifests))
	for i, d := range m.Manifests {
		p, err := fromAnnotations(d.Annotations, false)
		if err != nil {
			return nil, fmt.Errorf("repository entry %d (%s): %w", i, d.Digest, err)
		}
		if d.Platform == nil {
			return nil, fmt.Errorf("repository entry %d (%s, package %s): no platform", i, d.Digest, p.Name)
		}
		p.Platform = *d.Platform
		out = append(out, Entry{Package: p, Descriptor: d})
	}
	return out, nil
}

// fromAnnotations reads a package's description; files and sources too when full (a
// package's own manifest, not an index entry).
func fromAnnotations(a map[string]string, full bool) (Package, error) {
	p := Package{Meta: Meta{Name: a[AnnotationName], Version: a[AnnotationVersion]}}
	if err := CheckName(p.Name); err != nil {
		return Package{}, fmt.Errorf("%s: %w", AnnotationName, err)
	}
	if p.Version == "" {
		return Package{}, fmt.Errorf("package %s: no %s", p.Name, AnnotationVersion)
	}
	lists := map[string]*[]string{AnnotationDepends: &p.Depends, AnnotationProvides: &p.Provides, AnnotationNeeds: &p.Needs}
	if full {
		lists[AnnotationFiles] = &p.Files
		if err := decode(a, AnnotationSources, &p.Sources); err != nil {
			return Package{}, fmt.Errorf("package %s: %w", p.Name, err)
		}
	}
	for k, dst := range lists {
		if err := decode(a, k, dst); err != nil {
			return Package{}, fmt.Errorf("package %s: %w", p.Name, err)
		}
		if len(*dst) > MaxFiles {
			return Package{}, fmt.Errorf("package %s: %s: %d entries, more than %d", p.Name, k, len(*dst), MaxFiles)
		}
	}
	return p, nil
}

func decode(a map[string]string, key string, dst any) error {
	v, ok := a[key]
	if !ok {
		return fmt.Errorf("no %s", key)
	}
	if len(v) > MaxAnnotations {
		return fmt.Errorf("%s: %d bytes, more than %d", key, len(v), MaxAnnotations)
	}
	if err := json.Unmarshal([]byte(v), dst); err != nil {
		return fmt.Errorf("%s: %w", key, err)
	}
	return nil
}
