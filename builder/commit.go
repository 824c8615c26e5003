package builder

import (
	"archive/tar"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"maps"
	"path"
	"strings"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
	"github.com/serpent-os/serpent-oci/oci/image"
	"github.com/serpent-os/serpent-oci/oci/packages"
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
	// PackageMeta says what each package the run captured (Output.Packages) is, from the
	// NAME.json the run wrote: the caller knows the recipe's sources and the platform. A run
	// that captured packages with no PackageMeta to read them is an error.
	PackageMeta func(CapturedPackage) (packages.Meta, error)
	// PackageTag is where each package image is tagged, before the image itself (so that an
	// image tagged always has its packages); without it, they are returned untagged.
	PackageTag func(name string) store.Ref
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
	res.Image, res.Descriptor, err = commit(ctx, e.Store(), opts, c, &res)
	res.Capture += time.Since(start)
	if err != nil {
		return res, fmt.Errorf("run %s: commit: %w", opts.Name, err)
	}
	return res, nil
}

// commit makes the image of res's layer on opts.Base (or, for CaptureDir, on scratch) and
// tags it when c says where.
func commit(ctx context.Context, st *store.Store, opts RunOptions, c Commit, res *Result) (v1.Image, v1.Descriptor, error) {
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
	pkgs, installed, err := packageImages(opts, c, res)
	if err != nil {
		return nil, v1.Descriptor{}, err
	}
	if installed != "" {
		annotations[packages.AnnotationPackages] = installed
		rest, err := unowned(res.Layer, res.Packages)
		if err != nil {
			return nil, v1.Descriptor{}, err
		}
		annotations[packages.AnnotationUnowned] = rest
	}
	if len(annotations) > 0 {
		img = mutate.Annotations(img, annotations).(v1.Image)
	}
	res.PackageImages = pkgs
	if c.Tag == nil {
		return img, v1.Descriptor{}, nil
	}
	if c.PackageTag != nil {
		for i, p := range pkgs {
			if _, err := st.WriteImage(ctx, p, c.PackageTag(res.Packages[i].Name)); err != nil {
				return nil, v1.Descriptor{}, fmt.Errorf("package %s: %w", res.Packages[i].Name, err)
			}
		}
	}
	d, err := st.WriteImage(ctx, img, *c.Tag)
	return img, d, err
}

// packageImages makes the images of the packages res captured, and the root's record of
// them (packages.AnnotationPackages; "" without packages).
func packageImages(opts RunOptions, c Commit, res *Result) ([]v1.Image, string, error) {
	if len(res.Packages) == 0 {
		return nil, "", nil
	}
	if c.PackageMeta == nil {
		return nil, "", fmt.Errorf("the run left %d packages, and nothing says what they are", len(res.Packages))
	}
	var imgs []v1.Image
	var installed []packages.Installed
	for _, cp := range res.Packages {
		m, err := c.PackageMeta(cp)
		if err != nil {
			return nil, "", fmt.Errorf("package %s: %w", cp.Name, err)
		}
		m.Name = cp.Name
		img, _, err := packages.Image(m, cp.Contents, cp.Layer, packages.Options{Epoch: opts.Output.Layer.SourceDateEpoch})
		if err != nil {
			return nil, "", err
		}
		d, err := img.Digest()
		if err != nil {
			return nil, "", err
		}
		imgs = append(imgs, img)
		installed = append(installed, packages.Installed{Name: m.Name, Version: m.Version, Digest: d.String()})
	}
	b, err := json.Marshal(installed)
	return imgs, string(b), err
}

// imageAnnotations are the manifest annotations of a run's image: its base's name and digest,
// when the base is named, c.Annotations, and the files the run left for annotations.
func imageAnnotations(opts RunOptions, c Commit, res *Result) (map[string]string, error) {
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

// maxUnowned bounds the paths an image's record of what no package holds lists.
const maxUnowned = 1000

// unowned lists, as JSON, the files under /usr of the root layer l that none of pkgs holds:
// what is not in a package is named. Outside /usr nothing is a package's.
func unowned(l v1.Layer, pkgs []CapturedPackage) (string, error) {
	owned := map[string]bool{}
	for _, p := range pkgs {
		for _, f := range p.Contents.Files {
			owned[f] = true
		}
	}
	rc, err := l.Uncompressed()
	if err != nil {
		return "", err
	}
	defer rc.Close()
	rest := []string{}
	tr := tar.NewReader(rc)
	for {
		h, err := tr.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			return "", fmt.Errorf("read the root's layer: %w", err)
		}
		name := "/" + strings.TrimPrefix(path.Clean("/"+h.Name), "/")
		if h.Typeflag == tar.TypeDir || !strings.HasPrefix(name, "/usr/") || owned[name] {
			continue
		}
		if len(rest) == maxUnowned {
			rest = append(rest, "...")
			break
		}
		rest = append(rest, name)
	}
	b, err := json.Marshal(rest)
	return string(b), err
}
