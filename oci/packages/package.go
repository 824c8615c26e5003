package packages

import (
	"context"
	"encoding/json"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
	"github.com/serpent-os/serpent-oci/oci/filekind"
	"github.com/serpent-os/serpent-oci/oci/image"
	"github.com/serpent-os/serpent-oci/oci/layer"
	"github.com/serpent-os/serpent-oci/oci/platform"
	"github.com/serpent-os/serpent-oci/oci/store"
)

// Annotations of a package image's manifest; the repository's index entries carry those
// resolution needs (all but sources and files).
const (
	AnnotationName     = "os.serpent.oci.package.name"
	AnnotationVersion  = "os.serpent.oci.package.version"
	AnnotationSources  = "os.serpent.oci.package.sources"  // JSON: []Source
	AnnotationDepends  = "os.serpent.oci.package.depends"  // JSON: declared dependencies, names or providers
	AnnotationProvides = "os.serpent.oci.package.provides" // JSON: providers read from the files
	AnnotationNeeds    = "os.serpent.oci.package.needs"    // JSON: providers the files need, beyond their own
	AnnotationFiles    = "os.serpent.oci.package.files"    // JSON: every path but directories, sorted
)

// Limits on what a package may hold: a package is read from registries, hostile input.
const (
	MaxFiles       = 200_000
	MaxAnnotations = 4 << 20 // bytes of annotations, a registry's usual manifest limit
)

// Source is one source a package was built from.
type Source struct {
	Name    string `json:"name"`
	SHA256  string `json:"sha256"`
	Origin  string `json:"origin"`
	Licence string `json:"licence,omitempty"`
}

// Meta is what a package's maker says of it; the rest is read from its files.
type Meta struct {
	Name     string
	Version  string
	Platform v1.Platform
	Sources  []Source
	Depends  []string // package names or providers, beyond what the ELF files say
}

// Contents is what a package's files say of it.
type Contents struct {
	Provides []string
	Needs    []string // what the files need that they do not provide themselves
	Files    []string // absolute paths, sorted; directories are not listed
}

// Package is a package image's description, as its annotations say.
type Package struct {
	Meta
	Contents
}

// String is NAME VERSION for PLATFORM.
func (p Package) String() string {
	return p.Name + " " + p.Version + " for " + platform.String(p.Platform)
}

var nameRE = regexp.MustCompile(`^[a-z0-9][a-z0-9+._-]{0,127}$`)

// CheckName checks a package name: lower case letters, digits and +._- (as Debian's), at
// most 128 characters, so that it can be a tag and a path element.
func CheckName(name string) error {
	if !nameRE.MatchString(name) {
		return fmt.Errorf("package name %q: want lower-case letters, digits and +._-, starting with a letter or digit, at most 128", name)
	}
	return nil
}

// Options controls Make.
type Options struct {
	Epoch time.Time // SOURCE_DATE_EPOCH of the layer (default: the layer writer's)
}

// Make makes the package image of the tree at dir (a component installed with DESTDIR=dir)
// and stores its layer in st: every entry must be under usr/. The image is not tagged.
func Make(ctx context.Context, st *store.Store, dir string, m Meta, o Options) (v1.Image, Package, error) {
	c, err := Scan(dir)
	if err != nil {
		return nil, Package{}, fmt.Errorf("package %s: %w", m.Name, err)
	}
	l, err := image.WriteLayer(ctx, st, dir, layer.WriteOptions{SourceDateEpoch: o.Epoch})
	if err != nil {
		return nil, Package{}, fmt.Errorf("package %s: %w", m.Name, err)
	}
	return Image(m, c, l, o)
}

// Image makes the package image of layer l, whose files Scan read as c. The layer must be
// written with o's epoch (its history and created time are the epoch's).
func Image(m Meta, c Contents, l v1.Layer, o Options) (v1.Image, Package, error) {
	if err := CheckName(m.Name); err != nil {
		return nil, Package{}, err
	}
	if m.Version == "" {
		return nil, Package{}, fmt.Errorf("package %s: no version", m.Name)
	}
	pkg := Package{Meta: m, Contents: c}
	pkg.Depends = slices.Clone(m.Depends)
	slices.Sort(pkg.Depends)
	pkg.Depends = slices.Compact(pkg.Depends)
	annotations, err := pkg.annotations()
	if err != nil {
		return nil, Package{}, fmt.Errorf("package %s: %w", m.Name, err)
	}
	wo := layer.WriteOptions{SourceDateEpoch: o.Epoch}
	img, err := image.Append(nil, m.Platform, l, image.AppendOptions{Layer: wo, CreatedBy: "serpent-oci package " + m.Name + " " + m.Version})
	if err != nil {
		return nil, Package{}, fmt.Errorf("package %s: %w", m.Name, err)
	}
	return mutate.Annotations(img, annotations).(v1.Image), pkg, nil
}

// Scan lists the files of a package's tree at dir, refusing what is outside usr/, and reads
// their ELF dynamic sections: what they provide, and what they need that the package does not
// provide itself.
func Scan(dir string) (Contents, error) {
	var pkg Contents
	provides, needs := map[string]bool{}, map[string]string{} // need -> the first file that has it
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, err := filepath.Rel(dir, p)
		if err != nil || rel == "." {
			return err
		}
		rel = filepath.ToSlash(rel)
		if rel != "usr" && !strings.HasPrefix(rel, "usr/") {
			return fmt.Errorf("/%s (a %s) is outside /usr: a package holds /usr only", rel, filekind.Of(d.Type()))
		}
		if d.IsDir() {
			return nil
		}
		if len(pkg.Files) == MaxFiles {
			return fmt.Errorf("more than %d files", MaxFiles)
		}
		abs := "/" + rel
		pkg.Files = append(pkg.Files, abs)
		if strings.HasPrefix(abs, "/usr/bin/") || strings.HasPrefix(abs, "/usr/sbin/") {
			provides[binaryOf(filepath.Base(abs))] = true
		}
		if d := filepath.Dir(abs); (d == "/usr/lib" || d == "/usr/lib64") && strings.HasPrefix(filepath.Base(abs), "ld-") && strings.Contains(abs, ".so") {
			provides[interpreterOf(abs)] = true // a dynamic loader, file or symlink
		}
		if !d.Type().IsRegular() {
			return nil
		}
		info, ok, err := elfOf(p)
		if err != nil {
			return fmt.Errorf("%s: %w", abs, err)
		}
		if !ok {
			return nil
		}
		switch d := filepath.Dir(abs); {
		case info.soname != "":
			provides[sonameOf(info.soname, info.arch)] = true
		case info.shared && info.interp == "" && (d == "/usr/lib" || d == "/usr/lib64"):
			// A library without DT_SONAME (musl's libc.so) is linked by its file name: a
			// program's DT_NEEDED names that (as abuild's scanelf rule has it).
			provides[sonameOf(filepath.Base(abs), info.arch)] = true
		}
		for _, n := range info.needed {
			if _, seen := needs[sonameOf(n, info.arch)]; !seen {
				needs[sonameOf(n, info.arch)] = abs
			}
		}
		if info.interp != "" {
			if _, seen := needs[interpreterOf(info.interp)]; !seen {
				needs[interpreterOf(info.interp)] = abs
			}
		}
		return nil
	})
	if err != nil {
		return Contents{}, err
	}
	slices.Sort(pkg.Files)
	for p := range provides {
		pkg.Provides = append(pkg.Provides, p)
	}
	slices.Sort(pkg.Provides)
	for n := range needs {
		if !provides[n] {
			pkg.Needs = append(pkg.Needs, n)
		}
	}
	slices.Sort(pkg.Needs)
	return pkg, nil
}

func elfOf(p string) (elfInfo, bool, error) {
	f, err := os.Open(p)
	if err != nil {
		return elfInfo{}, false, err
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return elfInfo{}, false, err
	}
	return readELF(f, fi.Size())
}

// annotations are the package's manifest annotations.
func (p Package) annotations() (map[string]string, error) {
	a := map[string]string{
		AnnotationName:            p.Name,
		AnnotationVersion:         p.Version,
		ocispec.AnnotationTitle:   p.Name,
		ocispec.AnnotationVersion: p.Version,
	}
	for k, v := range map[string]any{
		AnnotationSources: p.Sources, AnnotationDepends: p.Depends, AnnotationProvides: p.Provides,
		AnnotationNeeds: p.Needs, AnnotationFiles: p.Files,
	} {
		b, err := json.Marshal(orEmpty(v))
		if err != nil {
			return nil, err
		}
		a[k] = string(b)
	}
	n := 0
	for k, v := range a {
		n += len(k) + len(v)
	}
	if n > MaxAnnotations {
		return nil, fmt.Errorf("its annotations are %d bytes, more than a registry takes (%d): too many files", n, MaxAnnotations)
	}
	return a, nil
}

// orEmpty makes a nil slice an empty one, so that JSON says [] and not null.
func orEmpty(v any) any {
	switch s := v.(type) {
	case []string:
		if s == nil {
			return []string{}
		}
	case []Source:
		if s == nil {
			return []Source{}
		}
	}
	return v
}

// Read is the package an image is, from its manifest's annotations and config.
func Read(img v1.Image) (Package, error) {
	m, err := img.Manifest()
	if err != nil {
		return Package{}, err
	}
	cf, err := img.ConfigFile()
	if err != nil {
		return Package{}, err
	}
	p, err := fromAnnotations(m.Annotations, true)
	if err != nil {
		return Package{}, err
	}
	if pl := cf.Platform(); pl != nil {
		p.Platform = *pl
	}
	return p, nil
}
