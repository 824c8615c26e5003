package build

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
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
	for b := s.Vertex; b != nil; b = b.BaseVertex() {
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
		installed, pkgs, err := recordedPackages(ctx, st, t.Ref.String(), img, true)
		if errors.Is(err, errNoPackages) {
			continue // an image of the stage from before it made packages
		}
		if err != nil {
			return err
		}
		imgs = append(imgs, pkgs...)
		for _, in := range installed {
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

// packagesRoot is the base of a stage built on packages:STAGE: a root for p assembled from
// the packages the base stage's image img records, resolved (every one of them) and stacked
// on a skeleton at the build's epoch. The same packages give the same root, so the stage's
// key follows its packages' digests.
func packagesRoot(ctx context.Context, opts PlanOptions, base string, img v1.Image, p v1.Platform) (v1.Image, []v1.Image, error) {
	_, pkgs, err := recordedPackages(ctx, opts.Store, base, img, false)
	if err != nil {
		return nil, nil, err
	}
	entries := make([]packages.Entry, 0, len(pkgs))
	var names []string
	byDigest := map[v1.Hash]v1.Image{}
	for _, pi := range pkgs {
		pkg, err := packages.Read(pi)
		if err != nil {
			return nil, nil, fmt.Errorf("%s: %w", base, err)
		}
		d, err := pi.Digest()
		if err != nil {
			return nil, nil, err
		}
		byDigest[d] = pi
		entries = append(entries, packages.Entry{Package: pkg, Descriptor: v1.Descriptor{Digest: d}})
		names = append(names, pkg.Name)
	}
	order, err := packages.Resolve(entries, names, p)
	if err != nil {
		return nil, nil, fmt.Errorf("the packages of %s: %w", base, err)
	}
	imgs := make([]v1.Image, 0, len(order))
	for _, e := range order {
		imgs = append(imgs, byDigest[e.Descriptor.Digest])
	}
	root, err := packages.AssembleRoot(ctx, opts.Store, imgs, p, epochOf(opts))
	return root, imgs, err
}

// errNoPackages is an image that records no packages.
var errNoPackages = errors.New("records no packages")

// recordedPackages are the packages an image records (packages.AnnotationPackages) and their
// images, from the store: a stage's packages, or an assembled root's. With missingOK, one the
// store lacks is left out (a stage pulled from a cache comes without its packages), else it is
// an error that says so.
func recordedPackages(ctx context.Context, st *store.Store, name string, img v1.Image, missingOK bool) ([]packages.Installed, []v1.Image, error) {
	installed, ok, err := packages.Recorded(img)
	if err != nil {
		return nil, nil, fmt.Errorf("%s: %w", name, err)
	}
	if !ok {
		return nil, nil, fmt.Errorf("%s: %w (%s)", name, errNoPackages, packages.AnnotationPackages)
	}
	var found []packages.Installed
	var imgs []v1.Image
	for _, in := range installed {
		h, err := v1.NewHash(in.Digest)
		if err != nil {
			return nil, nil, fmt.Errorf("%s: package %s: %w", name, in.Name, err)
		}
		pi, err := st.ImageByHash(h)
		switch {
		case errors.Is(err, store.ErrNotFound) && missingOK:
			log.G(ctx).WithFields(log.Fields{"image": name, "package": in.Name}).Warn("a package is not in the store: left out")
			continue
		case errors.Is(err, store.ErrNotFound):
			return nil, nil, fmt.Errorf("%s: package %s (%s) is not in the store: a stage pulled from a cache comes without its packages; build it", name, in.Name, shortHash(h))
		case err != nil:
			return nil, nil, fmt.Errorf("%s: package %s: %w", name, in.Name, err)
		}
		found, imgs = append(found, in), append(imgs, pi)
	}
	return found, imgs, nil
}

func shortHash(h v1.Hash) string {
	if len(h.Hex) > 12 {
		return h.Algorithm + ":" + h.Hex[:12]
	}
	return h.String()
}

// carryPackages is what a stage built on packages finds of its root's packages imgs: each
// described in dir/packages/NAME.json, in the form a stage writes one (version, sources,
// depends), and dir/packages/NAME.files, its files one per line; and the mounts that bind
// each package's tree read-only at /packages/NAME. With them a script carries a package it
// does not rebuild under its own name.
func carryPackages(imgs []v1.Image, dir string) ([]builder.Mount, error) {
	if err := os.MkdirAll(filepath.Join(dir, "packages"), 0o755); err != nil {
		return nil, err
	}
	mounts := make([]builder.Mount, 0, len(imgs))
	for _, pi := range imgs {
		p, err := packages.Read(pi)
		if err != nil {
			return nil, err
		}
		f := packageFile{Version: p.Version, Depends: p.Depends, Sources: []string{}}
		if f.Depends == nil {
			f.Depends = []string{}
		}
		for _, s := range p.Sources {
			f.Sources = append(f.Sources, s.Name)
		}
		b, err := json.Marshal(f)
		if err != nil {
			return nil, err
		}
		base := filepath.Join(dir, "packages", p.Name)
		if err := os.WriteFile(base+".json", append(b, '\n'), 0o644); err != nil {
			return nil, err
		}
		files := strings.Join(p.Files, "\n")
		if files != "" {
			files += "\n"
		}
		if err := os.WriteFile(base+".files", []byte(files), 0o644); err != nil {
			return nil, err
		}
		mounts = append(mounts, builder.Mount{Destination: "/packages/" + p.Name, Image: pi})
	}
	return mounts, nil
}
