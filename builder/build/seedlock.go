package build

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"regexp"
	"slices"
	"strings"
)

// SeedLockMediaType is the artifact type of a seed's lock, kept as a referrer of the seed image
// (as its SBOM is): it travels with the image and changes nothing of its digest.
const SeedLockMediaType = "application/vnd.serpent-oci.seed-lock.v1+json"

// SeedLock is what a host-packages image (the seed) was made of: every Debian package installed
// in it, at its version, with the sha256 of the .deb the archive served. Given back to a build
// (--seed-lock), it pins the seed: mmdebstrap installs those versions and nothing else, and a
// build says which the archive no longer serves.
type SeedLock struct {
	Suite    string          `json:"suite"`
	Packages []LockedPackage `json:"packages"`
}

// LockedPackage is one package of a seed lock.
type LockedPackage struct {
	Name    string `json:"name"`
	Version string `json:"version"`
	Arch    string `json:"architecture"`
	SHA256  string `json:"sha256"`
}

// maxSeedLockBytes bounds a lock read from a file or the store (some 30 KB for a real seed).
const maxSeedLockBytes = 4 << 20

// maxSeedLockPackages bounds its packages.
const maxSeedLockPackages = 20000

var (
	debNameRE    = regexp.MustCompile(`^[a-z0-9][a-z0-9+.-]+$`)
	debVersionRE = regexp.MustCompile(`^[A-Za-z0-9.+~:-]+$`)
	sha256RE     = regexp.MustCompile(`^[0-9a-f]{64}$`)
)

// ParseSeedLock reads a seed lock (JSON, as Write gives it), checking every field: a lock
// names packages to the package manager, so a name or version that is not Debian's is refused.
// name is the file, for messages.
func ParseSeedLock(name string, r io.Reader) (*SeedLock, error) {
	b, err := io.ReadAll(io.LimitReader(r, maxSeedLockBytes+1))
	if err != nil {
		return nil, fmt.Errorf("seed lock %s: %w", name, err)
	}
	if len(b) > maxSeedLockBytes {
		return nil, fmt.Errorf("seed lock %s: larger than %d bytes", name, maxSeedLockBytes)
	}
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	var l SeedLock
	if err := dec.Decode(&l); err != nil {
		return nil, fmt.Errorf("seed lock %s: %w", name, err)
	}
	if len(l.Packages) == 0 || len(l.Packages) > maxSeedLockPackages {
		return nil, fmt.Errorf("seed lock %s: %d packages, want 1 to %d", name, len(l.Packages), maxSeedLockPackages)
	}
	for i, p := range l.Packages {
		switch {
		case !debNameRE.MatchString(p.Name):
			return nil, fmt.Errorf("seed lock %s: packages[%d].name %q is not a Debian package name", name, i, p.Name)
		case !debVersionRE.MatchString(p.Version):
			return nil, fmt.Errorf("seed lock %s: packages[%d] (%s): version %q is not a Debian version", name, i, p.Name, p.Version)
		case !debNameRE.MatchString(p.Arch):
			return nil, fmt.Errorf("seed lock %s: packages[%d] (%s): architecture %q is not a Debian architecture", name, i, p.Name, p.Arch)
		case !sha256RE.MatchString(p.SHA256):
			return nil, fmt.Errorf("seed lock %s: packages[%d] (%s): sha256 %q is not 64 lower-case hex digits", name, i, p.Name, p.SHA256)
		case i > 0 && l.Packages[i-1].Name >= p.Name:
			return nil, fmt.Errorf("seed lock %s: packages[%d] (%s): packages are sorted by name, each once", name, i, p.Name)
		}
	}
	return &l, nil
}

// Bytes is the lock as a file holds it: indented JSON, one package an object, sorted.
func (l *SeedLock) Bytes() []byte {
	b, _ := json.MarshalIndent(l, "", "  ") // of strings alone: cannot fail
	return append(b, '\n')
}

// pinPreferences writes the apt preferences that pin every locked package to its version
// (priority 1001: also below the archive's newest) into file. The recipe's own packages must
// be in the lock: a lock made for another recipe is an error, not a silent mix.
func pinPreferences(l *SeedLock, recipe []string, file string) error {
	names := map[string]bool{}
	var b strings.Builder
	for _, p := range l.Packages {
		names[p.Name] = true
		fmt.Fprintf(&b, "Package: %s\nPin: version %s\nPin-Priority: 1001\n\n", p.Name, p.Version)
	}
	var missing []string
	for _, r := range recipe {
		if !names[r] {
			missing = append(missing, r)
		}
	}
	if len(missing) > 0 {
		return fmt.Errorf("%w does not hold %s, which the recipe installs: it was made for another recipe", errSeedLock, strings.Join(missing, ", "))
	}
	return os.WriteFile(file, []byte(b.String()), 0o644)
}

// differences says how installed (an image's packages) differs from the lock's versions.
func (l *SeedLock) differences(installed []DebianPackage) []PackageChange {
	return packageChanges(formatInstalled(l.versions()), formatInstalled(installed))
}

// versions are the lock's packages without their digests.
func (l *SeedLock) versions() []DebianPackage {
	out := make([]DebianPackage, len(l.Packages))
	for i, p := range l.Packages {
		out[i] = DebianPackage{p.Name, p.Version, p.Arch}
	}
	return out
}

// agrees checks that a seed made with this lock pinned is what it locks: the same packages at
// the same versions, from the same .deb files. A locked version missing from the archive's
// package lists (apt installed another) is said as such.
func (l *SeedLock) agrees(made *SeedLock, lists string) error {
	if d := l.differences(made.versions()); len(d) > 0 {
		if gone := unlisted(l.versions(), lists); len(gone) > 0 {
			return fmt.Errorf("it pins versions the archive no longer serves: %s (build without --seed-lock for the archive's versions, and write a new lock with serpent-oci seed-lock)", strings.Join(gone, ", "))
		}
		parts := make([]string, len(d))
		for i, c := range d {
			parts[i] = c.String()
		}
		return fmt.Errorf("the seed came out with other packages (this one is the lock, the other the seed): %s", strings.Join(parts, "; "))
	}
	sums := map[string]string{}
	for _, p := range l.Packages {
		sums[p.Name] = p.SHA256
	}
	var other []string
	for _, p := range made.Packages {
		if sums[p.Name] != p.SHA256 {
			other = append(other, fmt.Sprintf("%s=%s is %s, locked %s", p.Name, p.Version, p.SHA256, sums[p.Name]))
		}
	}
	if len(other) > 0 {
		return fmt.Errorf("the archive served other bytes under a locked version: %s", strings.Join(other, "; "))
	}
	return nil
}

// seedLockOf makes the lock of the packages installed, finding each .deb's sha256 in the apt
// package lists the seed was installed from (the Packages files, concatenated, at lists).
func seedLockOf(suite string, installed []DebianPackage, lists string) (*SeedLock, error) {
	want := map[string]bool{}
	for _, p := range installed {
		want[p.Name+"="+p.Version+"="+p.Arch] = true
	}
	sums := map[string]string{}
	err := scanLists(lists, func(name, version, arch, sum string) {
		if k := name + "=" + version + "=" + arch; want[k] && sum != "" {
			sums[k] = sum
		}
	})
	if err != nil {
		return nil, err
	}
	l := &SeedLock{Suite: suite}
	var missing []string
	for _, p := range installed {
		k := p.Name + "=" + p.Version + "=" + p.Arch
		if sums[k] == "" {
			missing = append(missing, k)
			continue
		}
		l.Packages = append(l.Packages, LockedPackage{Name: p.Name, Version: p.Version, Arch: p.Arch, SHA256: sums[k]})
	}
	if len(missing) > 0 {
		return nil, fmt.Errorf("no sha256 in the package lists for %s", strings.Join(missing, ", "))
	}
	slices.SortFunc(l.Packages, func(a, b LockedPackage) int { return strings.Compare(a.Name, b.Name) })
	return l, nil
}

// unlisted are the packages (NAME=VERSION) of ps that the package lists at path do not hold.
func unlisted(ps []DebianPackage, path string) []string {
	listed := map[string]bool{}
	_ = scanLists(path, func(name, version, _, _ string) { listed[name+"="+version] = true })
	var out []string
	for _, p := range ps {
		if k := p.Name + "=" + p.Version; !listed[k] {
			out = append(out, k)
		}
	}
	return out
}

// scanLists calls each with the package, version, architecture and sha256 of every stanza of
// the apt package lists at path (Packages files, concatenated).
func scanLists(path string, each func(name, version, arch, sha256 string)) error {
	f, err := os.Open(path)
	if err != nil {
		return fmt.Errorf("the seed's package lists: %w", err)
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	var name, version, arch, sum string
	flush := func() {
		if name != "" {
			each(name, version, arch, sum)
		}
		name, version, arch, sum = "", "", "", ""
	}
	for sc.Scan() {
		line := sc.Text()
		if line == "" {
			flush()
			continue
		}
		k, v, ok := strings.Cut(line, ": ")
		switch {
		case !ok:
		case k == "Package":
			name = v
		case k == "Version":
			version = v
		case k == "Architecture":
			arch = v
		case k == "SHA256":
			sum = v
		}
	}
	flush()
	if err := sc.Err(); err != nil {
		return fmt.Errorf("the seed's package lists: %w", err)
	}
	return nil
}

// errSeedLock marks a seed that cannot be made as its lock says.
var errSeedLock = errors.New("the seed lock")
