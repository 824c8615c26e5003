// Package binfmt tells whether this machine can run a platform's binaries, and makes it able
// to through binfmt_misc and Debian's qemu-user-static. A foreign-platform stage runs under
// qemu inside its container; that works without copying qemu into the image only when the
// interpreter is registered with the F ("fix binary") flag, which makes the kernel open it at
// registration time, outside every container's mount namespace.
package binfmt

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/serpent-os/serpent-oci/oci/platform"
	"golang.org/x/sys/unix"
)

// Paths of the kernel's binfmt_misc interface and of Debian's interpreter registrations.
type Paths struct {
	Mount   string // where binfmt_misc is mounted
	ConfDir string // systemd-binfmt style registrations (qemu-user-static ships them)
}

// DefaultPaths are the standard places.
var DefaultPaths = Paths{Mount: "/proc/sys/fs/binfmt_misc", ConfDir: "/usr/lib/binfmt.d"}

// Status is what the machine has for one platform.
type Status struct {
	Platform    v1.Platform
	Native      bool   // the host runs it without help
	Entry       string // binfmt_misc entry name, if one is registered
	Interpreter string
	Flags       string
	Enabled     bool
}

// Ready reports whether a container of this platform can run: natively, or through an
// enabled interpreter registered with the F flag.
func (s Status) Ready() bool {
	return s.Native || (s.Enabled && strings.Contains(s.Flags, "F"))
}

// Problem says what is missing for a platform and the command that fixes it, or "" if ready.
func (s Status) Problem() string {
	switch {
	case s.Ready():
		return ""
	case s.Entry == "":
		return fmt.Sprintf("no binfmt_misc interpreter is registered for %s (%s binaries); run `serpent-oci binfmt --install` as root (it needs Debian's qemu-user-static: `make deps`)",
			platform.String(s.Platform), platform.UnameMachine(s.Platform))
	case !s.Enabled:
		return fmt.Sprintf("the binfmt_misc interpreter %s for %s is disabled; run `serpent-oci binfmt --install` as root", s.Entry, platform.String(s.Platform))
	default:
		return fmt.Sprintf("the binfmt_misc interpreter %s for %s is registered without the F flag (flags %q), so it cannot run inside a container; run `serpent-oci binfmt --install` as root to register it again with F",
			s.Entry, platform.String(s.Platform), s.Flags)
	}
}

// Native reports whether the host runs p's binaries without emulation.
func Native(p v1.Platform) bool {
	host := platform.Host()
	if platform.Equal(p, host) {
		return true
	}
	return host.Architecture == "amd64" && p.Architecture == "386"
}

// Mounted reports whether binfmt_misc is mounted at paths.Mount.
func (paths Paths) Mounted() bool {
	_, err := os.Stat(filepath.Join(paths.Mount, "register"))
	return err == nil
}

// Check returns nil when p can run here, and otherwise an error that names the platform, what
// is missing and the command that fixes it.
func (paths Paths) Check(p v1.Platform) error {
	if Native(p) {
		return nil
	}
	if !paths.Mounted() {
		return fmt.Errorf("platform %s needs qemu through binfmt_misc, which is not mounted at %s; run `serpent-oci binfmt --install` as root",
			platform.String(p), paths.Mount)
	}
	s, err := paths.Status(p)
	if err != nil {
		return err
	}
	if msg := s.Problem(); msg != "" {
		return errors.New(msg)
	}
	return nil
}

// Status reads what binfmt_misc has registered for p.
func (paths Paths) Status(p v1.Platform) (Status, error) {
	s := Status{Platform: p, Native: Native(p)}
	if !paths.Mounted() {
		return s, nil
	}
	machine := platform.UnameMachine(p)
	entries, err := os.ReadDir(paths.Mount)
	if err != nil {
		return s, fmt.Errorf("read %s: %w", paths.Mount, err)
	}
	for _, e := range entries {
		if e.Name() == "register" || e.Name() == "status" || !strings.Contains(e.Name(), machine) {
			continue
		}
		if machine == "arm" && strings.Contains(e.Name(), "armeb") {
			continue
		}
		b, err := os.ReadFile(filepath.Join(paths.Mount, e.Name()))
		if err != nil {
			return s, fmt.Errorf("read binfmt_misc entry: %w", err)
		}
		st := parseEntry(string(b))
		st.Platform, st.Native, st.Entry = p, s.Native, e.Name()
		if s.Entry == "" || (st.Ready() && !s.Ready()) {
			s = st
		}
	}
	return s, nil
}

func parseEntry(text string) Status {
	var s Status
	for _, line := range strings.Split(text, "\n") {
		switch {
		case line == "enabled":
			s.Enabled = true
		case strings.HasPrefix(line, "interpreter "):
			s.Interpreter = strings.TrimPrefix(line, "interpreter ")
		case strings.HasPrefix(line, "flags:"):
			s.Flags = strings.TrimSpace(strings.TrimPrefix(line, "flags:"))
		}
	}
	return s
}

// Install mounts binfmt_misc if needed and registers, with the F flag, every qemu interpreter
// Debian's qemu-user-static ships a registration for that is not registered ready already. It
// returns the entries it registered.
func (paths Paths) Install() ([]string, error) {
	if !paths.Mounted() {
		if err := unix.Mount("binfmt_misc", paths.Mount, "binfmt_misc", 0, ""); err != nil {
			return nil, fmt.Errorf("mount binfmt_misc on %s: %w (are you root?)", paths.Mount, err)
		}
	}
	confs, err := filepath.Glob(filepath.Join(paths.ConfDir, "qemu-*.conf"))
	if err != nil {
		return nil, err
	}
	if len(confs) == 0 {
		return nil, fmt.Errorf("no qemu registrations in %s: install Debian's qemu-user-static (`make deps`)", paths.ConfDir)
	}
	sort.Strings(confs)
	var done []string
	for _, conf := range confs {
		name, line, err := readConf(conf)
		if err != nil {
			return done, err
		}
		entry := filepath.Join(paths.Mount, name)
		if b, err := os.ReadFile(entry); err == nil {
			if st := parseEntry(string(b)); st.Enabled && strings.Contains(st.Flags, "F") {
				continue
			}
			// Registered without F (or disabled): remove it and register again.
			if err := os.WriteFile(entry, []byte("-1"), 0); err != nil {
				return done, fmt.Errorf("unregister %s: %w", name, err)
			}
		}
		if err := os.WriteFile(filepath.Join(paths.Mount, "register"), []byte(line), 0); err != nil {
			return done, fmt.Errorf("register %s from %s: %w", name, conf, err)
		}
		done = append(done, name)
	}
	return done, nil
}

// readConf reads a binfmt.d registration (":name:type:offset:magic:mask:interpreter:flags")
// and returns its name and the line with the F flag added.
func readConf(path string) (string, string, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return "", "", err
	}
	for _, line := range strings.Split(string(b), "\n") {
		line = strings.TrimSpace(line)
		if line == "" || strings.HasPrefix(line, "#") || strings.HasPrefix(line, ";") {
			continue
		}
		fields := strings.Split(line, line[:1])
		if len(fields) != 8 {
			return "", "", fmt.Errorf("%s: not a binfmt_misc registration: %q", path, line)
		}
		if _, err := os.Stat(fields[6]); err != nil {
			return "", "", fmt.Errorf("%s: interpreter %s: %w", path, fields[6], err)
		}
		if !strings.Contains(fields[7], "F") {
			fields[7] += "F"
		}
		return fields[1], strings.Join(fields, line[:1]), nil
	}
	return "", "", fmt.Errorf("%s: no registration in it", path)
}
