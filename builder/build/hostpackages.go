package build

import (
	"archive/tar"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/serpent-os/serpent-oci/oci/image"
	"github.com/serpent-os/serpent-oci/oci/layer"
	"github.com/serpent-os/serpent-oci/oci/platform"
)

// HostPackagesTool is the program a from: host-packages stage is made with, and the Debian
// package that has it.
const HostPackagesTool = "mmdebstrap"

// AnnotationPackages lists a host-packages image's packages (comma-separated) and
// AnnotationSuite the distribution release they came from.
// AnnotationInstalled lists every package installed in it, NAME=VERSION=ARCH, comma-separated,
// sorted: what its SBOM lists.
const (
	AnnotationPackages  = "os.serpent.oci.packages"
	AnnotationSuite     = "os.serpent.oci.suite"
	AnnotationInstalled = "os.serpent.oci.installed"
)

// DebianPackage is a package installed in a host-packages image.
type DebianPackage struct{ Name, Version, Arch string }

// maxDpkgStatusBytes bounds the dpkg status file read from a host-packages tarball.
const maxDpkgStatusBytes = 32 << 20

// installedPackages reads the packages dpkg installed from the status file in the tarball.
func installedPackages(tarball string) ([]DebianPackage, error) {
	f, err := os.Open(tarball)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	tr := tar.NewReader(f)
	for {
		h, err := tr.Next()
		if err == io.EOF {
			return nil, errors.New("no var/lib/dpkg/status in the image")
		}
		if err != nil {
			return nil, err
		}
		if path.Clean(strings.TrimPrefix(h.Name, "./")) != "var/lib/dpkg/status" || h.Typeflag != tar.TypeReg {
			continue
		}
		b, err := io.ReadAll(io.LimitReader(tr, maxDpkgStatusBytes+1))
		if err != nil {
			return nil, err
		}
		if len(b) > maxDpkgStatusBytes {
			return nil, fmt.Errorf("var/lib/dpkg/status is larger than %d bytes", maxDpkgStatusBytes)
		}
		return parseDpkgStatus(string(b)), nil
	}
}

// parseDpkgStatus lists the installed packages of a dpkg status file, sorted by name.
func parseDpkgStatus(status string) []DebianPackage {
	var out []DebianPackage
	for _, stanza := range strings.Split(status, "\n\n") {
		var p DebianPackage
		installed := false
		for _, line := range strings.Split(stanza, "\n") {
			k, v, ok := strings.Cut(line, ": ")
			if !ok {
				continue
			}
			switch k {
			case "Package":
				p.Name = v
			case "Version":
				p.Version = v
			case "Architecture":
				p.Arch = v
			case "Status":
				installed = strings.HasSuffix(v, " installed")
			}
		}
		if installed && p.Name != "" {
			out = append(out, p)
		}
	}
	slices.SortFunc(out, func(a, b DebianPackage) int { return strings.Compare(a.Name, b.Name) })
	return out
}

func formatInstalled(ps []DebianPackage) string {
	parts := make([]string, len(ps))
	for i, p := range ps {
		parts[i] = p.Name + "=" + p.Version + "=" + p.Arch
	}
	return strings.Join(parts, ",")
}

// parseInstalled reads AnnotationInstalled; what does not parse is left out.
func parseInstalled(s string) []DebianPackage {
	var out []DebianPackage
	for _, part := range strings.Split(s, ",") {
		f := strings.Split(part, "=")
		if len(f) == 3 && f[0] != "" {
			out = append(out, DebianPackage{f[0], f[1], f[2]})
		}
	}
	return out
}

// runHostPackages makes a from: host-packages stage (the seed): mmdebstrap installs its
// packages from the machine's own apt sources into a tarball, which becomes a one-layer image
// for the host, tagged with the stage's key and provenance like any stage. It runs on the host
// itself (no container: there is no image yet to run one in); its output goes to the console
// and the stage's log.
func runHostPackages(ctx context.Context, opts Options, s *Step) (StepResult, error) {
	start := time.Now()
	res := StepResult{Step: s, Built: true}
	fail := func(err error) (StepResult, error) {
		res.Took = time.Since(start)
		return res, fmt.Errorf("stage %s for %s: %w", s.Name(), platform.String(s.RunsOn), err)
	}
	if !platform.Equal(s.RunsOn, platform.Host()) || runtime.GOOS != "linux" {
		return fail(fmt.Errorf("it is made on a %s host, and this one is %s", platform.String(s.RunsOn), platform.String(platform.Host())))
	}
	tool, err := exec.LookPath(HostPackagesTool)
	if err != nil {
		return fail(fmt.Errorf("%s is missing: install it (apt-get install %s), or name a seed image with --seed REF", HostPackagesTool, HostPackagesTool))
	}
	suite, err := hostSuite("/etc/os-release")
	if err != nil {
		return fail(err)
	}
	lists, err := aptSourceLists("/etc/apt")
	if err != nil {
		return fail(err)
	}
	tmp, err := opts.Store.TempDir(s.Name())
	if err != nil {
		return fail(err)
	}
	defer os.RemoveAll(tmp)
	epoch := epochOf(opts.PlanOptions)
	out := filepath.Join(tmp, s.Name()+".tar")
	// The package lists the seed is installed from, copied out before mmdebstrap removes
	// them: where the lock finds each .deb's sha256.
	aptLists := filepath.Join(tmp, "Packages")
	args := []string{"--variant=apt", "--include=" + strings.Join(s.Recipe.Packages, ","), "--format=tar"}
	env := append(os.Environ(), "SOURCE_DATE_EPOCH="+strconv.FormatInt(epoch.Unix(), 10), "SERPENT_OCI_APT_LISTS="+aptLists)
	pin := opts.SeedLock
	if pin != nil {
		// Pinned through apt's preferences, present while mmdebstrap installs and gone
		// after: naming each version on the command line would mark every package as
		// installed by hand (apt's extended_states), and the seed would not be the one the
		// lock was made from.
		prefs := filepath.Join(tmp, "preferences")
		if err := pinPreferences(pin, s.Recipe.Packages, prefs); err != nil {
			return fail(err)
		}
		env = append(env, "SERPENT_OCI_SEED_PINS="+prefs)
		args = append(args, `--setup-hook=mkdir -p "$1"/etc/apt/preferences.d && cp "$SERPENT_OCI_SEED_PINS" "$1"/etc/apt/preferences.d/serpent-oci-seed-lock`)
	}
	args = append(args, `--customize-hook=cat "$1"/var/lib/apt/lists/*_Packages > "$SERPENT_OCI_APT_LISTS" && rm -f "$1"/etc/apt/preferences.d/serpent-oci-seed-lock`)
	cmd := exec.CommandContext(ctx, tool, append(append(args, suite, out), lists...)...)
	cmd.Env = env
	logPath, err := opts.Runner.RunHost(ctx, s.Name(), cmd)
	res.Log = logPath
	if err != nil {
		return fail(err)
	}
	installed, err := installedPackages(out)
	if err != nil {
		return fail(fmt.Errorf("read what %s installed: %w", HostPackagesTool, err))
	}
	lock, err := seedLockOf(suite, installed, aptLists)
	if err != nil {
		return fail(err)
	}
	if pin != nil {
		if err := pin.agrees(lock, aptLists); err != nil {
			return fail(fmt.Errorf("%w %s: %w", errSeedLock, opts.SeedLockName, err))
		}
	}
	a := provenance(opts.PlanOptions, s, epoch)
	a[AnnotationPackages] = strings.Join(s.Recipe.Packages, ",")
	a[AnnotationSuite] = suite
	a[AnnotationInstalled] = formatInstalled(installed)
	d, err := image.Import(ctx, opts.Store, out, s.Tag, image.ImportOptions{
		Platform:    s.RunsOn,
		Layer:       layer.WriteOptions{SourceDateEpoch: epoch},
		CreatedBy:   "serpent-oci stage " + s.Name() + " (" + HostPackagesTool + " " + suite + ", recipe " + s.RecipeDigest + ")",
		Annotations: a,
	})
	if err != nil {
		return fail(err)
	}
	if _, err := opts.Store.WriteReferrer(ctx, d, SeedLockMediaType, SeedLockMediaType, lock.Bytes(), nil); err != nil {
		return fail(fmt.Errorf("store its lock: %w", err))
	}
	res.Descriptor, res.Took = d, time.Since(start)
	res.Size = imageSize(opts, &d)
	return res, nil
}

// hostSuite is the host's distribution release (VERSION_CODENAME in os-release).
func hostSuite(osRelease string) (string, error) {
	b, err := os.ReadFile(osRelease)
	if err != nil {
		return "", fmt.Errorf("the host's release: %w", err)
	}
	for _, line := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, "VERSION_CODENAME="); ok && strings.Trim(v, `"'`) != "" {
			return strings.Trim(v, `"'`), nil
		}
	}
	return "", fmt.Errorf("%s names no VERSION_CODENAME: a host-packages stage needs a Debian release", osRelease)
}

// aptSourceLists are the machine's apt source files that name binary archives (deb), which
// mmdebstrap takes as they are; the source-only lists serpent-oci's install step adds
// (serpent-oci-src) are left out.
func aptSourceLists(aptDir string) ([]string, error) {
	candidates := []string{filepath.Join(aptDir, "sources.list")}
	for _, pat := range []string{"*.list", "*.sources"} {
		m, _ := filepath.Glob(filepath.Join(aptDir, "sources.list.d", pat))
		candidates = append(candidates, m...)
	}
	var out []string
	for _, f := range candidates {
		if strings.Contains(filepath.Base(f), "serpent-oci-src") {
			continue
		}
		b, err := os.ReadFile(f)
		if err != nil {
			continue
		}
		for _, line := range strings.Split(string(b), "\n") {
			line = strings.TrimSpace(line)
			if strings.HasPrefix(line, "deb ") || (strings.HasPrefix(line, "Types:") && strings.Contains(" "+line+" ", " deb ")) {
				out = append(out, f)
				break
			}
		}
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("no apt sources with binary packages in %s", aptDir)
	}
	return out, nil
}
