package images

import (
	"context"
	"fmt"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/serpent-os/serpent-oci/oci/packages"
	"github.com/serpent-os/serpent-oci/oci/platform"
)

// installedIn is what a root records of its packages (AnnotationPackages, as assembled roots
// and spins with packages steps carry it): nothing for an image that is not such a root.
func installedIn(img v1.Image) []packages.Installed {
	installed, _, err := packages.Recorded(img)
	if err != nil {
		return nil
	}
	return installed
}

// stepPackages resolves a packages step for p: the package images to stack, in the order a
// root stacks them, leaving out those installed has by name. A name nothing provides, or a
// need nothing meets, is an error naming it.
func stepPackages(ctx context.Context, opts Options, st *Step, p v1.Platform, installed []packages.Installed) ([]v1.Image, []packages.Installed, error) {
	idx, err := packages.OpenRepository(ctx, opts.Store, opts.Registry, st.From)
	if err != nil {
		return nil, nil, err
	}
	entries, err := packages.Entries(idx)
	if err != nil {
		return nil, nil, fmt.Errorf("repository %s: %w", st.From, err)
	}
	resolved, err := packages.Resolve(entries, st.Names, p)
	if err != nil {
		return nil, nil, fmt.Errorf("repository %s for %s: %w", st.From, platform.String(p), err)
	}
	have := map[string]bool{}
	for _, i := range installed {
		have[i.Name] = true
	}
	var imgs []v1.Image
	var added []packages.Installed
	for _, e := range resolved {
		if have[e.Name] {
			continue
		}
		img, err := idx.Image(e.Descriptor.Digest)
		if err != nil {
			return nil, nil, fmt.Errorf("repository %s: package %s: %w", st.From, e.Name, err)
		}
		imgs = append(imgs, img)
		added = append(added, packages.Installed{Name: e.Name, Version: e.Version, Digest: e.Descriptor.Digest.String()})
	}
	return imgs, added, nil
}
