package build

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/containerd/log"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/serpent-os/serpent-oci/builder/baseimage"
	"github.com/serpent-os/serpent-oci/oci/platform"
	"github.com/serpent-os/serpent-oci/oci/store"
	"github.com/serpent-os/serpent-oci/stages"
)

// The accelerator: a one-layer image of host-native tools (clang, lld, ...) for a target,
// mounted read-only into a stage that runs emulated so that its compiles run at native speed.
// It is an input of the stage's vertex like its base (AcceleratorInput), found in the store or
// a registry or made by a vertex planned before the first accelerated one; it is not part of
// the stage's key, since what the stage makes must be the emulated build's bytes.

// AcceleratorDir is where an accelerated stage's container has the accelerator's tree.
const AcceleratorDir = "/serpent/accelerator"

// findAccelerator resolves opts.Accelerator for the host (nil when none is given). An
// accelerator the store lacks that a stage of the set makes is, with BuildAccelerator, to be
// built first: pending says which.
func findAccelerator(ctx context.Context, opts PlanOptions) (found *baseimage.Found, pending *acceleratorStage, err error) {
	if opts.Accelerator == "" {
		return nil, nil, nil
	}
	f, err := baseimage.Find(ctx, opts.Store, opts.Registry, opts.Accelerator, opts.Host)
	if err != nil {
		if a := stageMakingAccelerator(opts); a != nil && errors.Is(err, store.ErrNotFound) {
			if opts.BuildAccelerator {
				return nil, a, nil
			}
			return nil, nil, fmt.Errorf("--accelerator %s: %w; stage %s", opts.Accelerator, err, a)
		}
		return nil, nil, fmt.Errorf("--accelerator %s: %w", opts.Accelerator, err)
	}
	if err := checkAccelerator(f); err != nil {
		return nil, nil, fmt.Errorf("--accelerator %s: %w", opts.Accelerator, err)
	}
	return &f, nil, nil
}

// checkAccelerator refuses an accelerator that is not one tree to mount.
func checkAccelerator(f baseimage.Found) error {
	m, err := f.Image.Manifest()
	if err != nil {
		return err
	}
	if len(m.Layers) != 1 {
		return fmt.Errorf("%d layers: want a one-layer image of the tools (a rootfs output)", len(m.Layers))
	}
	return nil
}

// acceleratorStage is the stage of the recipe set that makes an accelerator: its recipe, the
// target it makes it for, and its tag.
type acceleratorStage struct {
	recipe *stages.Recipe
	target v1.Platform
	tag    store.Ref
	cmd    string // the command that builds it
}

// String says it as an error's hint: "llvm-accel makes it: serpent-oci build llvm-accel
// --profile full --platform linux/arm64".
func (a *acceleratorStage) String() string { return a.recipe.Name + " makes it: " + a.cmd }

// stageMakingAccelerator finds the stage of the set whose image opts.Accelerator names
// (NAME-for-TARGET, output for: host), or nil.
func stageMakingAccelerator(opts PlanOptions) *acceleratorStage {
	if opts.Set == nil {
		return nil
	}
	name, _, _ := strings.Cut(opts.Accelerator, "@")
	for _, rn := range opts.Set.Names() {
		r := opts.Set.Recipes[rn]
		if !r.Output.ForHost {
			continue
		}
		for _, p := range r.Platforms {
			tag := TagFor(opts.Set.Profile, r.Name, p, opts.Host)
			if tag.Name != name {
				continue
			}
			cmd := "serpent-oci build " + r.Name
			if opts.Set.Profile != "" && opts.Set.Profile != stages.DefaultProfile {
				cmd += " --profile " + opts.Set.Profile
			}
			return &acceleratorStage{recipe: r, target: p, tag: tag, cmd: cmd + " --platform " + platform.String(p)}
		}
	}
	return nil
}

// acceleratorFirst plans the accelerator a's chain when a planned step is to be built with
// it, ahead of the first such step (after the steps it shares with the plan), and makes the
// vertex that makes it the steps' accelerator input. With none to build, the accelerator is
// left alone: nothing needs it.
func (pl *planner) acceleratorFirst(ctx context.Context, a *acceleratorStage, pending *Input) error {
	first := slices.IndexFunc(pl.steps, func(s *Step) bool { return s.Accelerated() })
	if first < 0 {
		for _, s := range pl.steps {
			s.AcceleratorInput = nil
		}
		return nil
	}
	chain, err := pl.opts.Set.Chain(a.recipe.Name)
	if err != nil {
		return err
	}
	before := slices.Clone(pl.steps)
	if err := pl.chain(ctx, chain, a.target, nil); err != nil {
		return fmt.Errorf("--accelerator %s: %w", pl.opts.Accelerator, err)
	}
	added := pl.steps[len(before):]
	made := pl.planned[a.tag.String()]
	if made == nil {
		return fmt.Errorf("--accelerator %s: planning %s made no %s", pl.opts.Accelerator, a.recipe.Name, a.tag)
	}
	// The accelerator's chain runs on what it shares with the plan (the seed, a stage1):
	// those must come before the first accelerated step, as bases come before stages.
	for _, s := range added {
		if b := s.BaseVertex(); b != nil && !slices.ContainsFunc(added, func(o *Step) bool { return o.Vertex == b }) &&
			slices.IndexFunc(before, func(o *Step) bool { return o.Vertex == b }) > first {
			return fmt.Errorf("--accelerator %s: %s builds on %s, which the plan builds after the first accelerated stage: build it first (%s)", pl.opts.Accelerator, a.recipe.Name, b.Tag, a.cmd)
		}
	}
	pl.steps = slices.Concat(before[:first], added, before[first:])
	pending.Vertex = made.Vertex
	return nil
}

// stepKey is s's cache key over its base. An accelerated step has the emulated build's key:
// the accelerator is a tool the build ran, not an input of what it makes, and what it makes
// must be the emulated build's bytes. That it was accelerated is recorded beside the image,
// in its SBOM referrer (AnnotationAccelerator), and acceleratedOnly keeps such an image from
// standing in for an emulated build until an emulated build has made it too.
func stepKey(s *Step, epoch time.Time) string {
	return Key(s.RecipeDigest, s.BaseDigest, s.Target, s.RunsOn, epoch)
}

// reasonAcceleratedOnly is why a step is built when its image was made by accelerated
// builds only.
const reasonAcceleratedOnly = "built with an accelerator only, not yet emulated"

// acceleratedOnly says whether every build that made the image d in st ran with an
// accelerator: d has SBOMs and each names one. An image with an SBOM of an emulated build (or
// none: pulled or made before SBOMs) is not.
func acceleratedOnly(st *store.Store, d v1.Hash) (bool, error) {
	sboms, err := st.Referrers(d, SPDXMediaType)
	if err != nil {
		return false, fmt.Errorf("read the SBOMs of %s: %w", d, err)
	}
	for _, r := range sboms {
		if r.Annotations[AnnotationAccelerator] == "" {
			return false, nil
		}
	}
	return len(sboms) > 0, nil
}

// acceleratorOf is the accelerator step s is built with: the one found when planned, or the
// one its vertex made in this build (made holds what each vertex made).
func acceleratorOf(st *store.Store, s *Step, made map[*Vertex]StepResult) (*baseimage.Found, error) {
	in := s.AcceleratorInput
	switch {
	case in == nil:
		return nil, nil
	case in.Found != nil:
		return in.Found, nil
	}
	res, ok := made[in.Vertex]
	if in.Vertex == nil || !ok || res.Resolved {
		return nil, errors.New("its stage did not run before this one")
	}
	d := res.Descriptor
	img, err := st.ImageByDigest(d)
	if err != nil {
		return nil, err
	}
	f := baseimage.Found{Image: img, Digest: d.Digest, Name: in.Vertex.Tag.String()}
	if err := checkAccelerator(f); err != nil {
		return nil, fmt.Errorf("%s: %w", in.Vertex.Tag, err)
	}
	return &f, nil
}

// logEmulatedAgainstAccelerated says what an emulated build of s, made because only
// accelerated builds had made its image before, shows: the same bytes (the accelerator is
// proven for this stage) or not.
func logEmulatedAgainstAccelerated(ctx context.Context, s *Step, made v1.Descriptor) {
	fields := log.Fields{"stage": s.Name(), "platform": platform.String(s.Target.Platform), "accelerated": s.Existing.Digest.String(), "emulated": made.Digest.String()}
	if made.Digest == s.Existing.Digest {
		log.G(ctx).WithFields(fields).Info("the emulated build made the accelerated build's image: the same bytes")
		return
	}
	log.G(ctx).WithFields(fields).Warn("the emulated build differs from the accelerated one: the accelerator changed what was built")
}
