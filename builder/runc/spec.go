// Package runc runs one process in a prepared root filesystem with the runc command: it builds
// the bundle's config.json from runtime-spec types (never from templated text), runs the
// container in the foreground with its output streamed, and finds and removes containers that
// an earlier, killed serpent-oci left behind.
package runc

import (
	"fmt"
	"path"
	"sort"
	"strings"

	"github.com/moby/profiles/seccomp"
	specs "github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/sys/unix"
)

// Mount is an extra bind mount into the container.
type Mount struct {
	Source      string // on the host
	Destination string // absolute, in the container
	ReadOnly    bool
}

// SpecOptions describes the container a stage runs in.
type SpecOptions struct {
	Rootfs   string   // the root filesystem (an overlay mount point), absolute
	Args     []string // the process
	Env      []string // KEY=VALUE, the image's then the caller's; later keys win
	Cwd      string   // working directory in the container (default /)
	Hostname string   // default "serpent"
	// Network shares the host's network namespace (and its resolv.conf) with the container.
	// Off by default: the container then has a network namespace of its own with only a
	// loopback interface, and reaches nothing.
	Network    bool
	ResolvConf string // the host file bound at /etc/resolv.conf when Network is on
	// NetNS, without Network, is a network namespace (a file, as builder/netns makes) for the
	// container to join instead of a new one: one the build serves listeners into.
	NetNS    string
	Mounts   []Mount
	Terminal bool // give the process a terminal (interactive use)
	Limits   Limits
	// UID and GID the process runs as (default root). A process that is not root gets no
	// effective or permitted capabilities (podman's rule); the bounding set stays.
	UID, GID uint32
}

// Limits bound what one container may take. Zero fields take the defaults (DefaultLimits).
type Limits struct {
	Pids   int64 // processes and threads at once
	Memory int64 // bytes of memory (its tmpfs /tmp included), enforced by the memory cgroup
	Files  uint64
}

// DefaultLimits are the limits of a container that asks for none: podman's pids limit
// doubled (a build runs make -j and qemu threads), three quarters of the machine's memory
// (so a runaway build is stopped before the host is), and 65536 open files, or this
// process's own hard limit where that is lower (raising it takes CAP_SYS_RESOURCE, which a
// sandboxed serpent-oci may lack: runc would fail to start the container).
func DefaultLimits() Limits {
	files := uint64(65536)
	var rl unix.Rlimit
	if err := unix.Getrlimit(unix.RLIMIT_NOFILE, &rl); err == nil && rl.Max < files {
		files = rl.Max
	}
	return Limits{Pids: 4096, Memory: int64(physicalMemory() / 4 * 3), Files: files}
}

func (l Limits) fill() Limits {
	d := DefaultLimits()
	if l.Pids == 0 {
		l.Pids = d.Pids
	}
	if l.Memory == 0 {
		l.Memory = d.Memory
	}
	if l.Files == 0 {
		l.Files = d.Files
	}
	return l
}

func physicalMemory() uint64 {
	var si unix.Sysinfo_t
	if err := unix.Sysinfo(&si); err != nil || si.Totalram == 0 {
		return 8 << 30
	}
	return uint64(si.Totalram) * uint64(si.Unit)
}

// buildCapabilities are what a build running as root in the container needs: own and chown
// files, make device nodes (stage2 makes /dev's nodes for plain chroot use), set file
// capabilities, change ids, chroot. Podman's default set, plus CAP_MKNOD; without NET_RAW
// and AUDIT_WRITE, which Docker's has and no build needs.
var buildCapabilities = []string{
	"CAP_CHOWN", "CAP_DAC_OVERRIDE", "CAP_FOWNER", "CAP_FSETID", "CAP_KILL",
	"CAP_MKNOD", "CAP_NET_BIND_SERVICE", "CAP_SETFCAP", "CAP_SETGID",
	"CAP_SETPCAP", "CAP_SETUID", "CAP_SYS_CHROOT",
}

// Spec returns the runtime configuration for opts.
func Spec(opts SpecOptions) (*specs.Spec, error) {
	umask := uint32(0o022)
	if !path.IsAbs(opts.Rootfs) {
		return nil, fmt.Errorf("runtime spec: rootfs %q is not absolute", opts.Rootfs)
	}
	if len(opts.Args) == 0 {
		return nil, fmt.Errorf("runtime spec: no command to run")
	}
	cwd := opts.Cwd
	if cwd == "" {
		cwd = "/"
	}
	hostname := opts.Hostname
	if hostname == "" {
		hostname = "serpent"
	}
	caps := append([]string(nil), buildCapabilities...)
	effective := caps
	if opts.UID != 0 {
		effective = []string{}
	}
	limits := opts.Limits.fill()
	pids, memory := limits.Pids, limits.Memory
	s := &specs.Spec{
		Version: specs.Version,
		Process: &specs.Process{
			Terminal: opts.Terminal,
			// An explicit umask: what a build writes must not depend on the caller's.
			User: specs.User{UID: opts.UID, GID: opts.GID, Umask: &umask},
			Args: opts.Args,
			Env:  MergeEnv(opts.Env),
			Cwd:  cwd,
			Capabilities: &specs.LinuxCapabilities{
				Bounding: caps, Effective: effective, Permitted: effective,
			},
			// No setuid or file capability raises privileges inside (runc's own default).
			NoNewPrivileges: true,
			Rlimits: []specs.POSIXRlimit{
				{Type: "RLIMIT_NOFILE", Hard: limits.Files, Soft: limits.Files},
				{Type: "RLIMIT_CORE", Hard: 0, Soft: 0}, // no core file lands in a captured layer
			},
		},
		Root:     &specs.Root{Path: opts.Rootfs},
		Hostname: hostname,
		Mounts:   baseMounts(opts.Network),
		Linux: &specs.Linux{
			Namespaces: []specs.LinuxNamespace{
				{Type: specs.PIDNamespace}, {Type: specs.MountNamespace},
				{Type: specs.IPCNamespace}, {Type: specs.UTSNamespace},
				{Type: specs.CgroupNamespace},
			},
			Resources: &specs.LinuxResources{
				Pids:   &specs.LinuxPids{Limit: &pids},
				Memory: &specs.LinuxMemory{Limit: &memory},
			},
			MaskedPaths: []string{
				"/proc/acpi", "/proc/asound", "/proc/kcore", "/proc/keys", "/proc/latency_stats",
				"/proc/timer_list", "/proc/timer_stats", "/proc/sched_debug", "/proc/scsi",
				"/sys/firmware", "/sys/devices/virtual/powercap",
			},
			ReadonlyPaths: []string{
				"/proc/bus", "/proc/fs", "/proc/irq", "/proc/sys", "/proc/sysrq-trigger",
			},
		},
	}
	if !opts.Network {
		s.Linux.Namespaces = append(s.Linux.Namespaces, specs.LinuxNamespace{Type: specs.NetworkNamespace, Path: opts.NetNS})
	} else if opts.ResolvConf != "" {
		s.Mounts = append(s.Mounts, specs.Mount{
			Destination: "/etc/resolv.conf", Type: "bind", Source: opts.ResolvConf,
			Options: []string{"rbind", "ro", "nosuid", "nodev", "noexec"},
		})
	}
	for _, m := range opts.Mounts {
		if !path.IsAbs(m.Destination) || !path.IsAbs(m.Source) {
			return nil, fmt.Errorf("runtime spec: mount %s → %s: both paths must be absolute", m.Source, m.Destination)
		}
		o := []string{"rbind", "nosuid", "nodev"}
		if m.ReadOnly {
			o = append(o, "ro")
		} else {
			o = append(o, "rw")
		}
		s.Mounts = append(s.Mounts, specs.Mount{Destination: path.Clean(m.Destination), Type: "bind", Source: m.Source, Options: o})
	}
	// Docker's default seccomp profile (moby/profiles), for the capabilities above: it lets
	// builds and qemu-user do their work and refuses what a build has no business doing
	// (new user namespaces, mount, kernel modules, keyrings, ptrace of the host's kind).
	sc, err := seccomp.GetDefaultProfile(s)
	if err != nil {
		return nil, fmt.Errorf("runtime spec: seccomp profile: %w", err)
	}
	s.Linux.Seccomp = sc
	return s, nil
}

// baseMounts are the filesystems every container gets: /proc, a tmpfs /dev (runc fills it with
// the usual device nodes), /dev/pts, /dev/shm, /dev/mqueue, a read-only /sys and a tmpfs /tmp.
// Without a network namespace of its own the container cannot mount a fresh sysfs, so it
// gets the host's, read-only, by bind.
func baseMounts(network bool) []specs.Mount {
	sys := specs.Mount{Destination: "/sys", Type: "sysfs", Source: "sysfs", Options: []string{"nosuid", "noexec", "nodev", "ro"}}
	if network {
		sys = specs.Mount{Destination: "/sys", Type: "bind", Source: "/sys", Options: []string{"rbind", "nosuid", "noexec", "nodev", "ro"}}
	}
	return []specs.Mount{
		{Destination: "/proc", Type: "proc", Source: "proc"},
		{Destination: "/dev", Type: "tmpfs", Source: "tmpfs", Options: []string{"nosuid", "strictatime", "mode=755", "size=65536k"}},
		{Destination: "/dev/pts", Type: "devpts", Source: "devpts", Options: []string{"nosuid", "noexec", "newinstance", "ptmxmode=0666", "mode=0620", "gid=5"}},
		{Destination: "/dev/shm", Type: "tmpfs", Source: "shm", Options: []string{"nosuid", "noexec", "nodev", "mode=1777", "size=65536k"}},
		{Destination: "/dev/mqueue", Type: "mqueue", Source: "mqueue", Options: []string{"nosuid", "noexec", "nodev"}},
		sys,
		{Destination: "/tmp", Type: "tmpfs", Source: "tmpfs", Options: []string{"nosuid", "nodev", "mode=1777"}},
	}
}

// MergeEnv returns env with one entry per key: a later KEY=VALUE replaces an earlier one in
// place. Entries without "=" are dropped. The order is otherwise kept.
func MergeEnv(env []string) []string {
	index := map[string]int{}
	var out []string
	for _, kv := range env {
		k, _, ok := strings.Cut(kv, "=")
		if !ok || k == "" {
			continue
		}
		if i, seen := index[k]; seen {
			out[i] = kv
			continue
		}
		index[k] = len(out)
		out = append(out, kv)
	}
	return out
}

// MountPoints lists the destinations of every mount in s, shortest first: the paths runc may
// create in the root filesystem.
func MountPoints(s *specs.Spec) []string {
	var dsts []string
	for _, m := range s.Mounts {
		dsts = append(dsts, m.Destination)
	}
	sort.Slice(dsts, func(i, j int) bool { return len(dsts[i]) < len(dsts[j]) })
	return dsts
}
