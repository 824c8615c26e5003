package image

import (
	"context"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/serpent-os/serpent-oci/oci/layer"
	"github.com/serpent-os/serpent-oci/oci/store"
)

// AppendOptions says how a layer is written and recorded in the image it is appended to.
type AppendOptions struct {
	// Layer says how the tree is written; its defaults are filled (layer.WriteOptions.Filled)
	// and its epoch is every time the image records.
	Layer     layer.WriteOptions
	CreatedBy string // the history entry
	Comment   string // the history entry's comment
}

// AppendDir writes the tree at root into st as one layer (WriteLayer: hold st until the image
// is tagged) and appends it as Append does.
func AppendDir(ctx context.Context, st *store.Store, base v1.Image, p v1.Platform, root string, opts AppendOptions) (v1.Image, v1.Layer, error) {
	l, err := WriteLayer(ctx, st, root, opts.Layer)
	if err != nil {
		return nil, nil, err
	}
	img, err := Append(base, p, l, opts)
	if err != nil {
		return nil, nil, err
	}
	return img, l, nil
}

// Append appends l to base, or to an empty image for platform p when base is nil, and is the
// one place an image made here gets its times: the history entry and the config's created
// time are the layer's filled epoch, the instant its files' mtimes are clamped to, so an
// import, a run's capture and a spin's step agree to the second.
func Append(base v1.Image, p v1.Platform, l v1.Layer, opts AppendOptions) (v1.Image, error) {
	opts.Layer = opts.Layer.Filled()
	epoch := opts.Layer.SourceDateEpoch
	if base == nil {
		var err error
		if base, err = Scratch(p, epoch); err != nil {
			return nil, err
		}
	}
	img, err := mutate.Append(base, mutate.Addendum{
		Layer:     l,
		MediaType: opts.Layer.Compression.MediaType(),
		History: v1.History{
			Created:   v1.Time{Time: epoch},
			CreatedBy: opts.CreatedBy,
			Comment:   opts.Comment,
		},
	})
	if err != nil {
		return nil, err
	}
	cfg, err := img.ConfigFile()
	if err != nil {
		return nil, err
	}
	cfg = cfg.DeepCopy()
	cfg.Created = v1.Time{Time: epoch}
	return mutate.ConfigFile(img, cfg)
}
