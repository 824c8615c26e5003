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
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
	"github.com/serpent-os/serpent-oci/builder/baseimage"
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
	// Resolve is a cache hit whose image no step needs (an ancestor of another hit): only its
	// digest, read from its manifest, is used, for the keys after it; nothing is downloaded.
	Resolve Action = "resolve"
	Build   Action = "build"
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
	// SeedLock, when set, pins the host-packages stages (the seed): a seed the store has is
	// used only when it holds the lock's versions, one made installs exactly those, and a
	// seed is never taken from a cache (--seed-lock FILE; SeedLockName is FILE).
	SeedLock     *SeedLock
	SeedLockName string
	// Registry, when set, resolves `from: image:REF` that the store lacks and REF names a
	// registry (REGISTRY/REPO:TAG), and pulls from CacheFrom.
	Registry *registry.Client
	// RecipeSource is org.opencontainers.image.source of the stages (where the recipes
	// live; EmbeddedSource for the built-in set, "" to leave it out).
	RecipeSource string
	// CacheFrom are repositories of stage images by cache key, asked in order for a stage
	// the store lacks (--cache-from).
	CacheFrom []*registry.Cache
	// Accelerator is a one-layer image (a store tag or registry reference) of host-native
	// tools for the targets (issue 17's accelerator; experimental, off when empty). A stage
	// whose recipe says accelerate: true and that runs emulated gets its tree read-only at
	// AcceleratorDir, first on PATH; it keeps the emulated build's key (stepKey).
	Accelerator string
	// BuildAccelerator: an Accelerator the store lacks that a stage of the set makes (its
	// NAME-for-TARGET tag) is planned and built first, when a stage is to be built with it.
	// Without it, such an accelerator is an error that names the stage (verify and shell
	// run on what is there).
	BuildAccelerator bool
}

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

// Plan is the graph of the stages target needs, for each platform, in build order, with the
// decision for each: reuse the store's image, pull it or resolve it from a cache, or build it.
func Plan(ctx context.Context, opts PlanOptions, target string) (*Graph, error) {
	if opts.Host.OS == "" {
		opts.Host = platform.Host()
	}
	if len(opts.Platforms) == 0 {
		return nil, errors.New("plan: no target platform given (--platform)")
	}
	chain, err := opts.Set.Chain(target)
	if err != nil {
		return nil, err
	}
	for _, r := range opts.Rebuild {
		if _, ok := opts.Set.Recipes[r]; !ok {
			return nil, fmt.Errorf("--rebuild %s: no such stage (stages: %s)", r, strings.Join(opts.Set.Names(), ", "))
		}
	}
	accel, pending, err := findAccelerator(ctx, opts)
	if err != nil {
		return nil, err
	}
	var accelInput *Input
	switch {
	case accel != nil:
		accelInput = &Input{Found: accel}
	case pending != nil:
		accelInput = &Input{} // its vertex is planned once the plan shows a step needs it
	}
	pl := &planner{opts: opts, hostImages: map[string]*Step{}, planned: map[string]*Step{}}
	for _, target := range opts.Platforms {
		if err := pl.chain(ctx, chain, target, accelInput); err != nil {
			return nil, err
		}
	}
	if pending != nil {
		if err := pl.acceleratorFirst(ctx, pending, accelInput); err != nil {
			return nil, err
		}
	}
	if err := fetchOnlyWhatIsNeeded(ctx, opts, pl.steps, target); err != nil {
		return nil, err
	}
	g := &Graph{decisions: make(map[*Vertex]Decision, len(pl.steps))}
	for _, s := range pl.steps {
		g.vertices = append(g.vertices, s.Vertex)
		g.decisions[s.Vertex] = s.Decision
	}
	return g, nil
}

// planner collects the steps of a plan: one per image, whichever chains need it. Its steps
// are the plan while it is made; Plan hands out the graph they make.
type planner struct {
	opts       PlanOptions
	steps      []*Step
	hostImages map[string]*Step // steps that make a from: host-packages image, by tag
	planned    map[string]*Step // the other steps, by tag
}

// chain plans chain's stages for target, after what is planned already (a stage planned
// before is not planned again: the later ones build on it), accelerated by accel.
func (pl *planner) chain(ctx context.Context, chain []*stages.Recipe, target v1.Platform, accel *Input) error {
	forHost := builtForHost(chain)
	var prev *Step
	for i, r := range chain {
		p := target
		if i < forHost {
			p = pl.opts.Host // the base of a base-target: host stage, and what it is built from
		}
		t, ok := pl.opts.Set.Target(p)
		if !ok {
			if i < forHost {
				return fmt.Errorf("%s: stage %s builds its base for the host (base-target: host), and the host's platform %s has no row in the recipe set's %s",
					chain[forHost].File, chain[forHost].Name, platform.String(p), stages.TargetsFile)
			}
			return fmt.Errorf("platform %s has no row in the recipe set's %s", platform.String(p), stages.TargetsFile)
		}
		if !r.Supports(p) {
			return fmt.Errorf("%s: stage %s does not support %s (platforms: %s)", r.File, r.Name, platform.String(p), platformList(r.Platforms))
		}
		if r.From.Kind == stages.FromHostPackages { // the target itself (build seed)
			made, isNew, err := hostPackagesStep(ctx, pl.opts, r, pl.opts.Host, pl.hostImages)
			if err != nil {
				return err
			}
			if isNew {
				pl.steps = append(pl.steps, made)
			}
			prev = made
			continue
		}
		s := &Step{Vertex: &Vertex{Recipe: r, Target: t, RecipeDigest: RecipeDigest(r)}}
		if prev != nil {
			s.BaseInput.Vertex = prev.Vertex
		}
		s.RunsOn = pl.opts.Host
		if r.RunsOn == stages.OnTarget {
			s.RunsOn = p
		}
		s.Output = s.RunsOn
		if r.Output.Kind == stages.Rootfs && !r.Output.ForHost {
			s.Output = p
		}
		s.Tag = TagFor(pl.opts.Set.Profile, r.Name, p, s.Output)
		if same := pl.planned[s.Tag.String()]; same != nil {
			prev = same
			continue
		}
		if r.From.Kind == stages.FromImage {
			made, isNew, err := hostImageStep(ctx, pl.opts, r, s.RunsOn, pl.hostImages)
			if err != nil {
				return err
			}
			if made != nil {
				if isNew {
					pl.steps = append(pl.steps, made)
				}
				prev, s.BaseInput.Vertex = made, made.Vertex
			}
		}
		if err := resolveBase(ctx, pl.opts, s, prev); err != nil {
			return err
		}
		if accel != nil && r.Accelerate && !platform.Equal(s.RunsOn, pl.opts.Host) {
			s.AcceleratorInput = accel
			s.accelerator = accel.Found
		}
		if err := decide(ctx, pl.opts, s); err != nil {
			return err
		}
		pl.steps = append(pl.steps, s)
		pl.planned[s.Tag.String()] = s
		prev = s
	}
	return nil
}

// builtForHost is how many of chain's first recipes are built for the host rather than the
// target: those before the last stage whose base is built for the host (base-target: host).
func builtForHost(chain []*stages.Recipe) int {
	n := 0
	for i, r := range chain {
		if r.From.ForHost {
			n = i
		}
	}
	return n
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
func hostImageStep(ctx context.Context, opts PlanOptions, r *stages.Recipe, host v1.Platform, made map[string]*Step) (s *Step, isNew bool, err error) {
	name, byUser := imageName(opts, r)
	mr, ok := opts.Set.Recipes[name]
	if byUser || !ok || mr.From.Kind != stages.FromHostPackages {
		return nil, false, nil
	}
	return hostPackagesStep(ctx, opts, mr, host, made)
}

// hostPackagesStep is the step that makes mr, a from: host-packages stage, on host: tagged
// NAME@HOST (the image from: image:NAME names), reused when the store has it.
func hostPackagesStep(ctx context.Context, opts PlanOptions, mr *stages.Recipe, host v1.Platform, made map[string]*Step) (s *Step, isNew bool, err error) {
	name := mr.Name
	if !mr.Supports(host) {
		return nil, false, fmt.Errorf("%s: stage %s is not made for host %s (platforms: %s)", mr.File, mr.Name, platform.String(host), platformList(mr.Platforms))
	}
	tag := store.Ref{Name: name}.WithPlatform(&host) // the image image:NAME names, for this host
	if s := made[tag.String()]; s != nil {
		return s, false, nil
	}
	s = &Step{
		Vertex:   &Vertex{Recipe: mr, Target: stages.Target{Platform: host}, RunsOn: host, Output: host, Tag: tag, RecipeDigest: RecipeDigest(mr)},
		Decision: Decision{Base: "host packages"},
	}
	s.Key = Key(s.RecipeDigest, v1.Hash{}, s.Target, host, opts.Epoch)
	d, err := opts.Store.Resolve(tag)
	switch {
	case err == nil && opts.SeedLock != nil && !slices.Contains(opts.Rebuild, name) && len(opts.SeedLock.differences(storedInstalled(opts.Store, d))) > 0:
		s.Existing, s.Action, s.Reason = &d, Build, "the store's holds other versions than --seed-lock "+opts.SeedLockName
	case err == nil && !slices.Contains(opts.Rebuild, name):
		s.Existing, s.Action, s.Reason = &d, Reuse, "in the store"
	case err == nil:
		s.Existing, s.Action, s.Reason = &d, Build, "--rebuild "+name
	case errors.Is(err, store.ErrNotFound):
		s.Action, s.Reason = Build, "not in the store"
		if !opts.NoCache && !slices.Contains(opts.Rebuild, name) && opts.SeedLock == nil {
			if err := lookInCaches(ctx, opts, s); err != nil {
				return nil, false, err
			}
		}
	default:
		return nil, false, err
	}
	made[tag.String()] = s
	return s, true, nil
}

// onPackages makes the base of a stage built on packages:STAGE, once its base stage's image
// is known: the root assembled from that image's packages (nothing for another stage).
func (s *Step) onPackages(ctx context.Context, opts PlanOptions) error {
	if !s.Recipe.From.Packages || s.BaseImage == nil {
		return nil
	}
	b := s.BaseVertex()
	root, pkgs, err := packagesRoot(ctx, opts, b.Tag.String(), s.BaseImage, b.Output)
	if err != nil {
		return fmt.Errorf("stage %s: %w", s.Name(), err)
	}
	s.basePackages = pkgs
	d, err := root.Digest()
	if err != nil {
		return err
	}
	s.Decision.Base = "packages:" + b.Tag.String()
	s.BaseImage, s.BaseDigest = root, d
	return nil
}

func resolveBase(ctx context.Context, opts PlanOptions, s *Step, prev *Step) error {
	r := s.Recipe
	if r.From.Kind == stages.FromStage || (s.BaseVertex() != nil && s.BaseVertex().Recipe.From.Kind == stages.FromHostPackages) {
		s.Decision.Base = prev.Tag.String()
		if r.From.Packages {
			s.Decision.Base = "packages:" + s.Decision.Base // also while the base is still to be built
		}
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
		case prev.Action == Pull || prev.Action == Resolve:
			if r.From.Packages {
				return fmt.Errorf("%s: stage %s is built on the packages of %s, which this build takes from a cache (%s) without its packages: build %s here (--rebuild %s)",
					r.File, r.Name, prev.Name(), prev.Action, prev.Name(), prev.Name())
			}
			s.BaseImage, s.BaseDigest = prev.Cached, prev.CachedDigest // a resolved record's image is nil
		}
		return s.onPackages(ctx, opts)
	}
	name, _ := imageName(opts, r)
	b, err := baseimage.Find(ctx, opts.Store, opts.Registry, name, s.RunsOn)
	if err != nil {
		hint := ""
		if errors.Is(err, store.ErrNotFound) {
			hint = " (import or pull it into the store first)"
		}
		return fmt.Errorf("%s: stage %s starts from image %s: %w%s", r.File, r.Name, name, err, hint)
	}
	s.BaseInput = Input{Found: &b}
	s.Decision.Base, s.BaseImage, s.BaseDigest = b.Name, b.Image, b.Digest
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
		s.Action, s.Reason = Build, "base "+s.BaseVertex().Name()+" is rebuilt first"
		return nil
	}
	s.Key = stepKey(s, opts.Epoch)
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
	accelOnly, err := acceleratedOnly(opts.Store, s.Existing.Digest)
	if err != nil {
		return err
	}
	switch {
	case a[AnnotationKey] == s.Key && accelOnly && s.AcceleratorInput == nil:
		// An emulated build is the reference: an image only accelerated builds have made
		// stands in for it once an emulated build has given the same bytes.
		s.Action, s.Reason = Build, reasonAcceleratedOnly
	case a[AnnotationKey] == s.Key:
		s.Action, s.Reason = Reuse, "same key"
	case a[AnnotationRecipeDigest] != s.RecipeDigest:
		s.Action, s.Reason = Build, "recipe changed"
	case a[ocispec.AnnotationBaseImageDigest] != s.BaseDigest.String():
		s.Action, s.Reason = Build, "base changed"
	case a[AnnotationAccelerator] != "":
		s.Action, s.Reason = Build, "built with an accelerator by an older serpent-oci"
	default:
		s.Action, s.Reason = Build, "target, host, epoch or builder version changed"
	}
	if s.Action == Build {
		return lookInCaches(ctx, opts, s)
	}
	return nil
}

// lookInCaches turns a build into a pull when a cache repository has an image under the
// step's key that says it is that key's image and is for the step's output platform, or else
// into a resolve when an earlier build resolved the key from a cache (the store's record):
// only the manifest is read here, and fetchOnlyWhatIsNeeded decides what is downloaded.
func lookInCaches(ctx context.Context, opts PlanOptions, s *Step) error {
	for _, c := range opts.CacheFrom {
		img, ref, err := c.Find(ctx, s.Name(), s.Key)
		if err != nil {
			// A cache that cannot be read is a cache miss, as in BuildKit: the build goes on.
			log.G(ctx).WithError(err).WithFields(log.Fields{"stage": s.Name(), "cache": c.String()}).Warn("cache unreadable: building instead")
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
			log.G(ctx).WithFields(log.Fields{"stage": s.Name(), "image": ref.String(), "key": s.Key, "platform": platform.String(s.Output)}).
				Warn("cache image does not carry the stage's key for its platform: ignored")
			continue
		}
		h, err := img.Digest()
		if err != nil {
			return fmt.Errorf("stage %s: read %s: %w", s.Name(), ref, err)
		}
		s.Action, s.Reason, s.Cached, s.CachedRef, s.CachedDigest = Pull, "in cache "+c.String(), img, ref, h
		return nil
	}
	rec, h, ok := readResolved(ctx, opts.Store, s.Tag)
	if !ok || rec.Key != s.Key || opts.Registry == nil {
		return nil
	}
	ref, err := opts.Registry.ParseReference(rec.Image)
	if err != nil {
		log.G(ctx).WithError(err).WithField("tag", s.Tag.String()).Warn("resolved record names no registry image: ignored")
		return nil
	}
	s.Action, s.Reason, s.CachedRef, s.CachedDigest = Resolve, "resolved from "+ref.Context().String()+" by an earlier build", ref.Context().Digest(h.String()), h
	return nil
}

// fetchOnlyWhatIsNeeded downloads a cache hit only where an image is needed: the target's own,
// and the base of a stage that is built. Every other hit is only resolved (its digest keys the
// stages after it), as BuildKit exports only the result of a cached chain. It sets each
// pull's download size.
func fetchOnlyWhatIsNeeded(ctx context.Context, opts PlanOptions, steps []*Step, target string) error {
	needed := map[*Vertex]bool{}
	for _, s := range steps {
		if s.Name() == target {
			needed[s.Vertex] = true
		}
		if s.Action == Build && s.BaseVertex() != nil {
			needed[s.BaseVertex()] = true
		}
		if s.Accelerated() && s.AcceleratorInput.Vertex != nil {
			needed[s.AcceleratorInput.Vertex] = true // mounted into the stage's run
		}
	}
	for _, s := range steps {
		switch {
		case s.Action == Pull && !needed[s.Vertex]:
			s.Action, s.Reason = Resolve, s.Reason+": only its digest is needed"
		case s.Action == Resolve && needed[s.Vertex], s.Action == Pull:
			if err := s.needImage(ctx, opts); err != nil {
				return err
			}
		}
	}
	return nil
}

// needImage makes s a pull (a resolved step's image is needed: something runs on it), with its
// download size.
func (s *Step) needImage(ctx context.Context, opts PlanOptions) error {
	if s.Cached == nil {
		img, err := opts.Registry.Image(ctx, s.CachedRef, s.Output)
		if err != nil {
			return fmt.Errorf("stage %s: its image is needed, and %s (where an earlier build resolved it) cannot serve it: %w (build with --cache-from, or --rebuild %s)", s.Name(), s.CachedRef, err, s.Name())
		}
		if h, err := img.Digest(); err != nil || h != s.CachedDigest {
			return fmt.Errorf("stage %s: %s is not %s", s.Name(), s.CachedRef, s.CachedDigest)
		}
		s.Cached = img
	}
	n, err := missingBytes(opts.Store, s.Cached)
	if err != nil {
		return fmt.Errorf("stage %s: read %s: %w", s.Name(), s.CachedRef, err)
	}
	s.Action, s.Download = Pull, n
	s.Reason = strings.TrimSuffix(s.Reason, ": only its digest is needed")
	return nil
}

// missingBytes is what a pull of img into st downloads: its manifest, and its config and layers
// the store lacks.
func missingBytes(st *store.Store, img v1.Image) (int64, error) {
	raw, err := img.RawManifest()
	if err != nil {
		return 0, err
	}
	m, err := img.Manifest()
	if err != nil {
		return 0, err
	}
	n := int64(len(raw))
	for _, d := range append([]v1.Descriptor{m.Config}, m.Layers...) {
		if !st.HasBlob(d.Digest) {
			n += d.Size
		}
	}
	return n, nil
}
