// Package stages defines stage recipes: what a stage of the bootstrap is built from, where it
// runs, what it produces and with which sources and script. A recipe set is a directory (or an
// embedded file system) of NAME.yaml recipes, their scripts, and targets.yaml, the
// per-platform table of target variables (triple, CPU baseline flags) every stage reads.
//
// Loading is strict: an unknown field, a missing checksum, a `from` that names no stage, a
// cycle, a missing script or an unsupported platform is an error naming the file, the line
// and the field. The recipes serpent-oci ships are embedded (Embedded); --stages DIR loads a
// user's own set.
package stages

import (
	"fmt"
	"strings"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"go.yaml.in/yaml/v3"
)

// RunsOn says where a stage's script runs.
type RunsOn string

const (
	// OnHost runs on the build machine's platform, in a host image (stage1, the cross-build of
	// stage2).
	OnHost RunsOn = "host"
	// OnTarget runs on the target platform, natively or under qemu (stage2.5, stage3).
	OnTarget RunsOn = "target"
)

// OutputKind says what a stage produces.
type OutputKind string

const (
	// Layer is the stage's changes as one layer on top of its base.
	Layer OutputKind = "layer"
	// Rootfs is a directory the stage filled, as the whole filesystem of a new image for the
	// target platform.
	Rootfs OutputKind = "rootfs"
)

// Output is a stage's product.
type Output struct {
	Kind OutputKind `json:"kind"`
	Dir  string     `json:"dir,omitempty"` // with Rootfs: the directory, absolute, in the container
	// ForHost, with Rootfs: the image is of tools for the host (an accelerator), so it is for
	// the host's platform, not the target's (output: {rootfs: DIR, for: host}).
	ForHost bool `json:"for_host,omitempty"`
	// Packages, with Rootfs: a directory, absolute, in the container and outside Dir, whose
	// subdirectories are the stage's packages (output: {rootfs: DIR, packages: DIR}): NAME/ is
	// one component installed on its own (DESTDIR), all under usr/, and NAME.json beside it
	// says its version, the names of its sources in this recipe, and what it depends on
	// beyond what its ELF files need. Each becomes a package image (oci/packages).
	Packages string `json:"packages,omitempty"`
}

// FromKind says what a stage's base is.
type FromKind string

const (
	FromStage   FromKind = "stage"   // another stage of the set
	FromImage   FromKind = "image"   // an image: a store tag or a registry reference
	FromScratch FromKind = "scratch" // nothing
	// FromHostPackages is an image made on the host from its distribution's packages (the
	// seed): Debian's, with mmdebstrap through the machine's own apt sources. It has no base
	// and no script; Packages lists what it holds.
	FromHostPackages FromKind = "host-packages"
)

// From is a stage's base.
type From struct {
	Kind FromKind `json:"kind"`
	Ref  string   `json:"ref,omitempty"` // the stage name or image reference
	// ForHost, with a stage: the base is that stage as built for the host itself, not for
	// this stage's target (base-target: host): an accelerator for arm64 starts from the
	// host's own stage1, whose toolchain makes programs for the host.
	ForHost bool `json:"for_host,omitempty"`
	// Packages, with a stage (from: packages:STAGE): the base is not that stage's image but a
	// root assembled from the packages it made (its output names packages: DIR), resolved
	// and stacked on a skeleton, as a root of its packages would be installed.
	Packages bool `json:"packages,omitempty"`
}

func (f From) String() string {
	switch f.Kind {
	case FromScratch:
		return "scratch"
	case FromImage:
		return "image:" + f.Ref
	case FromHostPackages:
		return "host-packages"
	}
	if f.ForHost {
		return f.Ref + " (for the host)"
	}
	if f.Packages {
		return "packages:" + f.Ref
	}
	return f.Ref
}

// Source is a file a stage builds from, named by its sha256 and its true origin: a URL, or a
// Debian source package for what exists only as Debian's repack. A source with both is an
// upstream release that Debian ships byte-identical (musl's and busybox's orig tarballs): the URL
// is its origin, and the Debian file is a copy of the same bytes, tried when the URL cannot be
// reached.
type Source struct {
	Name   string        `json:"name"`
	SHA256 string        `json:"sha256"`
	File   string        `json:"file"` // the name it has in /sources
	URL    string        `json:"url,omitempty"`
	Debian *DebianSource `json:"debian,omitempty"`
	// License is the source's licence as an SPDX expression, where the recipe states it
	// (for the SBOM; it changes no cache key).
	License string `json:"license,omitempty"`
	// Version is the source's upstream version, where the recipe states it: a script reads
	// it as $SERPENT_VERSION_NAME, so that it is written once.
	Version string `json:"version,omitempty"`
}

// EnvName is the source's name as it appears in a script's environment: upper case, each
// character other than a letter or digit an underscore ("make-debian-diff" is
// MAKE_DEBIAN_DIFF). A stage's script finds the source's path in SERPENT_SOURCE_<EnvName>
// and its version, if given, in SERPENT_VERSION_<EnvName>.
func (s Source) EnvName() string {
	return strings.Map(func(r rune) rune {
		switch {
		case r >= 'a' && r <= 'z':
			return r - 'a' + 'A'
		case r >= 'A' && r <= 'Z', r >= '0' && r <= '9':
			return r
		}
		return '_'
	}, s.Name)
}

// Env is what a stage's script is told of the source: where it is and, if the recipe says,
// its version.
func (s Source) Env() []string {
	env := []string{"SERPENT_SOURCE_" + s.EnvName() + "=/sources/" + s.File}
	if s.Version != "" {
		env = append(env, "SERPENT_VERSION_"+s.EnvName()+"="+s.Version)
	}
	return env
}

// DebianSource is a file of a Debian source package, fetched with `apt-get source
// --download-only PACKAGE=VERSION`: the origin of sources that exist only as Debian's repack.
type DebianSource struct {
	Package string `json:"package"`
	Version string `json:"version"`
	File    string `json:"file"`
}

// Origin describes where a source comes from, for listings.
func (s Source) Origin() string {
	switch {
	case s.URL != "" && s.Debian != nil:
		return fmt.Sprintf("%s (also debian:%s=%s/%s)", s.URL, s.Debian.Package, s.Debian.Version, s.Debian.File)
	case s.URL != "":
		return s.URL
	case s.Debian != nil:
		return fmt.Sprintf("debian:%s=%s/%s", s.Debian.Package, s.Debian.Version, s.Debian.File)
	}
	return "(mirror only)"
}

// Recipe is one stage.
type Recipe struct {
	Name        string            `json:"name"`
	Description string            `json:"-"`
	From        From              `json:"from"`
	RunsOn      RunsOn            `json:"runs_on"`
	Output      Output            `json:"output"`
	Platforms   []v1.Platform     `json:"platforms"`
	Sources     []Source          `json:"sources,omitempty"`
	Script      string            `json:"script_file,omitempty"` // file name beside the recipe
	Run         string            `json:"run,omitempty"`         // inline script
	Env         map[string]string `json:"env,omitempty"`
	Network     bool              `json:"network,omitempty"`
	Tools       []string          `json:"tools,omitempty"`
	// Packages are the host distribution's packages a from: host-packages stage holds.
	Packages []string `json:"packages,omitempty"`
	// Annotate maps an annotation key to a file the stage writes (an absolute path in its
	// container): the file's content becomes that annotation of the stage's image.
	Annotate map[string]string `json:"annotate,omitempty"`
	// Cache lists directories (absolute paths in the stage's container) that persist from one
	// build of the stage to the next for the same platforms, such as a compiler cache: the
	// runner mounts them read-write from outside the image. They are never captured and never
	// part of the cache key (BuildKit's RUN --mount=type=cache): a stage must build the same
	// bytes with a cold or a warm cache.
	Cache []string `json:"-"`
	// Accelerate says the stage's build may take its toolchain from an accelerator (a build's
	// --accelerator: host-native tools for the target, mounted read-only at /serpent/accelerator and
	// first on PATH) when it runs emulated. It is not part of the recipe's meaning: an
	// accelerated build is keyed by the accelerator as well, and must make what an emulated
	// one makes.
	Accelerate bool `json:"-"`
	// Distribute says the stage's compiles may go to a build's compile farm (--compile-farm):
	// the stage then runs in a network namespace where each helper is a loopback port, named
	// in DISTCC_HOSTS, and its script sends its compiles through distcc (CCACHE_PREFIX=distcc,
	// or CC="distcc clang") when DISTCC_HOSTS is set. Like a cache, not part of the recipe's
	// meaning: a helper runs the stage's own compiler and makes what a local compile makes.
	Distribute bool `json:"-"`

	// File is the recipe's path in its set; Files are the files the stage is given at
	// /recipe (its script, patches), by path relative to the recipe set.
	File  string            `json:"-"`
	Files map[string][]byte `json:"-"`

	rawFiles []string
	// doc is the recipe's parsed YAML, kept for the lines of errors found after parsing.
	doc *yaml.Node
}

// Supports reports whether the recipe builds for target platform p.
func (r *Recipe) Supports(p v1.Platform) bool {
	for _, q := range r.Platforms {
		if q.OS == p.OS && q.Architecture == p.Architecture && q.Variant == p.Variant {
			return true
		}
	}
	return false
}

// Error is a problem in a recipe set, at a file, line and field.
type Error struct {
	File  string
	Line  int
	Field string
	Msg   string
	Err   error // the cause, when there is one (Msg empty: its message)
}

// Unwrap is the cause, so that errors.Is and errors.As see through the position.
func (e *Error) Unwrap() error { return e.Err }

func (e *Error) Error() string {
	var b strings.Builder
	b.WriteString(e.File)
	if e.Line > 0 {
		fmt.Fprintf(&b, ":%d", e.Line)
	}
	b.WriteString(": ")
	if e.Field != "" {
		b.WriteString(e.Field + ": ")
	}
	if e.Msg == "" && e.Err != nil {
		b.WriteString(e.Err.Error())
	} else {
		b.WriteString(e.Msg)
	}
	return b.String()
}
