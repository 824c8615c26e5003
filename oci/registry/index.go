package registry

import (
	"context"
	"fmt"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/serpent-os/serpent-oci/oci/image"
)

// JoinIndex makes one multi-platform index of the images srcs name and pushes it to dst. Each
// source is an image, or an index whose platform images are all taken (entries without a
// platform, such as attestations, are left out). Sources in other repositories of dst's
// registry are mounted, not downloaded and uploaded again. The platforms must not repeat.
func (c *Client) JoinIndex(ctx context.Context, dst name.Reference, srcs []name.Reference) (Pushed, error) {
	var imgs []v1.Image
	var names []string
	for _, src := range srcs {
		reg := src.Context().RegistryStr()
		desc, err := remote.Get(src, c.remoteOptions(ctx)...)
		if err != nil {
			return Pushed{}, c.describe("read", src, reg, err)
		}
		if !desc.MediaType.IsIndex() {
			img, err := desc.Image()
			if err != nil {
				return Pushed{}, c.describe("read", src, reg, err)
			}
			imgs, names = append(imgs, img), append(names, src.String())
			continue
		}
		idx, err := desc.ImageIndex()
		if err != nil {
			return Pushed{}, c.describe("read", src, reg, err)
		}
		im, err := idx.IndexManifest()
		if err != nil {
			return Pushed{}, c.describe("read", src, reg, err)
		}
		for _, m := range im.Manifests {
			if !m.MediaType.IsImage() || m.Platform == nil || m.Platform.OS == "unknown" {
				continue
			}
			img, err := idx.Image(m.Digest)
			if err != nil {
				return Pushed{}, c.describe("read", src, reg, err)
			}
			imgs, names = append(imgs, img), append(names, src.String()+"@"+m.Digest.String())
		}
	}
	idx, err := image.Index(imgs, names)
	if err != nil {
		return Pushed{}, fmt.Errorf("index %s: %w", dst, err)
	}
	return c.Push(ctx, idx, dst, PushOptions{})
}
