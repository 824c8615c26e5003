package build

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"

	"github.com/serpent-os/serpent-oci/builder"
	"github.com/serpent-os/serpent-oci/oci/platform"
)

// ShellOptions is a command run where a stage's script would run.
type ShellOptions struct {
	Args     []string // default: /bin/sh
	Env      []string // added after the stage's own environment (later keys win)
	Stdin    io.Reader
	Terminal bool // interactive: the command gets a terminal
	// Stdout and Stderr, when set, get the command's output as it is (no console prefix);
	// the run's log still gets both.
	Stdout, Stderr io.Writer
}

// Shell runs a command in stage's build environment, for the one platform of opts: in the image
// the stage builds on (built first, as Run would, when the store lacks it), with the stage's
// recipe at /recipe, its sources at /sources, its cache mounts and its environment. Nothing is
// captured or tagged: it is for looking into a recipe (a shell where a failed script ran, or
// the first part of a long script, which is how CI checks that LLVM's cross build configures).
func Shell(ctx context.Context, opts Options, stage string, so ShellOptions) (builder.Result, error) {
	if len(opts.Platforms) != 1 {
		return builder.Result{}, fmt.Errorf("shell %s: want one target platform, got %d", stage, len(opts.Platforms))
	}
	g, err := Plan(ctx, opts.PlanOptions, stage)
	if err != nil {
		return builder.Result{}, err
	}
	steps := g.Steps() // the shell's copy: its base's decision may change below
	last := steps[len(steps)-1]
	// The stage's own sources too, whether or not its image is to be built: the shell gets
	// them at /sources as its script does.
	paths, err := fetchSources(ctx, opts.Sources, steps[:len(steps)-1])
	if err == nil {
		err = fetchStepSources(ctx, opts.Sources, &last, paths)
	}
	if err != nil {
		return builder.Result{}, err
	}
	for i := range steps[:len(steps)-1] {
		if b := &steps[i]; b.Vertex == last.BaseVertex() && b.Action == Resolve {
			if err := b.needImage(ctx, opts.PlanOptions); err != nil { // the shell runs on it
				return builder.Result{}, err
			}
		}
	}
	rep, err := runSteps(ctx, opts, steps[:len(steps)-1], paths)
	if err != nil {
		return builder.Result{}, err
	}
	made := rep.byVertex()
	if b := last.BaseVertex(); b != nil {
		// The base is in the store now, whether reused, built or pulled just before.
		if last.BaseImage, err = opts.Store.ImageByDigest(made[b].Descriptor); err != nil {
			return builder.Result{}, err
		}
	}
	if last.accelerator, err = acceleratorOf(opts.Store, &last, made); err != nil {
		return builder.Result{}, fmt.Errorf("shell %s: --accelerator %s: %w", stage, opts.Accelerator, err)
	}
	if last.BaseImage == nil {
		return builder.Result{}, errors.New("shell " + stage + ": its base image is not known")
	}
	ro, recipeDir, err := stageRunOptions(opts, &last, paths)
	defer os.RemoveAll(recipeDir)
	if err != nil {
		return builder.Result{}, err
	}
	ro.Name = stage + "-shell"
	ro.Process.Args = []string{"/bin/sh"}
	if len(so.Args) > 0 {
		ro.Process.Args = so.Args
	}
	ro.Process.Env = append(ro.Process.Env, so.Env...)
	ro.Process.Stdin, ro.Process.Terminal = so.Stdin, so.Terminal
	ro.Process.Stdout, ro.Process.Stderr = so.Stdout, so.Stderr
	ro.Output.Capture = builder.CaptureNone
	res, err := opts.Runner.Run(ctx, ro)
	if err != nil {
		return res, fmt.Errorf("shell %s for %s: %w", stage, platform.String(last.Target.Platform), err)
	}
	return res, nil
}
