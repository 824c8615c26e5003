package image

import (
	"fmt"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/types"
	"github.com/serpent-os/serpent-oci/oci/platform"
)

// Index joins images into one OCI image index, each entry carrying the platform from its
// image's config, in the order given. Every image needs a platform (an index entry without
// one, or with unknown/unknown, trips up clients that pick a platform), and no two may share
// one. names label the images in errors (the same length as imgs, or nil).
func Index(imgs []v1.Image, names []string) (v1.ImageIndex, error) {
	label := func(i int) string {
		if i < len(names) {
			return names[i]
		}
		return fmt.Sprintf("image %d", i+1)
	}
	idx := mutate.IndexMediaType(empty.Index, types.OCIImageIndex)
	seen := map[string]int{}
	var adds []mutate.IndexAddendum
	for i, img := range imgs {
		cfg, err := img.ConfigFile()
		if err != nil {
			return nil, fmt.Errorf("%s: read config: %w", label(i), err)
		}
		p := cfg.Platform()
		if p == nil || p.OS == "" || p.Architecture == "" || p.OS == "unknown" {
			return nil, fmt.Errorf("%s: its config names no platform, and an index entry needs one", label(i))
		}
		key := platform.String(*p)
		if j, dup := seen[key]; dup {
			return nil, fmt.Errorf("%s and %s are both for %s: an index holds one image per platform", label(j), label(i), key)
		}
		seen[key] = i
		mt, err := img.MediaType()
		if err != nil {
			return nil, fmt.Errorf("%s: %w", label(i), err)
		}
		adds = append(adds, mutate.IndexAddendum{Add: img, Descriptor: v1.Descriptor{MediaType: mt, Platform: p}})
	}
	if len(adds) == 0 {
		return nil, fmt.Errorf("an index needs at least one image")
	}
	return mutate.AppendManifests(idx, adds...), nil
}
