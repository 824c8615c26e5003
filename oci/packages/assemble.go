package packages

import (
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/serpent-os/serpent-oci/oci/image"
	"github.com/serpent-os/serpent-oci/oci/layer"
	"github.com/serpent-os/serpent-oci/oci/platform"
)

// Annotations of a root: on an assembled one, and on a stage's image whose /usr is the
// union of the packages it made.
const (
	AnnotationPackages = "os.serpent.oci.packages" // JSON: []Installed, in layer order
	// AnnotationUnowned lists (JSON) the files under /usr of a stage's root that none of
	// its packages holds: what is not in a package is named.
	AnnotationUnowned = "os.serpent.oci.packages.unowned"
)

// Installed is a package as a root records it.
type Installed struct {
	Name    string `json:"name"`
	Version string `json:"version"`
	Digest  string `json:"digest"` // of the package image
}

// Assemble makes a root for platform p of the package images pkgs, in the order given (as
// Resolve returns them): base's layers (nil: none; what a root holds outside /usr), then one
// layer per package, each the package's own layer blob, so that a root shares its layers
// with every other root of those packages and a registry stores each package once. Two
// packages holding one path, a package for another platform, and a package image that is not
// one layer are errors naming them. The same base and packages give the same image.
func Assemble(base v1.Image, pkgs []v1.Image, p v1.Platform, epoch time.Time) (v1.Image, error) {
	epoch = layer.Epoch(epoch)
	img := base
	if img == nil {
		var err error
		if img, err = image.Scratch(p, epoch); err != nil {
			return nil, err
		}
	}
	img = image.WithoutAnnotations(img)
	owner := map[string]string{}
	var conflicts []string
	var installed []Installed
	for i, pi := range pkgs {
		pkg, err := Read(pi)
		if err != nil {
			return nil, fmt.Errorf("assemble: package image %d: %w", i, err)
		}
		if !platform.Equal(pkg.Platform, p) {
			return nil, fmt.Errorf("assemble a root for %s: package %s is for %s", platform.String(p), pkg.Name, platform.String(pkg.Platform))
		}
		for _, f := range pkg.Files {
			if o, ok := owner[f]; ok {
				conflicts = append(conflicts, fmt.Sprintf("%s (packages %s and %s)", f, o, pkg.Name))
				continue
			}
			owner[f] = pkg.Name
		}
		layers, err := pi.Layers()
		if err != nil {
			return nil, fmt.Errorf("assemble: package %s: %w", pkg.Name, err)
		}
		if len(layers) != 1 {
			return nil, fmt.Errorf("assemble: package %s has %d layers, a package has one", pkg.Name, len(layers))
		}
		mt, err := layers[0].MediaType()
		if err != nil {
			return nil, err
		}
		img, err = mutate.Append(img, mutate.Addendum{Layer: layers[0], MediaType: mt, History: v1.History{
			Created: v1.Time{Time: epoch}, CreatedBy: "serpent-oci package " + pkg.Name + " " + pkg.Version,
		}})
		if err != nil {
			return nil, err
		}
		d, err := pi.Digest()
		if err != nil {
			return nil, err
		}
		installed = append(installed, Installed{Name: pkg.Name, Version: pkg.Version, Digest: d.String()})
	}
	if len(conflicts) > 0 {
		slices.Sort(conflicts)
		more := ""
		if len(conflicts) > 10 {
			more = fmt.Sprintf(" and %d more", len(conflicts)-10)
			conflicts = conflicts[:10]
		}
		return nil, fmt.Errorf("assemble a root for %s: paths held by two packages: %s%s", platform.String(p), strings.Join(conflicts, ", "), more)
	}
	cfg, err := img.ConfigFile()
	if err != nil {
		return nil, err
	}
	cfg = cfg.DeepCopy()
	cfg.Created = v1.Time{Time: epoch}
	if img, err = mutate.ConfigFile(img, cfg); err != nil {
		return nil, err
	}
	b, err := json.Marshal(installed)
	if err != nil {
		return nil, err
	}
	return mutate.Annotations(img, map[string]string{AnnotationPackages: string(b)}).(v1.Image), nil
}

// Recorded reads what a root's manifest records of its packages (AnnotationPackages, as
// Assemble, a stage that makes packages and a spin with packages steps write it). ok is false
// for an image that records none.
func Recorded(img v1.Image) (installed []Installed, ok bool, err error) {
	m, err := img.Manifest()
	if err != nil {
		return nil, false, err
	}
	rec, ok := m.Annotations[AnnotationPackages]
	if !ok {
		return nil, false, nil
	}
	if err := json.Unmarshal([]byte(rec), &installed); err != nil {
		return nil, true, fmt.Errorf("%s: %w", AnnotationPackages, err)
	}
	return installed, true, nil
}
