package build

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"

	"github.com/containerd/log"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/serpent-os/serpent-oci/builder"
	"github.com/serpent-os/serpent-oci/oci/packages"
	"github.com/serpent-os/serpent-oci/oci/store"
	"github.com/serpent-os/serpent-oci/stages"
)

// PackageTag is where a stage's package NAME is tagged: STAGE-TAG/pkg/NAME, for the stage
// image's platform ("stage3/pkg/make@linux-arm64").
func PackageTag(stage store.Ref, name string) store.Ref {
	return store.Ref{Name: stage.Name + "/pkg/" + name, Platform: stage.Platform}
}

// RepositoryName is the store tag of a stage's package repository: the index of the packages
// of every platform's image of it (STAGE-TAG/packages).
func RepositoryName(stage string) string { return stage + "/packages" }

// packageFile is the NAME.json a stage writes beside each package's tree.
type packageFile struct {
	Version string   `json:"version"`
	Sources []string `json:"sources"` // names of the recipe's sources
	Depends []string `json:"depends"`
}

// packageMeta reads what a stage's run says of a package it left: the version must be
// given, and each source must be one of the recipe's or, nearest first, of the recipes of the
// stages it is built on (a component carried from an earlier stage was built from that
// stage's source); its sha256, origin and licence are that recipe's.
func packageMeta(s *Step) func(builder.CapturedPackage) (packages.Meta, error) {
	r := s.Recipe
	var chain []*stages.Recipe
	for b := s; b != nil; b = b.baseStep {
		chain = append(chain, b.Recipe)
	}
	return func(cp builder.CapturedPackage) (packages.Meta, error) {
		where := r.Output.Packages + "/" + cp.Name + ".json"
		var f packageFile
		dec := json.NewDecoder(bytes.NewReader(cp.Meta))
		dec.DisallowUnknownFields()
		if err := dec.Decode(&f); err != nil {
			return packages.Meta{}, fmt.Errorf("%s: %w (want {\"version\": V, \"sources\": [NAME...], \"depends\": [...]})", where, err)
		}
		if f.Version == "" {
			return packages.Meta{}, fmt.Errorf("%s: no version", where)
		}
		m := packages.Meta{Name: cp.Name, Version: f.Version, Platform: s.Output, Depends: f.Depends}
		for _, name := range f.Sources {
			src, ok := sourceNamed(chain, name)
			if !ok {
				var known []string
				for _, r := range chain {
					for _, s := range r.Sources {
						known = append(known, s.Name)
					}
				}
				return packages.Meta{}, fmt.Errorf("%s: source %q is not one of recipe %s's or its bases' (%s)", where, name, r.Name, strings.Join(known, ", "))
			}
			m.Sources = append(m.Sources, packages.Source{Name: src.Name, SHA256: src.SHA256, Origin: src.Origin(), Licence: src.License})
		}
		return m, nil
	}
}

// sourceNamed is the first source called name of the recipes, in order.
func sourceNamed(recipes []*stages.Recipe, name string) (stages.Source, bool) {
	for _, r := range recipes {
		if i := slices.IndexFunc(r.Sources, func(s stages.Source) bool { return s.Name == name }); i >= 0 {
			return r.Sources[i], true
		}
	}
	return stages.Source{}, false
}

// writeRepository makes the repository of stage's packages from the store: for every
// platform's image of it, the packages that image records (packages.AnnotationPackages),
// and tags it RepositoryName(stage). Package tags of the stage that no image records any
// more (a component dropped from the recipe) are removed. A stage without packages has no
// repository.
func writeRepository(ctx context.Context, st *store.Store, stage string) error {
	tags, err := st.Tags()
	if err != nil {
		return err
	}
	var imgs []v1.Image
	current := map[string]bool{} // package tags the stage's images record
	for _, t := range tags {
		if t.Ref.Name != stage || t.Ref.Platform == nil {
			continue
		}
		img, err := st.ImageByDigest(t.Descriptor)
		if err != nil {
			return err
		}
		m, err := img.Manifest()
		if err != nil {
			return err
		}
		rec, ok := m.Annotations[packages.AnnotationPackages]
		if !ok {
			continue
		}
		var installed []packages.Installed
		if err := json.Unmarshal([]byte(rec), &installed); err != nil {
			return fmt.Errorf("%s: %s: %w", t.Ref, packages.AnnotationPackages, err)
		}
		for _, in := range installed {
			h, err := v1.NewHash(in.Digest)
			if err != nil {
				return fmt.Errorf("%s: package %s: %w", t.Ref, in.Name, err)
			}
			p, err := st.ImageByHash(h)
			if errors.Is(err, store.ErrNotFound) {
				// A stage pulled from a cache comes without its packages (for now).
				log.G(ctx).WithFields(log.Fields{"stage": t.Ref.String(), "package": in.Name}).Warn("the stage's package is not in the store: left out of its repository")
				continue
			}
			if err != nil {
				return fmt.Errorf("%s: package %s: %w", t.Ref, in.Name, err)
			}
			imgs = append(imgs, p)
			current[PackageTag(t.Ref, in.Name).String()] = true
		}
	}
	prefix := stage + "/pkg/"
	for _, t := range tags {
		if strings.HasPrefix(t.Ref.Name, prefix) && !current[t.Ref.String()] {
			if _, err := st.Untag(ctx, t.Ref); err != nil && !errors.Is(err, store.ErrNotFound) {
				return err
			}
		}
	}
	if len(imgs) == 0 {
		return nil
	}
	idx, err := packages.Index(imgs)
	if err != nil {
		return err
	}
	_, err = st.WriteIndex(ctx, idx, RepositoryName(stage))
	return err
}
