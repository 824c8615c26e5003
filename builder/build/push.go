package build

import (
	"context"
	"fmt"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/serpent-os/serpent-oci/oci/registry"
)

// Push pushes the images a build made of stage target, one per platform, to ref as one
// multi-platform index whose entries carry each image's platform and nothing else, then each
// image's SBOM as a referrer of it (never as an index entry). Layers already in a cache
// repository of the same registry are mounted from there.
func Push(ctx context.Context, opts Options, rep *Report, target string, ref name.Reference) (registry.Pushed, error) {
	var names []string
	var descs []v1.Descriptor
	for _, r := range rep.Steps {
		if r.Step.Name() == target {
			names, descs = append(names, r.Step.Tag.String()), append(descs, r.Descriptor)
		}
	}
	if len(descs) == 0 {
		return registry.Pushed{}, fmt.Errorf("push %s: the build made no image of %s", ref, target)
	}
	var mounts []name.Repository
	if opts.CacheTo != nil {
		mounts = append(mounts, opts.CacheTo.Repo)
	}
	for _, c := range opts.CacheFrom {
		mounts = append(mounts, c.Repo)
	}
	return opts.Registry.PushStored(ctx, opts.Store, descs, names, ref, registry.PushOptions{MountFrom: mounts})
}
