package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/serpent-os/serpent-oci/builder"
	"github.com/serpent-os/serpent-oci/builder/binfmt"
	"github.com/serpent-os/serpent-oci/builder/rootfs"
	"github.com/serpent-os/serpent-oci/builder/runc"
	"github.com/serpent-os/serpent-oci/oci/platform"
	"github.com/serpent-os/serpent-oci/oci/store"
	"github.com/spf13/pflag"
	"golang.org/x/sys/unix"
)

func runContainerCommand() *command {
	var (
		plat                  platform.List
		network, keep         bool
		commit, workdir, fsys string
		envVars, volumes      []string
		timeout               time.Duration
	)
	return &command{
		name:    "run",
		args:    "TAG -- COMMAND [ARG...]",
		summary: "Run a command inside an image, optionally committing its changes",
		long: `The command runs with runc in a root filesystem of its own: an overlay of the image's
layers (extracted once per layer and reused), or a private copy where overlayfs cannot be
mounted. A foreign platform runs under qemu-user-static through binfmt_misc (see
'serpent-oci binfmt'). There is no network unless --network is given. With --commit, what
the command changed becomes one layer on top of the image, tagged NEWTAG; a failed or
interrupted run tags nothing and leaves no mount or container behind.
An interactive shell gets a terminal when standard input is one.`,
		example: `serpent-oci run busybox --platform linux/arm64 -- uname -m
serpent-oci run stage3 --platform linux/arm64 -- sh
serpent-oci run base --commit base-with-tools -- sh -c 'mkdir -p /opt && echo hi > /opt/hello'`,
		flags: func(fs *pflag.FlagSet) {
			fs.Var(&plat, "platform", "which platform's image, when the tag has several")
			fs.BoolVar(&network, "network", false, "share the host's network (off: an empty network namespace)")
			fs.StringVar(&commit, "commit", "", "tag the image with the command's changes as NEWTAG")
			fs.StringArrayVarP(&envVars, "env", "e", nil, "set KEY=VALUE in the container (repeatable)")
			fs.StringArrayVarP(&volumes, "volume", "v", nil, "bind a host path into the container: SRC:DST[:ro] (repeatable)")
			fs.StringVarP(&workdir, "workdir", "w", "", "working directory in the container")
			fs.DurationVar(&timeout, "timeout", 0, "stop the command after this long (e.g. 30m; 0: no limit)")
			fs.BoolVar(&keep, "keep-failed", false, "keep a failed run's files (unmounted) and print where")
			fs.StringVar(&fsys, "rootfs", "auto", "root filesystem: auto (overlay, else copy), overlay or copy")
		},
		run: func(ctx context.Context, e *env, args []string) error {
			if len(args) < 2 {
				return usagef("run: want TAG and a command after it (serpent-oci run TAG -- COMMAND)")
			}
			ref, err := refArg(args[0], plat)
			if err != nil {
				return err
			}
			var opts []builder.Option
			if fsys != "auto" && fsys != "overlay" && fsys != "copy" {
				return usagef("run: --rootfs %q: want auto, overlay or copy", fsys)
			}
			mounts, err := parseVolumes(volumes)
			if err != nil {
				return err
			}
			var tag *store.Ref
			if commit != "" {
				t, err := refArg(commit, nil)
				if err != nil {
					return err
				}
				tag = &t
			}
			st, err := e.openStore(ctx) // a run writes: snapshots, its log, --commit
			if err != nil {
				return err
			}
			img, d, err := st.Image(ref)
			if err != nil {
				return err
			}
			if d.Platform == nil {
				return fmt.Errorf("run %s: the image's config names no platform (os and architecture), so it cannot be run", ref)
			}
			if fsys != "auto" {
				p, err := providerFor(st, fsys)
				if err != nil {
					return err
				}
				opts = append(opts, builder.WithProvider(p))
			}
			opts = append(opts, builder.WithConsole(e.stderr))
			r, err := builder.NewRunner(st, opts...)
			if err != nil {
				return err
			}
			if _, err := r.Recover(ctx); err != nil {
				return err
			}
			command := args[1:]
			interactive := isTerminal(os.Stdin) && len(command) == 1 && strings.HasSuffix(command[0], "sh")
			ro := builder.RunOptions{
				Name: ref.Name, Base: img, BaseName: ref.WithPlatform(d.Platform).String(), Platform: *d.Platform,
				Args: command, Env: envVars, Cwd: workdir, Mounts: mounts, Network: network, Timeout: timeout, KeepFailed: keep,
				CreatedBy: "serpent-oci run -- " + strings.Join(command, " "),
			}
			if interactive {
				ro.Stdin, ro.Terminal = os.Stdin, true
			}
			if tag != nil {
				ro.Capture, ro.Tag = builder.CaptureLayer, tag
			}
			res, err := r.Run(ctx, ro)
			if err != nil {
				var exit *runc.ExitError
				if errors.As(err, &exit) {
					return &exitCodeError{code: 1, err: err}
				}
				return err
			}
			if tag != nil {
				fmt.Fprintf(e.stdout, "%s %s\n", tag.WithPlatform(res.Descriptor.Platform), res.Descriptor.Digest)
			}
			return nil
		},
	}
}

// parseVolumes reads SRC:DST[:ro] bind specifications.
func parseVolumes(specs []string) ([]runc.Mount, error) {
	var out []runc.Mount
	for _, v := range specs {
		parts := strings.Split(v, ":")
		if len(parts) < 2 || len(parts) > 3 || (len(parts) == 3 && parts[2] != "ro" && parts[2] != "rw") {
			return nil, usagef("--volume %q: want SRC:DST[:ro]", v)
		}
		src, err := filepath.Abs(parts[0])
		if err != nil {
			return nil, err
		}
		if _, err := os.Stat(src); err != nil {
			return nil, fmt.Errorf("--volume %s: %w", v, err)
		}
		if !filepath.IsAbs(parts[1]) {
			return nil, usagef("--volume %q: the container path must be absolute", v)
		}
		out = append(out, runc.Mount{Source: src, Destination: parts[1], ReadOnly: len(parts) == 3 && parts[2] == "ro"})
	}
	return out, nil
}

// exitCodeError carries an exit code of the run's own choosing.
type exitCodeError struct {
	code int
	err  error
}

func (e *exitCodeError) Error() string { return e.err.Error() }
func (e *exitCodeError) Unwrap() error { return e.err }

func providerFor(st *store.Store, name string) (rootfs.Provider, error) {
	if name == "copy" {
		return rootfs.Copy{}, nil
	}
	return builder.OverlayProvider(st)
}

func isTerminal(f *os.File) bool {
	_, err := unix.IoctlGetTermios(int(f.Fd()), unix.TCGETS)
	return err == nil
}

func binfmtCommand() *command {
	var install bool
	return &command{
		name:    "binfmt",
		summary: "Show or set up running foreign-platform binaries (qemu through binfmt_misc)",
		long: `Without flags, prints for each platform whether this machine runs its binaries: natively,
through a qemu interpreter registered with the F flag (which works inside containers), or
not at all. --install (as root) mounts binfmt_misc and registers every qemu interpreter of
Debian's qemu-user-static with the F flag.`,
		example: `serpent-oci binfmt
sudo serpent-oci binfmt --install`,
		flags: func(fs *pflag.FlagSet) {
			fs.BoolVar(&install, "install", false, "mount binfmt_misc and register qemu interpreters with the F flag")
		},
		run: func(ctx context.Context, e *env, args []string) error {
			if len(args) != 0 {
				return usagef("binfmt takes no arguments")
			}
			paths := binfmt.DefaultPaths
			if install {
				done, err := paths.Install()
				if err != nil {
					return err
				}
				fmt.Fprintf(e.stdout, "registered %d interpreters\n", len(done))
			}
			for _, p := range []string{"linux/amd64", "linux/arm64", "linux/arm/v7", "linux/riscv64", "linux/ppc64le", "linux/s390x", "linux/386"} {
				s, err := paths.Status(platform.MustParse(p))
				if err != nil {
					return err
				}
				state := "missing: " + s.Problem()
				switch {
				case s.Native:
					state = "native"
				case s.Ready():
					state = fmt.Sprintf("qemu (%s, flags %s)", s.Interpreter, s.Flags)
				}
				fmt.Fprintf(e.stdout, "%-14s %s\n", p, state)
			}
			return nil
		},
	}
}
