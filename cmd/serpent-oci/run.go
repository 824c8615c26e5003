package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/serpent-os/serpent-oci/builder"
	"github.com/serpent-os/serpent-oci/builder/binfmt"
	"github.com/serpent-os/serpent-oci/builder/rootfs"
	"github.com/serpent-os/serpent-oci/oci/platform"
	"github.com/serpent-os/serpent-oci/oci/store"
	"github.com/spf13/pflag"
	"golang.org/x/sys/unix"
)

// runFailedCode is run's exit code when serpent-oci itself fails (podman's): any other code is
// the command's own.
const runFailedCode = 125

// runInterruptedCode is run's exit code after SIGINT or SIGTERM (a shell's for Ctrl-C).
const runInterruptedCode = 130

func runContainerCommand() *command {
	var a runArgs // the flags; args are the positional arguments
	return &command{
		name:      "run",
		args:      "TAG [-- COMMAND [ARG...]]",
		usageCode: runFailedCode,
		summary:   "Run a command inside an image, optionally committing its changes",
		long: `The command runs with runc in a root filesystem of its own: an overlay of the image's
layers (extracted once per layer and reused), or a private copy where overlayfs cannot be
mounted. A foreign platform runs under qemu-user-static through binfmt_misc (see
'serpent-oci binfmt'). As podman run: the image's entrypoint, cmd, env, working directory and
user apply (COMMAND replaces the cmd; --entrypoint, -e, -w and -u override the rest); the
command's stdout and stderr are serpent-oci's, unprefixed; -i passes standard input, -t gives a
terminal (-it for a shell). There is no network unless --network host. --rm is accepted
(runs are always removed). With --commit, what the
command changed becomes one layer on top of the image, tagged NEWTAG; a failed or interrupted
run tags nothing and leaves no mount or container behind.

Exit status: the command's own; 125 when serpent-oci fails before or around it (no such
image, a usage error, the container cannot start); 130 when interrupted (SIGINT, SIGTERM).`,
		example: `serpent-oci run busybox --platform linux/arm64 -- uname -m
serpent-oci run -it stage3 --platform linux/arm64 -- sh
serpent-oci run base --commit base-with-tools -- sh -c 'mkdir -p /opt && echo hi > /opt/hello'`,
		flags: func(fs *pflag.FlagSet) {
			fs.Var(&a.plat, "platform", "which platform's image, when the tag has several")
			// As podman's, --network always takes its value: it never takes the image's place
			// (--network slirp4netns busybox is an error about slirp4netns).
			fs.StringVar(&a.network, "network", "none", "none (an empty network namespace) or host (the host's network)")
			fs.Bool("rm", false, "accepted for podman's sake: every run's container and root filesystem are removed when it ends (--commit keeps its changes)")
			fs.BoolVarP(&a.interactive, "interactive", "i", false, "pass standard input to the command")
			fs.BoolVarP(&a.tty, "tty", "t", false, "give the command a terminal")
			fs.StringVar(&a.entry, "entrypoint", "", "run this instead of the image's entrypoint (\"\" keeps it; a command word, split at spaces)")
			fs.StringVarP(&a.user, "user", "u", "", "run as USER[:GROUP] (names from the image's /etc/passwd and /etc/group; default: the image's user, else root)")
			fs.StringVar(&a.commit, "commit", "", "tag the image with the command's changes as NEWTAG")
			fs.StringArrayVarP(&a.envVars, "env", "e", nil, "set KEY=VALUE in the container; KEY alone passes this shell's value of KEY (repeatable)")
			fs.StringArrayVarP(&a.volumes, "volume", "v", nil, "bind a host path into the container: SRC:DST[:ro] (repeatable)")
			fs.StringVarP(&a.workdir, "workdir", "w", "", "working directory in the container (default: the image's, else /)")
			fs.DurationVar(&a.timeout, "timeout", 0, "stop the command after this long (e.g. 30m; 0: no limit)")
			fs.BoolVar(&a.keep, "keep-failed", false, "keep a failed run's files (unmounted) and print where")
			fs.StringVar(&a.fsys, "rootfs", "auto", "root filesystem: auto (overlay, else copy), overlay or copy")
		},
		run: func(ctx context.Context, e *env, args []string) error {
			a.args = args
			err := runContainer(ctx, e, a)
			code, exited := builder.ExitStatus(err)
			switch {
			case err == nil:
				return nil
			case exited:
				return &exitCodeError{code: code, err: err, silent: true}
			}
			if code, never := builder.CommandStatus(err); never {
				return &exitCodeError{code: code, err: err}
			}
			switch {
			case errors.As(err, new(usageError)):
				return err
			case ctx.Err() != nil:
				return &exitCodeError{code: runInterruptedCode, err: fmt.Errorf("interrupted: %w", err)}
			}
			return &exitCodeError{code: runFailedCode, err: err}
		},
	}
}

// runArgs is a run's command line.
type runArgs struct {
	args                   []string
	plat                   platform.List
	keep, interactive, tty bool
	commit, workdir, fsys  string
	network, user, entry   string
	envVars, volumes       []string
	timeout                time.Duration
}

func runContainer(ctx context.Context, e *env, a runArgs) error {
	if len(a.args) < 1 {
		return usagef("run: want a TAG (serpent-oci run TAG [-- COMMAND])")
	}
	if a.tty && !isTerminal(e.stdin) {
		return usagef("run -t: standard input is not a terminal (run from one, or drop -t; -i alone passes input)")
	}
	envVars, err := callerEnv(a.envVars, os.LookupEnv)
	if err != nil {
		return err
	}
	a.envVars = envVars
	if a.network != "none" && a.network != "host" {
		return usagef("run: --network %q: want none or host", a.network)
	}
	ref, err := refArg(a.args[0], a.plat)
	if err != nil {
		return err
	}
	var opts []builder.Option
	if a.fsys != "auto" && a.fsys != "overlay" && a.fsys != "copy" {
		return usagef("run: --rootfs %q: want auto, overlay or copy", a.fsys)
	}
	mounts, err := parseVolumes(a.volumes)
	if err != nil {
		return err
	}
	var tag *store.Ref
	if a.commit != "" {
		t, err := refArg(a.commit, nil)
		if err != nil {
			return err
		}
		tag = &t
	}
	st, err := e.openStore(ctx) // a run writes: snapshots, its log, --commit
	if err != nil {
		return err
	}
	img, d, err := st.ImageFor(ref, platform.Host()) // the host's platform of a multi-platform name
	if err != nil {
		return err
	}
	if d.Platform == nil {
		return fmt.Errorf("run %s: the image's config names no platform (os and architecture), so it cannot be run", ref)
	}
	cfg, err := img.ConfigFile()
	if err != nil {
		return fmt.Errorf("run %s: config: %w", ref, err)
	}
	command, user, err := builder.ImageProcess(cfg.Config, a.entry, a.args[1:], a.user)
	if err != nil {
		return fmt.Errorf("run %s: %w", ref, err)
	}
	if a.fsys != "auto" {
		p, err := providerFor(st, a.fsys)
		if err != nil {
			return err
		}
		opts = append(opts, builder.WithProvider(p))
	}
	opts = append(opts, builder.WithConsole(e.stderr))
	r, err := builder.OpenRunner(ctx, st, opts...)
	if err != nil {
		return err
	}
	ro := builder.RunOptions{
		Name: ref.Name, Base: img, BaseName: ref.WithPlatform(d.Platform).String(), Platform: *d.Platform,
		Process: builder.Process{
			Args: command, Env: a.envVars, Cwd: a.workdir, User: user, Mounts: mounts, Network: a.network == "host",
			Timeout: a.timeout, Stdout: e.stdout, Stderr: e.stderr,
		},
		KeepFailed: a.keep,
	}
	if a.interactive || a.tty {
		ro.Process.Stdin = e.stdin
	}
	if a.tty {
		ro.Process.Terminal = true
	}
	c := builder.Commit{CreatedBy: "serpent-oci run -- " + strings.Join(command, " "), Tag: tag}
	if tag != nil {
		ro.Output.Capture = builder.CaptureLayer
	}
	res, err := builder.RunAndCommit(ctx, r, ro, c)
	if err != nil {
		return err
	}
	if tag != nil {
		fmt.Fprintf(e.stderr, "%s %s\n", tag.WithPlatform(res.Descriptor.Platform), res.Descriptor.Digest)
	}
	return nil
}

// callerEnv reads -e values as podman does: KEY=VALUE as it is, KEY alone as the caller's
// value of KEY (left out when the caller has none).
func callerEnv(vars []string, lookup func(string) (string, bool)) ([]string, error) {
	var out []string
	for _, kv := range vars {
		key, _, hasValue := strings.Cut(kv, "=")
		if key == "" {
			return nil, usagef("-e %q: want KEY=VALUE or KEY", kv)
		}
		if hasValue {
			out = append(out, kv)
		} else if v, ok := lookup(key); ok {
			out = append(out, key+"="+v)
		}
	}
	return out, nil
}

// parseVolumes reads SRC:DST[:ro] bind specifications.
func parseVolumes(specs []string) ([]builder.Mount, error) {
	var out []builder.Mount
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
		out = append(out, builder.Mount{Source: src, Destination: parts[1], ReadOnly: len(parts) == 3 && parts[2] == "ro"})
	}
	return out, nil
}

// exitCodeError carries an exit code of the run's own choosing.
type exitCodeError struct {
	code   int
	err    error
	silent bool // the code says it all (a command's own exit status, as podman run)
}

func (e *exitCodeError) Error() string { return e.err.Error() }
func (e *exitCodeError) Unwrap() error { return e.err }

func providerFor(st *store.Store, name string) (rootfs.Provider, error) {
	if name == "copy" {
		return rootfs.Copy{}, nil
	}
	return builder.OverlayProvider(st)
}

// isTerminal reports whether r is a terminal.
func isTerminal(r io.Reader) bool {
	f, ok := r.(*os.File)
	if !ok {
		return false
	}
	_, err := unix.IoctlGetTermios(int(f.Fd()), unix.TCGETS)
	return err == nil
}

func binfmtCommand() *command {
	var install bool
	return &command{
		name:    "binfmt",
		noStore: true,
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
