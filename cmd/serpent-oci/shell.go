package main

import (
	"context"
	"os"

	"github.com/serpent-os/serpent-oci/builder"
	"github.com/serpent-os/serpent-oci/builder/build"
	"github.com/spf13/pflag"
)

func shellCommand() *command {
	var (
		g        graphFlags
		envVars  []string
		progress string
		keep     bool
	)
	return &command{
		name:    "shell",
		args:    "STAGE [-- COMMAND [ARG...]]",
		summary: "Run a shell (or a command) where a stage's script would run, tagging nothing",
		long: `The command runs in STAGE's build environment for one platform: in the image the stage
builds on (the stages before it are built first, as build would, when the store lacks them),
with the stage's recipe files at /recipe, its sources at /sources, its cache directories
mounted, and its environment (TARGET, SERPENT_TARGET_CFLAGS, JOBS and the recipe's env). What
the command changes is thrown away: nothing is captured or tagged. For looking into a recipe:
a shell where a failed script ran, or running a part of a long one. Without a COMMAND, an
interactive /bin/sh (with a terminal when standard input is one). The command's output goes to
standard output and standard error as it is (the stages built first report on standard error),
and serpent-oci exits with the command's status.`,
		example: `serpent-oci shell stage2 --platform linux/arm64
serpent-oci shell llvm --profile full --platform linux/amd64 -e SERPENT_LLVM_STOP_AFTER=configure -- sh -e /recipe/profiles/full/llvm.sh`,
		flags: func(fs *pflag.FlagSet) {
			g.register(fs)
			fs.StringArrayVarP(&envVars, "env", "e", nil, "set KEY=VALUE in the container, after the stage's own (repeatable)")
			fs.BoolVar(&keep, "keep-failed", false, "keep a failed command's files (unmounted) and print where")
			fs.StringVar(&progress, "progress", "auto", "progress output of the stages built first: auto, plain or tty")
		},
		run: func(ctx context.Context, e *env, args []string) error {
			if len(args) < 1 {
				return usagef("shell: want a STAGE (serpent-oci shell STAGE [-- COMMAND])")
			}
			if len(g.plat) > 1 {
				return usagef("shell: want one --platform, got %d", len(g.plat))
			}
			con, err := progressConsole(e, "shell", progress)
			if err != nil {
				return err
			}
			defer con.stop()
			st, err := e.openStore(ctx)
			if err != nil {
				return err
			}
			po, err := g.planOptions(st, con)
			if err != nil {
				return err
			}
			opts, err := g.buildOptions(ctx, po, con, keep)
			if err != nil {
				return err
			}
			// The command's output is its own, on our stdout and stderr, and its exit status
			// is ours (as run's): shell STAGE -- CMD > file captures what CMD prints.
			so := build.ShellOptions{Args: args[1:], Env: envVars, Stdout: e.stdout, Stderr: e.stderr}
			if len(so.Args) == 0 && isTerminal(os.Stdin) {
				so.Stdin, so.Terminal = os.Stdin, true
			}
			_, err = build.Shell(ctx, opts, args[0], so)
			if code, exited := builder.ExitStatus(err); exited {
				return &exitCodeError{code: code, err: err, silent: true}
			}
			return err
		},
	}
}
