package main

import (
	"context"
	"fmt"
	"io"
	"text/tabwriter"
	"time"

	"github.com/serpent-os/serpent-oci/builder"
	"github.com/serpent-os/serpent-oci/images"
	"github.com/serpent-os/serpent-oci/oci/platform"
	"github.com/spf13/pflag"
)

// spinFlags are the flags of `spin build` (and of `build --spin`).
type spinFlags struct {
	plat  platform.List
	tag   string
	push  pushFlags
	pull  bool
	epoch epochFlag
	reg   registryFlags
}

// register adds the flags of `spin build`. (`build --spin` shares build's --platform,
// --source-date-epoch, --push and registry flags, and has none of the others.)
func (f *spinFlags) register(fs *pflag.FlagSet) {
	fs.Var(&f.plat, "platform", "platforms to build, comma-separated (default: the spin's platforms, else the host's)")
	fs.StringVar(&f.tag, "tag", "", "store tag of the result (default: the spin's name)")
	addEpochFlag(fs, &f.epoch, "the time of the result's files and image")
	fs.BoolVar(&f.pull, "pull", false, "resolve the base reference afresh instead of using the digest recorded at the last build")
	f.push.register(fs, "the result")
	f.reg.register(fs)
}

func spinCommand() *command {
	var f spinFlags
	return &command{
		name:    "spin",
		args:    "build FILE",
		summary: "Build a custom image (a spin) layered on a published base",
		long: `A spin is a YAML definition: from (a registry reference or a store tag, optionally pinned
@sha256:...), platforms, and steps in order. copy (files or directories beside the definition,
with to, mode and owner) and run (a script inside the image, under qemu for a foreign
platform, network off unless network: true) each make one layer; env, workdir, entrypoint,
cmd and labels change the config. Every step leaves a history entry; the image carries
org.opencontainers.image.base.name and .base.digest. A step whose base and inputs did not
change reuses its layer. Without --pull the base digest recorded at the last build is used.
See images/examples/.`,
		example: `serpent-oci spin build images/examples/devbox.yaml --platform linux/amd64,linux/arm64
serpent-oci spin build my-spin.yaml --pull --push registry.example/me/spin:1
serpent-oci spin build my-spin.yaml -t registry.example/me/spin:1 -t registry.example/me/spin:latest --push`,
		flags:       f.register,
		rewriteArgs: joinPushValue,
		run: func(ctx context.Context, e *env, args []string) error {
			if len(args) != 2 || args[0] != "build" {
				return usagef("spin: want build FILE")
			}
			return f.build(ctx, e, args[1])
		},
	}
}

func (f *spinFlags) build(ctx context.Context, e *env, file string) error {
	pushRefs, err := f.push.references("spin", f.reg.client(io.Discard).ParseReference)
	if err != nil {
		return err
	}
	s, err := images.Load(file)
	if err != nil {
		return err
	}
	epoch, err := f.epoch.Time()
	if err != nil {
		return err
	}
	client := f.reg.client(e.stderr)
	st, err := e.openStore(ctx)
	if err != nil {
		return err
	}
	runner, err := builder.OpenRunner(ctx, st, builder.WithConsole(e.stderr))
	if err != nil {
		return err
	}
	opts := images.Options{
		Store: st, Runner: runner, Registry: client, Platforms: f.plat, Tag: f.tag, Pull: f.pull, Epoch: epoch,
		Events: func(ev images.Event) {
			what := "done"
			if ev.Reused {
				what = "reused"
			}
			fmt.Fprintf(e.stderr, "[%s] step %d/%d %s: %s in %s\n", platform.String(ev.Platform), ev.Step.Index+1, len(s.Steps),
				ev.Step.Describe(), what, ev.Took.Round(time.Millisecond))
		},
	}
	results, err := images.Build(ctx, s, opts)
	if len(results) > 0 {
		printSpinSummary(e.stdout, results)
	}
	if err != nil {
		return err
	}
	for _, ref := range pushRefs {
		p, err := images.Push(ctx, opts, results, ref)
		if err != nil {
			return err
		}
		fmt.Fprintf(e.stdout, "pushed %s@%s (%s uploaded)\n", ref.Context(), p.Descriptor.Digest, humanBytes(p.Uploaded))
	}
	return nil
}

func printSpinSummary(w io.Writer, results []images.Result) {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "TAG\tDIGEST\tBASE\tSTEPS RUN\tREUSED")
	for _, r := range results {
		fmt.Fprintf(tw, "%s\t%s\t%s@%s\t%d\t%d\n", r.Tag, shortDigest(r.Descriptor.Digest), r.BaseName, shortDigest(r.BaseDigest), r.Ran, r.Reused)
	}
	tw.Flush()
}
