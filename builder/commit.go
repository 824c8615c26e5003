package builder

import (
	"context"
	"fmt"
	"maps"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
	"github.com/serpent-os/serpent-oci/oci/image"
	"github.com/serpent-os/serpent-oci/oci/store"
)

// Commit is what is made of a run's layer: the one place an image of a run gets its layers,
// history, annotations and tag, for stages, spin steps and run --commit alike (as
// containerd's snapshotter commits what a container changed in one place).
type Commit struct {
	// Platform is the platform of a new image on scratch (a CaptureDir run's); an image on a
	// base keeps the base's.
	Platform  v1.Platform
	CreatedBy string // the layer's history entry
	Comment   string // and its comment
	// Annotations are added to the manifest after the base's name and digest; the run's
	// Files (Output.Files) are added after them, and win.
	Annotations map[string]string
	// Tag is where the image is tagged. Without one, the image is returned untagged (its layer
	// stored), for the caller to build on.
	Tag *store.Ref
}

// RunAndCommit runs opts with e and, with a capture, commits the run's layer as c says,
// holding e's store from before the run until the image is tagged, so that gc never takes the
// layer in between. On failure or interruption nothing is tagged.
func RunAndCommit(ctx context.Context, e Executor, opts RunOptions, c Commit) (Result, error) {
	release, err := e.Store().Hold(ctx)
	if err != nil {
		return Result{}, err
	}
	defer release()
	res, err := e.Run(ctx, opts)
	if err != nil || opts.Output.Capture == CaptureNone {
		return res, err
	}
	start := time.Now()
	if res.Layer == nil {
		return res, fmt.Errorf("run %s: the executor captured no layer", opts.Name)
	}
	res.Image, res.Descriptor, err = commit(ctx, e.Store(), opts, c, res)
	res.Capture += time.Since(start)
	if err != nil {
		return res, fmt.Errorf("run %s: commit: %w", opts.Name, err)
	}
	return res, nil
}

// commit makes the image of res's layer on opts.Base (or, for CaptureDir, on scratch) and
// tags it when c says where.
func commit(ctx context.Context, st *store.Store, opts RunOptions, c Commit, res Result) (v1.Image, v1.Descriptor, error) {
	var base v1.Image // CaptureDir: a new image on scratch
	p := c.Platform
	if opts.Output.Capture == CaptureLayer {
		base, p = image.WithoutAnnotations(opts.Base), opts.Platform
	}
	img, err := image.Append(base, p, res.Layer, image.AppendOptions{Layer: opts.Output.Layer, CreatedBy: c.CreatedBy, Comment: c.Comment})
	if err != nil {
		return nil, v1.Descriptor{}, err
	}
	annotations, err := imageAnnotations(opts, c, res)
	if err != nil {
		return nil, v1.Descriptor{}, err
	}
	if len(annotations) > 0 {
		img = mutate.Annotations(img, annotations).(v1.Image)
	}
	if c.Tag == nil {
		return img, v1.Descriptor{}, nil
	}
	d, err := st.WriteImage(ctx, img, *c.Tag)
	return img, d, err
}

// imageAnnotations are the manifest annotations of a run's image: its base's name and digest,
// when the base is named, c.Annotations, and the files the run left for annotations.
func imageAnnotations(opts RunOptions, c Commit, res Result) (map[string]string, error) {
	a := map[string]string{}
	if opts.BaseName != "" && opts.Base != nil {
		d, err := opts.Base.Digest()
		if err != nil {
			return nil, err
		}
		a[ocispec.AnnotationBaseImageName] = opts.BaseName
		a[ocispec.AnnotationBaseImageDigest] = d.String()
	}
	maps.Copy(a, c.Annotations)
	maps.Copy(a, res.Files)
	return a, nil
}
