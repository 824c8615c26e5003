package image

import (
	"context"
	"fmt"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/serpent-os/serpent-oci/oci/layer"
)

// Unpack applies every layer of img, in order, to the directory dir (created if needed), with
// whiteouts applied. Nothing lands outside dir. On error dir is left half-written: unpack into
// a fresh directory and remove it on failure.
func Unpack(ctx context.Context, img v1.Image, dir string) error {
	layers, err := img.Layers()
	if err != nil {
		return fmt.Errorf("unpack: %w", err)
	}
	for i, l := range layers {
		if err := unpackLayer(ctx, l, dir); err != nil {
			return fmt.Errorf("unpack layer %d: %w", i, err)
		}
	}
	return nil
}

func unpackLayer(ctx context.Context, l v1.Layer, dir string) error {
	d, err := l.Digest()
	if err != nil {
		return err
	}
	blob, err := l.Compressed()
	if err != nil {
		return fmt.Errorf("%s: %w", d, err)
	}
	rc, err := layer.Decompress(blob)
	if err != nil {
		return fmt.Errorf("%s: %w", d, err)
	}
	defer rc.Close()
	if err := layer.Extract(ctx, dir, rc, layer.Dir); err != nil {
		return fmt.Errorf("%s: %w", d, err)
	}
	return nil
}
