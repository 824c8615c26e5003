package build

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"time"

	"github.com/containerd/log"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/partial"
	"github.com/serpent-os/serpent-oci/builder"
	"github.com/serpent-os/serpent-oci/builder/compilefarm"
	"github.com/serpent-os/serpent-oci/builder/compilercache"
	"github.com/serpent-os/serpent-oci/builder/netns"
	"github.com/serpent-os/serpent-oci/builder/sources"
	"github.com/serpent-os/serpent-oci/oci/image"
	"github.com/serpent-os/serpent-oci/oci/layer"
	"github.com/serpent-os/serpent-oci/oci/platform"
	"github.com/serpent-os/serpent-oci/oci/registry"
	"github.com/serpent-os/serpent-oci/oci/store"
	"github.com/serpent-os/serpent-oci/stages"
)

// Options is a build: a plan's options, and what running it takes.
type Options struct {
	PlanOptions
	Runner     builder.Executor
	Sources    *sources.Cache
	KeepFailed bool
	// CacheTo, when set, receives every stage image under its cache key (--cache-to): built,
	// reused or pulled alike, so that the repository can serve the whole build.
	CacheTo *registry.Cache
	// Events, when set, is told of every step as it starts and ends.
	Events func(Event)
	// CompilerCache, when set, is a Redis server every stage with a cache mount reaches as
	// ccache's remote storage (--compiler-cache): through a socket of the build's, never a
	// network. It changes nothing a stage makes, and no key names it.
	CompilerCache *compilercache.Remote
	// CompileFarm, when set, are distcc helpers every stage whose recipe says distribute
	// reaches, as loopback ports of a network namespace of the build's (--compile-farm). They
	// change nothing a stage makes, and no key names them.
	CompileFarm []compilefarm.Helper

	compilerCache *compilercache.Proxy // serving CompilerCache while the build runs
}

// EventKind says what happened to a step.
type EventKind int

const (
	StepStarted EventKind = iota
	StepDone
)

// Event is a step starting or ending, numbered Index of Total.
type Event struct {
	Kind         EventKind
	Index, Total int
	Step         *Step
	Result       *StepResult // with StepDone
	Estimate     *Estimate   // with StepStarted of a step to build: how long its last build took
}

// StepResult is what a build did with a step.
type StepResult struct {
	Step       *Step
	Descriptor v1.Descriptor
	Size       int64 // compressed size of the image's layers and config
	Took       time.Duration
	Built      bool
	Pulled     bool  // from a --cache-from repository
	Resolved   bool  // a cache hit whose image was not needed: Descriptor is the cache's, not in the store
	Downloaded int64 // with Pulled: the bytes fetched
	CacheBytes int64 // blob bytes uploaded to the --cache-to repository
	// Farm, for a stage built with a compile farm, says what each helper was sent.
	Farm []compilefarm.HelperStats
	Log  string
	Run  builder.Result
}

// Report is a whole build.
type Report struct {
	Steps []StepResult
	Took  time.Duration
}

// Pulled is how many stages came from a cache repository.
func (r *Report) Pulled() int { return r.count(func(s StepResult) bool { return s.Pulled }) }

// Resolved is how many stages were cache hits used by digest alone.
func (r *Report) Resolved() int { return r.count(func(s StepResult) bool { return s.Resolved }) }

// Containers is how many containers the build ran.
func (r *Report) Containers() int { return r.count(func(s StepResult) bool { return s.Built }) }

// byVertex is what the build did with each vertex.
func (r *Report) byVertex() map[*Vertex]StepResult {
	m := make(map[*Vertex]StepResult, len(r.Steps))
	for _, s := range r.Steps {
		m[s.Step.Vertex] = s
	}
	return m
}

func (r *Report) count(is func(StepResult) bool) int {
	n := 0
	for _, s := range r.Steps {
		if is(s) {
			n++
		}
	}
	return n
}

// Downloaded is the bytes the build's pulls fetched.
func (r *Report) Downloaded() int64 {
	var n int64
	for _, s := range r.Steps {
		n += s.Downloaded
	}
	return n
}

// Run builds target for every platform of opts: the plan, then every source of every stage to
// build fetched and checked (before any container starts), then the stages in order. A failing
// stage stops the build; what was built before it stays tagged.
func Run(ctx context.Context, opts Options, target string) (*Report, error) {
	start := time.Now()
	g, err := Plan(ctx, opts.PlanOptions, target)
	if err != nil {
		return nil, err
	}
	return execute(ctx, opts, g, start)
}

// Execute builds the plan g, made by Plan with opts' PlanOptions, as Run does after planning.
// The plan is left as it was: running it again decides again what its run decided.
func Execute(ctx context.Context, opts Options, g *Graph) (*Report, error) {
	return execute(ctx, opts, g, time.Now())
}

func execute(ctx context.Context, opts Options, g *Graph, start time.Time) (*Report, error) {
	steps := g.Steps()
	paths, err := fetchSources(ctx, opts.Sources, steps)
	if err != nil {
		return nil, err
	}
	if opts.CompilerCache != nil && slices.ContainsFunc(steps, func(s Step) bool { return s.Action == Build && len(s.Recipe.Cache) > 0 }) {
		p, stop, err := serveCompilerCache(ctx, opts.Store, opts.CompilerCache)
		if err != nil {
			return nil, err
		}
		defer stop()
		opts.compilerCache = p
	}
	rep, err := runSteps(ctx, opts, steps, paths)
	rep.Took = time.Since(start) // also of a build that failed: its summary says how long it ran
	return rep, err
}

// runSteps runs steps in order (with their sources at paths), as Run does. What each vertex
// made is kept beside the steps, by vertex, for the steps after it.
func runSteps(ctx context.Context, opts Options, steps []Step, paths map[string]string) (*Report, error) {
	rep := &Report{}
	made := map[*Vertex]StepResult{} // what each vertex made, reused, pulled or resolved
	for i := range steps {
		s, err := ready(ctx, opts, steps[i], made)
		if err != nil {
			return rep, err
		}
		if opts.Events != nil {
			ev := Event{Kind: StepStarted, Index: i + 1, Total: len(steps), Step: s}
			if s.Action == Build {
				if e, ok := EstimateOf(ctx, opts.Store, s); ok {
					ev.Estimate = &e
				}
			}
			opts.Events(ev)
		}
		res, err := runStep(ctx, opts, s, paths)
		if err != nil {
			return rep, err
		}
		if res.Built {
			if err := recordBuildTime(ctx, opts.Store, s, res.Took); err != nil {
				// The image is made and tagged: a record that cannot be written costs an
				// estimate, not the build.
				log.G(ctx).WithError(err).WithField("stage", s.Name()).Warn("could not record the build's time")
			}
		}
		if s.Action == Resolve {
			// Not in the store: the store records where it was found, so that later plans
			// continue its chain of keys, and pull it from there when something runs on it.
			if err := writeResolved(opts.Store, s); err != nil {
				return rep, fmt.Errorf("stage %s: record it as resolved from %s: %w", s.Name(), s.CachedRef, err)
			}
		} else if err := finishStored(ctx, opts, s, res.Descriptor); err != nil {
			return rep, err
		}
		if s.Reason == reasonAcceleratedOnly {
			logEmulatedAgainstAccelerated(ctx, s, res.Descriptor)
		}
		if opts.CacheTo != nil && s.Key != "" {
			if err := putInCache(ctx, opts, s, &res); err != nil {
				return rep, err
			}
		}
		made[s.Vertex] = res
		rep.Steps = append(rep.Steps, res)
		if opts.Events != nil {
			opts.Events(Event{Kind: StepDone, Index: i + 1, Total: len(steps), Step: s, Result: &rep.Steps[len(rep.Steps)-1]})
		}
	}
	return rep, nil
}

// ready is step s of a plan as it is run after the steps made (what each vertex made): a step
// that waited for its base to be built is decided now that the base's digest is known (an
// identical rebuild of the base may make it reusable after all); a stage to build on a base
// this build pulled builds on the store's copy; an accelerator made by this build is the one
// mounted. The plan's step is left as it was.
func ready(ctx context.Context, opts Options, s Step, made map[*Vertex]StepResult) (*Step, error) {
	if s.Action != Build {
		return &s, nil
	}
	if b := s.BaseVertex(); b != nil && (s.Key == "" || made[b].Pulled) {
		img, err := opts.Store.ImageByDigest(made[b].Descriptor)
		if err != nil {
			return nil, fmt.Errorf("stage %s: its base %s: %w", s.Name(), b.Tag, err)
		}
		if s.Key != "" {
			s.BaseImage = img // pulled: the same digest, read from the store
			return &s, nil
		}
		s.BaseImage, s.BaseDigest = img, made[b].Descriptor.Digest
		if err := s.onPackages(ctx, opts.PlanOptions); err != nil {
			return nil, err
		}
		if err := decide(ctx, opts.PlanOptions, &s); err != nil {
			return nil, err
		}
		if s.Action == Resolve {
			// The plan could not know what comes after it: fetch it, to be sure.
			if err := s.needImage(ctx, opts.PlanOptions); err != nil {
				return nil, err
			}
		}
	}
	if s.Accelerated() {
		a, err := acceleratorOf(opts.Store, &s, made)
		if err != nil {
			return nil, fmt.Errorf("stage %s: --accelerator %s: %w", s.Name(), opts.Accelerator, err)
		}
		s.accelerator = a
	}
	return &s, nil
}

// namespacedFarm is a compile farm served into a network namespace of its own.
type namespacedFarm struct {
	*compilefarm.Farm
	ns *netns.NS
}

// serveCompileFarm makes a network namespace in st's temporary directory and serves helpers
// into it; stop ends both and logs what each helper was sent.
func serveCompileFarm(ctx context.Context, st *store.Store, helpers []compilefarm.Helper) (f namespacedFarm, stop func(), err error) {
	dir, err := st.TempDir("compile-farm")
	if err != nil {
		return f, nil, err
	}
	if f.ns, err = netns.New(filepath.Join(dir, "net")); err != nil {
		os.RemoveAll(dir)
		return f, nil, fmt.Errorf("--compile-farm: %w", err)
	}
	if f.Farm, err = compilefarm.Serve(ctx, f.ns, helpers); err != nil {
		f.ns.Close()
		os.RemoveAll(dir)
		return f, nil, fmt.Errorf("--compile-farm: %w", err)
	}
	return f, func() {
		for _, h := range f.Stats() {
			log.G(ctx).WithFields(log.Fields{"helper": h.Address, "sent": h.Sent, "failed": h.Failed}).Info("compile farm: what the stage sent the helper")
		}
		f.Close()
		if err := f.ns.Close(); err != nil {
			log.G(ctx).WithError(err).Warn("compile farm: release the network namespace")
		}
		os.RemoveAll(dir)
	}, nil
}

// serveCompilerCache serves r for the build's stages on a socket in st's temporary directory
// (or the system's, where that path is too long for a socket).
// stop ends it, removes the socket and logs what it passed on.
func serveCompilerCache(ctx context.Context, st *store.Store, r *compilercache.Remote) (p *compilercache.Proxy, stop func(), err error) {
	dir, err := st.TempDir("compiler-cache")
	if err != nil {
		return nil, nil, err
	}
	const maxSocketPath = 100 // sun_path is 108 bytes
	if len(dir)+len("/ccache.sock") > maxSocketPath {
		os.RemoveAll(dir)
		if dir, err = os.MkdirTemp("", "serpent-oci-cc"); err != nil {
			return nil, nil, err
		}
	}
	if p, err = compilercache.Serve(ctx, r, filepath.Join(dir, "ccache.sock")); err != nil {
		os.RemoveAll(dir)
		return nil, nil, fmt.Errorf("--compiler-cache: %w", err)
	}
	return p, func() {
		s := p.Stats()
		log.G(ctx).WithFields(log.Fields{"remote": r.String(), "reads": s.Reads, "writes": s.Writes, "refused": s.Refused, "unreachable": s.Unreachable}).Info("compiler cache: what the build's stages asked of it")
		p.Close()
		os.RemoveAll(dir)
	}, nil
}

// finishStored finishes a step whose image d is in the store: its SBOM is stored beside it,
// and a record of it as resolved, if any, is dropped.
func finishStored(ctx context.Context, opts Options, s *Step, d v1.Descriptor) error {
	forgetResolved(opts.Store, s.Tag)
	if s.Action != Build {
		// A reuse or a pull ran nothing: an image only accelerated builds have made gets no
		// SBOM of an emulated build from it.
		if only, err := acceleratedOnly(opts.Store, d.Digest); err != nil || only {
			return err
		}
	}
	var installed []DebianPackage
	if s.Recipe.From.Kind == stages.FromHostPackages {
		installed = storedInstalled(opts.Store, d)
	}
	sbom, err := SBOM(s, d, installed, epochOf(opts.PlanOptions))
	if err != nil {
		return err
	}
	var annotations map[string]string
	if s.Accelerated() {
		annotations = map[string]string{AnnotationAccelerator: s.accelerator.Digest.String()}
	}
	if _, err := opts.Store.WriteReferrer(ctx, d, SPDXMediaType, SPDXMediaType, sbom, annotations); err != nil {
		return fmt.Errorf("stage %s: store its SBOM: %w", s.Name(), err)
	}
	if s.Recipe.Output.Packages != "" {
		if err := writePackageSBOMs(ctx, opts.Store, s, d, epochOf(opts.PlanOptions)); err != nil {
			return fmt.Errorf("stage %s: its packages' SBOMs: %w", s.Name(), err)
		}
	}
	return nil
}

// putInCache puts the image of step s (res) in --cache-to under its key. A cache serves
// emulated builds too: an image only accelerated builds have made stays out of it until an
// emulated build has made it.
func putInCache(ctx context.Context, opts Options, s *Step, res *StepResult) error {
	if s.Action != Resolve {
		only, err := acceleratedOnly(opts.Store, res.Descriptor.Digest)
		if err != nil {
			return err
		}
		if only {
			log.G(ctx).WithFields(log.Fields{"stage": s.Name(), "platform": platform.String(s.Target.Platform)}).
				Info("not put in --cache-to: only an accelerated build has made this image")
			return nil
		}
	}
	img, err := cacheToImage(ctx, opts, s, res.Descriptor)
	if err != nil {
		return err
	}
	p, err := opts.CacheTo.Put(ctx, s.Name(), s.Key, img)
	if err != nil {
		return fmt.Errorf("stage %s for %s: %w", s.Name(), platform.String(s.Target.Platform), err)
	}
	res.CacheBytes = p.Uploaded
	return nil
}

// cacheToImage is the image of step s (made or reused as d) that --cache-to receives: the
// store's, or for a resolved step the cache's (mounted from there when the registry is the
// same), read from where an earlier build resolved it if this one did not read it.
func cacheToImage(ctx context.Context, opts Options, s *Step, d v1.Descriptor) (v1.Image, error) {
	if s.Action != Resolve {
		return opts.Store.ImageByDigest(d)
	}
	if s.Cached == nil {
		img, err := opts.Registry.Image(ctx, s.CachedRef, s.Output)
		if err != nil {
			return nil, fmt.Errorf("stage %s: copy it to the cache: %w", s.Name(), err)
		}
		s.Cached = img
	}
	return s.Cached, nil
}

// fetchSources puts the sources of every step to build in the cache: paths maps each sha256 to
// its file.
func fetchSources(ctx context.Context, cache *sources.Cache, steps []Step) (map[string]string, error) {
	paths := map[string]string{}
	var errs []error
	for _, s := range steps {
		if s.Action == Build {
			errs = append(errs, fetchStepSources(ctx, cache, &s, paths))
		}
	}
	return paths, errors.Join(errs...)
}

// fetchStepSources puts the sources of step s in the cache and in paths.
func fetchStepSources(ctx context.Context, cache *sources.Cache, s *Step, paths map[string]string) error {
	var errs []error
	for _, src := range s.Recipe.Sources {
		if _, done := paths[src.SHA256]; done {
			continue
		}
		if cache == nil {
			return errors.New("build: no source cache configured")
		}
		p, err := cache.Ensure(ctx, src)
		if err != nil {
			errs = append(errs, fmt.Errorf("stage %s: %w", s.Name(), err))
			continue
		}
		paths[src.SHA256] = p
	}
	return errors.Join(errs...)
}

func runStep(ctx context.Context, opts Options, s *Step, paths map[string]string) (StepResult, error) {
	start := time.Now()
	res := StepResult{Step: s}
	switch s.Action {
	case Reuse:
		res.Descriptor = *s.Existing
		res.Size = imageSize(opts, s.Existing)
		res.Took = time.Since(start)
		// The repository is the store's record of the stage's images: made again, in case
		// the build that tagged the image stopped before it.
		return res, stageRepository(ctx, opts, s)
	case Resolve: // by digest alone; what the cache's manifest says, when this build read it
		res.Descriptor, res.Resolved = v1.Descriptor{Digest: s.CachedDigest}, true
		if s.Cached != nil {
			if d, err := partial.Descriptor(s.Cached); err == nil {
				res.Descriptor = *d
			}
			res.Size, _ = image.Size(s.Cached)
		}
		res.Took = time.Since(start)
		return res, nil
	case Pull:
		// Counted again, not taken from the plan: an earlier pull of this build may have
		// brought blobs this image shares.
		n, err := missingBytes(opts.Store, s.Cached)
		if err != nil {
			return res, fmt.Errorf("stage %s for %s: read %s: %w", s.Name(), platform.String(s.Target.Platform), s.CachedRef, err)
		}
		d, err := opts.Registry.Store(ctx, opts.Store, s.Cached, s.CachedRef, s.Tag)
		if err != nil {
			return res, fmt.Errorf("stage %s for %s: %w", s.Name(), platform.String(s.Target.Platform), err)
		}
		res.Descriptor, res.Pulled, res.Downloaded = d, true, n
		res.Size = imageSize(opts, &d)
		res.Took = time.Since(start)
		return res, nil
	}
	ctx = log.WithLogger(ctx, log.G(ctx).WithFields(log.Fields{"stage": s.Name(), "platform": platform.String(s.Target.Platform)}))
	if s.Recipe.From.Kind == stages.FromHostPackages {
		return runHostPackages(ctx, opts, s)
	}
	r := s.Recipe
	ro, recipeDir, err := stageRunOptions(opts, s, paths)
	defer os.RemoveAll(recipeDir)
	if err != nil {
		return res, err
	}
	var farmStats func() []compilefarm.HelperStats
	if len(opts.CompileFarm) > 0 && r.Distribute {
		farm, stop, err := serveCompileFarm(ctx, opts.Store, opts.CompileFarm)
		if err != nil {
			return res, fmt.Errorf("stage %s for %s: %w", r.Name, platform.String(s.Target.Platform), err)
		}
		defer stop()
		farmStats = farm.Stats
		ro.Process.NetNS = farm.ns.Path()
		ro.Process.Env = append(ro.Process.Env, farm.Env()...)
	}
	if r.From.Packages {
		// What the root's packages are, for a script that carries those it cannot rebuild:
		// each described in /recipe/packages, and its tree bound read-only at /packages/NAME.
		mounts, err := carryPackages(s.basePackages, recipeDir)
		if err != nil {
			return res, fmt.Errorf("stage %s for %s: %w", r.Name, platform.String(s.Target.Platform), err)
		}
		ro.Process.Mounts = append(ro.Process.Mounts, mounts...)
	}
	ro.Output.Files = r.Annotate
	c := builder.Commit{
		Platform:    s.Output,
		CreatedBy:   "serpent-oci stage " + r.Name + " (recipe " + s.RecipeDigest + ")",
		Annotations: provenance(opts.PlanOptions, s, epochOf(opts.PlanOptions)),
		Tag:         &s.Tag,
	}
	if r.Output.Kind == stages.Rootfs {
		ro.Output.Capture, ro.Output.Dir = builder.CaptureDir, r.Output.Dir
		c.Comment = "rootfs " + r.Output.Dir + " of " + r.Name
		if r.Output.Packages != "" {
			ro.Output.Packages = r.Output.Packages
			c.PackageMeta = packageMeta(s)
			c.PackageTag = func(name string) store.Ref { return PackageTag(s.Tag, name) }
		}
	} else {
		ro.Output.Capture = builder.CaptureLayer
	}
	run, err := builder.RunAndCommit(ctx, opts.Runner, ro, c)
	res.Run, res.Log, res.Took, res.Built = run, run.Log, time.Since(start), true
	if farmStats != nil {
		res.Farm = farmStats()
	}
	if err != nil {
		return res, fmt.Errorf("stage %s for %s: %w", r.Name, platform.String(s.Target.Platform), err)
	}
	res.Descriptor = run.Descriptor
	res.Size = imageSize(opts, &run.Descriptor)
	return res, stageRepository(ctx, opts, s)
}

// stageRepository writes the package repository of a stage that makes packages.
func stageRepository(ctx context.Context, opts Options, s *Step) error {
	if s.Recipe.Output.Packages == "" {
		return nil
	}
	if err := writeRepository(ctx, opts.Store, s.Tag.Name); err != nil {
		return fmt.Errorf("stage %s for %s: package repository: %w", s.Name(), platform.String(s.Target.Platform), err)
	}
	return nil
}

// stageRunOptions is how s's script runs: in its base, with its recipe files at /recipe (written
// to recipeDir, for the caller to remove, also on error), its sources at /sources, its cache
// mounts and its environment. What the run captures and where it is tagged is the caller's.
func stageRunOptions(opts Options, s *Step, paths map[string]string) (ro builder.RunOptions, recipeDir string, err error) {
	r := s.Recipe
	recipeDir, err = opts.Store.TempDir("recipe")
	if err != nil {
		return ro, "", err
	}
	for p, b := range r.Files {
		dst := filepath.Join(recipeDir, filepath.FromSlash(p))
		if err := os.MkdirAll(filepath.Dir(dst), 0o755); err != nil {
			return ro, recipeDir, err
		}
		if err := os.WriteFile(dst, b, 0o644); err != nil {
			return ro, recipeDir, err
		}
	}
	mounts := []builder.Mount{{Source: recipeDir, Destination: "/recipe", ReadOnly: true}}
	for _, src := range r.Sources {
		mounts = append(mounts, builder.Mount{Source: paths[src.SHA256], Destination: "/sources/" + src.File, ReadOnly: true})
	}
	caches, err := cacheMounts(opts.Store, s)
	if err != nil {
		return ro, recipeDir, err
	}
	mounts = append(mounts, caches...)
	var compilerCacheEnv []string
	if p := opts.compilerCache; p != nil && len(r.Cache) > 0 {
		// Read-write in the container, as a cache mount: a socket to connect to, not content
		// the stage reads.
		mounts = append(mounts, builder.Mount{Source: p.Path(), Destination: compilercache.SocketInStage})
		compilerCacheEnv = p.Remote().Env()
	}
	args := []string{"/bin/sh", "-e", "-c", r.Run}
	if r.Script != "" {
		args = []string{"/bin/sh", "-e", "/recipe/" + filepath.ToSlash(filepath.Join(filepath.Dir(r.File), r.Script))}
	}
	epoch := epochOf(opts.PlanOptions)
	env := []string{
		"SOURCE_DATE_EPOCH=" + strconv.FormatInt(epoch.Unix(), 10),
		"LC_ALL=C", "TZ=UTC",
		"SERPENT_STAGE=" + r.Name,
		"SERPENT_HOST=" + platform.String(s.RunsOn),
		"SERPENT_JOBS=" + strconv.Itoa(runtime.NumCPU()),
	}
	env = append(env, s.Target.Env()...)
	for _, src := range r.Sources {
		env = append(env, src.Env()...)
	}
	if b := s.BaseVertex(); r.From.ForHost && b != nil {
		// The toolchain of a base built for the host makes programs for the host's row.
		env = append(env, b.Target.VarsAs("SERPENT_HOST_")...)
	}
	for _, k := range slices.Sorted(maps.Keys(r.Env)) {
		env = append(env, k+"="+r.Env[k])
	}
	env = append(env, compilerCacheEnv...) // after the recipe's: the build's remote wins
	var pathPrepend []string
	if a := s.Accelerator(); a != nil {
		// The accelerator's tree, read-only; its usr/bin and bin ahead of whatever PATH the
		// stage has, so that cc, clang, ld.lld and the rest resolve to the host-native tools
		// while everything else runs emulated.
		mounts = append(mounts, builder.Mount{Image: a.Image, Destination: AcceleratorDir})
		env = append(env, "SERPENT_ACCELERATOR="+AcceleratorDir)
		pathPrepend = []string{AcceleratorDir + "/usr/bin", AcceleratorDir + "/bin"}
	}
	ro = builder.RunOptions{
		Name: r.Name, Base: s.BaseImage, BaseName: s.Base, Platform: s.RunsOn,
		Process:    builder.Process{Args: args, Env: env, Network: r.Network, Mounts: mounts, PathPrepend: pathPrepend},
		Output:     builder.Output{Layer: layer.WriteOptions{SourceDateEpoch: epoch}},
		KeepFailed: opts.KeepFailed,
	}
	return ro, recipeDir, nil
}

// storedInstalled reads the installed packages the host-packages image d of st records.
func storedInstalled(st *store.Store, d v1.Descriptor) []DebianPackage {
	img, err := st.ImageByDigest(d)
	if err != nil {
		return nil
	}
	m, err := img.Manifest()
	if err != nil {
		return nil
	}
	return parseInstalled(m.Annotations[AnnotationInstalled])
}

// epochOf is the build's SOURCE_DATE_EPOCH.
func epochOf(opts PlanOptions) time.Time { return layer.Epoch(opts.Epoch) }

func imageSize(opts Options, d *v1.Descriptor) int64 {
	img, err := opts.Store.ImageByDigest(*d)
	if err != nil {
		return 0
	}
	n, _ := image.Size(img)
	return n
}
