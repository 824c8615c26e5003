package image

import (
	"context"
	"fmt"

	"github.com/containerd/log"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/serpent-os/serpent-oci/oci/layer"
	"github.com/serpent-os/serpent-oci/oci/pausepoint"
	"github.com/serpent-os/serpent-oci/oci/store"
)

// WriteLayer writes the tree at root as a layer blob into st and returns it. The caller must
// hold st (store.Hold) until an image that uses the layer is tagged, or gc may remove it.
func WriteLayer(ctx context.Context, st *store.Store, root string, opts layer.WriteOptions) (v1.Layer, error) {
	opts = opts.Filled()
	w, err := st.NewBlob()
	if err != nil {
		return nil, err
	}
	defer w.Abort()
	res, err := layer.Write(ctx, root, pausepoint.Writer(ctx, pausepoint.MidBlob, w), opts)
	if err != nil {
		return nil, err
	}
	digest, size, err := w.Commit(nil)
	if err != nil {
		return nil, err
	}
	log.G(ctx).WithFields(log.Fields{"digest": digest.String(), "bytes": size, "uncompressed": res.Size, "files": res.Files}).Debug("layer stored")
	l := &storedLayer{st: st, digest: digest, diffID: res.DiffID, size: size, mediaType: opts.Compression.MediaType()}
	v, err := l.layer()
	if err != nil {
		return nil, fmt.Errorf("layer %s: %w", digest, err)
	}
	return v, nil
}
