// Package platform parses and formats the platforms images are built for, as users write them:
// "linux/arm64", "linux/arm64/v8", "arm64", "aarch64", "x86_64", "linux/amd64" all name one of
// two canonical forms. Parsing is containerd's (github.com/containerd/platforms), which the
// ecosystem already agrees on; this package adds the forms serpent-oci needs on top of it: a
// tag-safe slug, the host platform, and a comma-separated list type for flags.
package platform

import (
	"fmt"
	"runtime"
	"slices"
	"strings"

	"github.com/containerd/platforms"
	v1 "github.com/google/go-containerregistry/pkg/v1"
)

// Parse reads a platform as a user writes it and returns its normalised form. An architecture
// alone ("aarch64") means Linux; "arm64/v8" is plain arm64, "amd64/v1" plain amd64.
func Parse(s string) (v1.Platform, error) {
	s = strings.TrimSpace(s)
	if s == "" {
		return v1.Platform{}, fmt.Errorf("empty platform: want os/arch[/variant], for example linux/arm64")
	}
	p, err := platforms.Parse(s)
	if err != nil {
		return v1.Platform{}, fmt.Errorf("platform %q: want os/arch[/variant], for example linux/arm64", s)
	}
	p = platforms.Normalize(p)
	if p.OS != "linux" {
		return v1.Platform{}, fmt.Errorf("platform %q: operating system %q is not supported (only linux)", s, p.OS)
	}
	if !known(p.Architecture) {
		return v1.Platform{}, fmt.Errorf("platform %q: unknown architecture %q", s, p.Architecture)
	}
	return v1.Platform{OS: p.OS, Architecture: p.Architecture, Variant: p.Variant}, nil
}

// MustParse is Parse for constants in code and tests; it panics on a malformed platform.
func MustParse(s string) v1.Platform {
	p, err := Parse(s)
	if err != nil {
		panic(err)
	}
	return p
}

// known lists the architectures a Linux image can be built for (GOARCH names, as the OCI image
// spec uses them).
func known(arch string) bool {
	return slices.Contains([]string{
		"386", "amd64", "arm", "arm64", "loong64", "mips", "mips64", "mips64le", "mipsle",
		"ppc64", "ppc64le", "riscv64", "s390x",
	}, arch)
}

// Host is the platform of the machine serpent-oci runs on.
func Host() v1.Platform {
	return MustParse("linux/" + runtime.GOARCH)
}

// String formats p as os/arch[/variant].
func String(p v1.Platform) string {
	s := p.OS + "/" + p.Architecture
	if p.Variant != "" {
		s += "/" + p.Variant
	}
	return s
}

// Slug formats p for use inside a tag or a file name: os-arch[-variant].
func Slug(p v1.Platform) string {
	return strings.ReplaceAll(String(p), "/", "-")
}

// Equal reports whether a and b name the same platform once normalised.
func Equal(a, b v1.Platform) bool {
	na := platforms.Normalize(toSpec(a))
	nb := platforms.Normalize(toSpec(b))
	return na.OS == nb.OS && na.Architecture == nb.Architecture && na.Variant == nb.Variant
}

// Normalize returns p in its canonical form (aarch64 → arm64, arm64/v8 → arm64).
func Normalize(p v1.Platform) v1.Platform {
	n := platforms.Normalize(toSpec(p))
	return v1.Platform{OS: n.OS, Architecture: n.Architecture, Variant: n.Variant}
}

// UnameMachine is what `uname -m` prints on p (the kernel's name for the architecture), which is
// also the name qemu-user-static and binfmt_misc use.
func UnameMachine(p v1.Platform) string {
	switch p.Architecture {
	case "amd64":
		return "x86_64"
	case "arm64":
		return "aarch64"
	case "386":
		return "i386"
	default:
		return p.Architecture
	}
}

func toSpec(p v1.Platform) platforms.Platform {
	return platforms.Platform{OS: p.OS, Architecture: p.Architecture, Variant: p.Variant}
}

// List is a comma-separated list of platforms; it implements pflag.Value so that
// `--platform linux/amd64,linux/arm64` and repeated `--platform` flags both work.
type List []v1.Platform

// String implements pflag.Value.
func (l *List) String() string {
	parts := make([]string, len(*l))
	for i, p := range *l {
		parts[i] = String(p)
	}
	return strings.Join(parts, ",")
}

// Set implements pflag.Value. Duplicates (after normalisation) are dropped.
func (l *List) Set(s string) error {
	for _, part := range strings.Split(s, ",") {
		p, err := Parse(part)
		if err != nil {
			return err
		}
		if !slices.ContainsFunc(*l, func(q v1.Platform) bool { return Equal(p, q) }) {
			*l = append(*l, p)
		}
	}
	return nil
}

// Type implements pflag.Value.
func (l *List) Type() string { return "platforms" }

// OrHost is ps, or the host's platform alone when ps names none: the one default of every
// command and build that takes platforms.
func OrHost(ps []v1.Platform) []v1.Platform {
	if len(ps) == 0 {
		return []v1.Platform{Host()}
	}
	return ps
}
