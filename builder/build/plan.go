package build

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/containerd/log"
	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/serpent-os/serpent-oci/oci/platform"
	"github.com/serpent-os/serpent-oci/oci/registry"
	"github.com/serpent-os/serpent-oci/oci/store"
	"github.com/serpent-os/serpent-oci/stages"
)

// Action is what a build does with a stage.
type Action string

const (
	Reuse Action = "reuse" // the store's image has the key
	Pull  Action = "pull"  // a --cache-from repository has an image with the key
	Build Action = "build"
)

// PlanOptions is what a plan depends on.
type PlanOptions struct {
	Store     *store.Store
	Set       *stages.Set
	Platforms []v1.Platform // target platforms
	Host      v1.Platform   // default: this machine's
	Epoch     time.Time     // SOURCE_DATE_EPOCH (default: the layer writer's default)
	NoCache   bool          // rebuild every stage
	Rebuild   []string      // rebuild these stages (and so their descendants)
	// Images maps a name used as `from: image:NAME` to the image reference to use instead
	// (`--seed REF` sets "seed").
	Images map[string]string
	// Registry, when set, resolves `from: image:REF` that the store lacks and REF names a
	// registry (REGISTRY/REPO:TAG), and pulls from CacheFrom.
	Registry *registry.Client
	// RecipeSource is org.opencontainers.image.source of the stages (where the recipes
	// live; EmbeddedSource for the built-in set, "" to leave it out).
	RecipeSource string
	// CacheFrom are repositories of stage images by cache key, asked in order for a stage
	// the store lacks (--cache-from).
	CacheFrom []*registry.Cache
}

// Step is one stage for one target platform.
type Step struct {
	Recipe *stages.Recipe
	Target stages.Target // the target platform and its variables
	RunsOn v1.Platform   // the platform the stage's container runs on
	Output v1.Platform   // the platform of the image it makes
	Tag    store.Ref     // where the image is tagged

	Base       string   // how the base is named, for people
	BaseImage  v1.Image // the base, when it is known (an image, or a stage reused)
	BaseDigest v1.Hash  // zero while the base stage is still to be built
	baseStep   *Step

	RecipeDigest string
	Key          string // "" while the base is still to be built
	Action       Action
	Reason       string
	Existing     *v1.Descriptor // what the tag points at now, if anything
	Cached       v1.Image       // with Pull: the image in the cache, read lazily
	CachedRef    name.Reference // with Pull: where
	// Installed are the packages in a host-packages stage's image (for its SBOM).
	Installed []DebianPackage
}

// Name is the stage's name.
func (s *Step) Name() string { return s.Recipe.Name }

// TagFor names the image a stage of profile makes: the stage's name where the image is for
// the target itself, NAME-for-OS-ARCH where it is not (a cross toolchain on the host: stage1
// built on amd64 for arm64 is stage1-for-linux-arm64@linux-amd64, and never collides with the
// stage1 for amd64, stage1@linux-amd64). A profile other than the default puts its name in
// front (full/stage3@linux-arm64), so that the profiles' images never replace each other.
func TagFor(profile, stage string, target, output v1.Platform) store.Ref {
	name := stage
	if !platform.Equal(target, output) {
		name += "-for-" + platform.Slug(target)
	}
	if profile != "" && profile != stages.DefaultProfile {
		name = profile + "/" + name
	}
	return store.Ref{Name: name}.WithPlatform(&output)
}

// Plan lists the stages target needs, for each platform, in build order, and decides for each
// whether the store's image can be reused.
func Plan(ctx context.Context, opts PlanOptions, target string) ([]*Step, error) {
	if opts.Host.OS == "" {
		opts.Host = platform.Host()
	}
	if len(opts.Platforms) == 0 {
		return nil, errors.New("plan: no target platform given (--platform)")
	}
	leaf, ok := opts.Set.Recipes[target]
	if !ok {
		return nil, fmt.Errorf("no stage is named %q (stages: %s)", target, strings.Join(opts.Set.Names(), ", "))
	}
	for _, r := range opts.Rebuild {
		if _, ok := opts.Set.Recipes[r]; !ok {
			return nil, fmt.Errorf("--rebuild %s: no such stage (stages: %s)", r, strings.Join(opts.Set.Names(), ", "))
		}
	}
	var chain []*stages.Recipe
	for r := leaf; ; r = opts.Set.Recipes[r.From.Ref] {
		chain = append([]*stages.Recipe{r}, chain...)
		if r.From.Kind != stages.FromStage {
			break
		}
	}
	var steps []*Step
	hostImages := map[string]*Step{} // steps that make a from: host-packages image, by tag
	for _, p := range opts.Platforms {
		t, ok := opts.Set.Target(p)
		if !ok {
			return nil, fmt.Errorf("platform %s has no row in the recipe set's %s", platform.String(p), stages.TargetsFile)
		}
		var prev *Step
		for _, r := range chain {
			if !r.Supports(p) {
				return nil, fmt.Errorf("%s: stage %s does not support %s (platforms: %s)", r.File, r.Name, platform.String(p), platformList(r.Platforms))
			}
			if r.From.Kind == stages.FromHostPackages { // the target itself (build seed)
				made, isNew, err := hostPackagesStep(opts, r, opts.Host, hostImages)
				if err != nil {
					return nil, err
				}
				if isNew {
					steps = append(steps, made)
				}
				prev = made
				continue
			}
			s := &Step{Recipe: r, Target: t, RecipeDigest: RecipeDigest(r), baseStep: prev}
			s.RunsOn = opts.Host
			if r.RunsOn == stages.OnTarget {
				s.RunsOn = p
			}
			s.Output = s.RunsOn
			if r.Output.Kind == stages.Rootfs {
				s.Output = p
			}
			s.Tag = TagFor(opts.Set.Profile, r.Name, p, s.Output)
			if r.From.Kind == stages.FromImage {
				made, isNew, err := hostImageStep(opts, r, s.RunsOn, hostImages)
				if err != nil {
					return nil, err
				}
				if made != nil {
					if isNew {
						steps = append(steps, made)
					}
					prev, s.baseStep = made, made
				}
			}
			if err := resolveBase(ctx, opts, s, prev); err != nil {
				return nil, err
			}
			if err := decide(ctx, opts, s); err != nil {
				return nil, err
			}
			steps = append(steps, s)
			prev = s
		}
	}
	return steps, nil
}

func platformList(ps []v1.Platform) string {
	var out []string
	for _, p := range ps {
		out = append(out, platform.String(p))
	}
	return strings.Join(out, ", ")
}

// imageName is the image a from: image:NAME recipe builds on: --seed REF (opts.Images) wins
// over the profile's own mapping, which wins over the name.
func imageName(opts PlanOptions, r *stages.Recipe) (name string, givenByUser bool) {
	name = r.From.Ref
	if alias, ok := opts.Images[name]; ok {
		return alias, true
	}
	if alias, ok := opts.Set.Images[name]; ok {
		return alias, false
	}
	return name, false
}

// hostImageStep is the step that makes the image r starts from, when the recipe set says how
// (a from: host-packages stage of that name, such as the seed) and the store lacks it or
// --rebuild names it. An image the store has is used as it is, whoever made it; one the user
// named (--seed) is never made. Several platforms' chains share the step (made reports it new).
func hostImageStep(opts PlanOptions, r *stages.Recipe, host v1.Platform, made map[string]*Step) (s *Step, isNew bool, err error) {
	name, byUser := imageName(opts, r)
	mr, ok := opts.Set.Recipes[name]
	if byUser || !ok || mr.From.Kind != stages.FromHostPackages {
		return nil, false, nil
	}
	return hostPackagesStep(opts, mr, host, made)
}

// hostPackagesStep is the step that makes mr, a from: host-packages stage, on host: tagged
// NAME@HOST (the image from: image:NAME names), reused when the store has it.
func hostPackagesStep(opts PlanOptions, mr *stages.Recipe, host v1.Platform, made map[string]*Step) (s *Step, isNew bool, err error) {
	name := mr.Name
	if !mr.Supports(host) {
		return nil, false, fmt.Errorf("%s: stage %s is not made for host %s (platforms: %s)", mr.File, mr.Name, platform.String(host), platformList(mr.Platforms))
	}
	tag := store.Ref{Name: name}.WithPlatform(&host) // the image image:NAME names, for this host
	if s := made[tag.String()]; s != nil {
		return s, false, nil
	}
	s = &Step{
		Recipe: mr, Target: stages.Target{Platform: host}, RunsOn: host, Output: host, Tag: tag,
		RecipeDigest: RecipeDigest(mr), Base: "host packages",
	}
	s.Key = Key(s.RecipeDigest, v1.Hash{}, s.Target, host, opts.Epoch)
	d, err := opts.Store.Resolve(tag)
	switch {
	case err == nil && !slices.Contains(opts.Rebuild, name):
		s.Existing, s.Action, s.Reason = &d, Reuse, "in the store"
	case err == nil:
		s.Existing, s.Action, s.Reason = &d, Build, "--rebuild "+name
	case errors.Is(err, store.ErrNotFound):
		s.Action, s.Reason = Build, "not in the store"
	default:
		return nil, false, err
	}
	made[tag.String()] = s
	return s, true, nil
}

func resolveBase(ctx context.Context, opts PlanOptions, s *Step, prev *Step) error {
	r := s.Recipe
	if r.From.Kind == stages.FromStage || (s.baseStep != nil && s.baseStep.Recipe.From.Kind == stages.FromHostPackages) {
		s.Base = prev.Tag.String()
		if !platform.Equal(prev.Output, s.RunsOn) {
			return fmt.Errorf("%s: stage %s runs on %s (runs-on: %s) but its base %s makes images for %s",
				r.File, r.Name, platform.String(s.RunsOn), r.RunsOn, prev.Name(), platform.String(prev.Output))
		}
		switch {
		case prev.Action == Reuse && prev.Existing != nil:
			img, err := opts.Store.ImageByDigest(*prev.Existing)
			if err != nil {
				return err
			}
			s.BaseImage, s.BaseDigest = img, prev.Existing.Digest
		case prev.Action == Pull:
			h, err := prev.Cached.Digest()
			if err != nil {
				return fmt.Errorf("%s: %w", prev.CachedRef, err)
			}
			s.BaseImage, s.BaseDigest = prev.Cached, h
		}
		return nil
	}
	name, _ := imageName(opts, r)
	ref, err := store.ParseRef(name)
	if err != nil {
		return fmt.Errorf("%s: from: image:%s: %w", r.File, r.From.Ref, err)
	}
	ref = ref.WithPlatform(&s.RunsOn)
	s.Base = ref.String()
	img, d, err := opts.Store.Image(ref)
	if err == nil {
		s.BaseImage, s.BaseDigest = img, d.Digest
		return nil
	}
	if !errors.Is(err, store.ErrNotFound) || opts.Registry == nil || !registry.LooksRemote(name) {
		return fmt.Errorf("%s: stage %s starts from image %s: %w (import or pull it into the store first)", r.File, r.Name, ref, err)
	}
	rref, perr := opts.Registry.ParseReference(name)
	if perr != nil {
		return fmt.Errorf("%s: from: image:%s: %w", r.File, r.From.Ref, perr)
	}
	s.Base = rref.String()
	if s.BaseImage, err = opts.Registry.Image(ctx, rref, s.RunsOn); err != nil {
		return fmt.Errorf("%s: stage %s starts from image %s: %w", r.File, r.Name, rref, err)
	}
	if s.BaseDigest, err = s.BaseImage.Digest(); err != nil {
		return fmt.Errorf("%s: stage %s: base %s: %w", r.File, r.Name, rref, err)
	}
	return nil
}

// decide sets the step's key, action and reason from what the store holds, and from the
// cache repositories when the store cannot serve.
func decide(ctx context.Context, opts PlanOptions, s *Step) error {
	if d, err := opts.Store.Resolve(s.Tag); err == nil {
		s.Existing = &d
	} else if !errors.Is(err, store.ErrNotFound) {
		return err
	}
	if s.BaseDigest.Hex == "" {
		s.Action, s.Reason = Build, "base "+s.baseStep.Name()+" is rebuilt first"
		return nil
	}
	s.Key = Key(s.RecipeDigest, s.BaseDigest, s.Target, s.RunsOn, opts.Epoch)
	switch {
	case opts.NoCache:
		s.Action, s.Reason = Build, "--no-cache"
		return nil
	case slices.Contains(opts.Rebuild, s.Name()):
		s.Action, s.Reason = Build, "--rebuild "+s.Name()
		return nil
	case s.Existing == nil:
		s.Action, s.Reason = Build, "no image with this key"
		return lookInCaches(ctx, opts, s)
	}
	img, err := opts.Store.ImageByDigest(*s.Existing)
	if err != nil {
		return err
	}
	m, err := img.Manifest()
	if err != nil {
		return fmt.Errorf("read %s: %w", s.Tag, err)
	}
	a := m.Annotations
	switch {
	case a[AnnotationKey] == s.Key:
		s.Action, s.Reason = Reuse, "same key"
	case a[AnnotationRecipeDigest] != s.RecipeDigest:
		s.Action, s.Reason = Build, "recipe changed"
	case a[AnnotationBaseDigest] != s.BaseDigest.String():
		s.Action, s.Reason = Build, "base changed"
	default:
		s.Action, s.Reason = Build, "target, host, epoch or builder version changed"
	}
	if s.Action == Build {
		return lookInCaches(ctx, opts, s)
	}
	return nil
}

// lookInCaches turns a build into a pull when a cache repository has an image under the
// step's key that says it is that key's image and is for the step's output platform.
func lookInCaches(ctx context.Context, opts PlanOptions, s *Step) error {
	for _, c := range opts.CacheFrom {
		img, ref, err := c.Find(ctx, s.Name(), s.Key)
		if err != nil {
			// A cache that cannot be read is a cache miss, as in BuildKit: the build goes on.
			log.G(ctx).WithError(err).Warnf("stage %s: cache %s unreadable: building instead", s.Name(), c)
			continue
		}
		if img == nil {
			continue
		}
		m, err := img.Manifest()
		if err != nil {
			return fmt.Errorf("stage %s: read %s: %w", s.Name(), ref, err)
		}
		cfg, err := img.ConfigFile()
		if err != nil {
			return fmt.Errorf("stage %s: read %s: %w", s.Name(), ref, err)
		}
		if m.Annotations[AnnotationKey] != s.Key || cfg.Platform() == nil || !platform.Equal(*cfg.Platform(), s.Output) {
			log.G(ctx).WithField("image", ref.String()).Warnf("stage %s: cache image does not carry key %s for %s: ignored", s.Name(), s.Key, platform.String(s.Output))
			continue
		}
		s.Action, s.Reason, s.Cached, s.CachedRef = Pull, "in cache "+c.String(), img, ref
		return nil
	}
	return nil
}
