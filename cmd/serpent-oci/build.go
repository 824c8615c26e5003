package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"text/tabwriter"
	"time"

	"github.com/serpent-os/serpent-oci/builder"
	"github.com/serpent-os/serpent-oci/builder/build"
	"github.com/serpent-os/serpent-oci/builder/sources"
	"github.com/serpent-os/serpent-oci/oci/platform"
	"github.com/serpent-os/serpent-oci/oci/registry"
	"github.com/serpent-os/serpent-oci/oci/store"
	"github.com/serpent-os/serpent-oci/stages"
	"github.com/spf13/pflag"
)

// graphFlags are the flags of every command that works on a recipe set (build, plan, sources,
// verify, shell): which recipes, for which platforms, from which sources. reuseFlags add what
// a plan may reuse; a command registers the sets it honours, and the others keep their zero
// values.
type graphFlags struct {
	plat       platform.List
	stagesDir  string
	mirrors    []string
	sourcesDir string
	seed       string
	profile    string
	epoch      epochFlag
	accel      string
	seedLock   string
	reuseFlags
}

// reuseFlags are build's and plan's: what the store may not reuse, and the registry caches a
// stage may come from.
type reuseFlags struct {
	noCache bool
	rebuild []string
	reg     registryFlags
	cache   cacheFlags
}

func (r *reuseFlags) register(fs *pflag.FlagSet) {
	fs.BoolVar(&r.noCache, "no-cache", false, "rebuild every stage")
	fs.StringArrayVar(&r.rebuild, "rebuild", nil, "rebuild this stage (what is built on it follows when its image comes out different); repeatable")
	r.cache.register(fs)
	r.reg.register(fs)
}

func (g *graphFlags) register(fs *pflag.FlagSet) {
	fs.Var(&g.plat, "platform", "target platforms, os/arch[/variant], comma-separated (default: the host's)")
	fs.StringVar(&g.stagesDir, "stages", "", "recipe set directory (default: the recipes built into serpent-oci)")
	fs.StringArrayVar(&g.mirrors, "source-mirror", nil, "directory of source files, matched by name or sha256 (repeatable)")
	fs.StringVar(&g.sourcesDir, "sources-dir", "", "source cache (default $SERPENT_OCI_SOURCES or ~/.cache/serpent-oci/sources)")
	fs.StringVar(&g.profile, "profile", stages.DefaultProfile, "recipe profile: small (tcc in stage2) or full (the LLVM toolchain in stage2); a --stages set's profiles/ names its own")
	fs.StringVar(&g.seed, "seed", "", "image to use for \"from: image:seed\": a store tag, or a registry reference")
	fs.StringVar(&g.seedLock, "seed-lock", "", "pin the seed to this lock (serpent-oci seed-lock writes one): its packages at their versions, from the same .deb files")
	addEpochFlag(fs, &g.epoch, "the time of every stage's files and images")
	fs.StringVar(&g.accel, "accelerator", "", "a one-layer image of host-native tools (store tag or registry reference) mounted at "+build.AcceleratorDir+" and first on PATH in the emulated stages whose recipe says accelerate: true; the image is the emulated build's. One a stage of the set makes (the full profile's: full/llvm-accel-for-linux-arm64, stage llvm-accel) is built first by build when missing")
}

func (g *graphFlags) loadSet() (*stages.Set, error) {
	if g.stagesDir != "" {
		// Read as a root: a symlink in the set that leads out of it is an error, not a way
		// to read a host file into a build (os.DirFS would follow it).
		root, err := os.OpenRoot(g.stagesDir)
		if err != nil {
			return nil, fmt.Errorf("--stages %s: %w", g.stagesDir, err)
		}
		defer root.Close()
		set, err := stages.LoadProfile(root.FS(), g.profile)
		if err != nil {
			return nil, fmt.Errorf("--stages %s: %w", g.stagesDir, err)
		}
		return set, nil
	}
	set, err := stages.LoadProfile(stages.Embedded(), g.profile)
	if err != nil {
		return nil, fmt.Errorf("the recipe set built into serpent-oci: %w", err)
	}
	return set, nil
}

// storeAsItIs opens the store for reading, as it is: one that does not exist yet is read as
// an empty one (said on progress).
func (e *env) storeAsItIs(ctx context.Context, progress io.Writer) (*store.Store, error) {
	dir, err := e.storePath()
	if err != nil {
		return nil, err
	}
	st, missing, err := store.OpenOrEmpty(ctx, dir)
	if err != nil {
		return nil, err
	}
	if missing {
		fmt.Fprintf(progress, "store %s does not exist yet: planning as for an empty store\n", st.Dir())
	}
	return st, nil
}

// planOptions reads the flags into a plan's options over st.
func (g *graphFlags) planOptions(st *store.Store, progress io.Writer) (build.PlanOptions, error) {
	var opts build.PlanOptions
	set, err := g.loadSet()
	if err != nil {
		return opts, err
	}
	epoch, err := g.epoch.Time()
	if err != nil {
		return opts, err
	}
	opts = build.PlanOptions{Store: st, Set: set, Platforms: platform.OrHost(g.plat), Epoch: epoch, NoCache: g.noCache, Rebuild: g.rebuild}
	if g.stagesDir == "" {
		opts.RecipeSource = build.EmbeddedSource
	}
	if g.seed != "" {
		opts.Images = map[string]string{"seed": g.seed}
	}
	if g.seedLock != "" {
		f, err := os.Open(g.seedLock)
		if err != nil {
			return opts, fmt.Errorf("--seed-lock: %w", err)
		}
		opts.SeedLock, err = build.ParseSeedLock(g.seedLock, f)
		f.Close()
		if err != nil {
			return opts, err
		}
		opts.SeedLockName = g.seedLock
	}
	opts.Accelerator = g.accel
	opts.Registry = g.reg.client(progress)
	if opts.CacheFrom, err = caches(opts.Registry, "cache-from", g.cache.from); err != nil {
		return opts, err
	}
	return opts, nil
}

// progressConsole is the console of a command's --progress value (auto, plain or tty).
func progressConsole(e *env, command, progress string) (*console, error) {
	if progress != "auto" && progress != "plain" && progress != "tty" {
		return nil, usagef("%s: --progress %q: want auto, plain or tty", command, progress)
	}
	return newConsole(e.stderr, progress == "tty" || (progress == "auto" && isTerminalWriter(e.stderr))), nil
}

// buildOptions are the options of a build over po that reports to con: the source cache, and
// a runner on po's store, after recovering what an interrupted run left there.
func (g *graphFlags) buildOptions(ctx context.Context, po build.PlanOptions, con *console, keep bool) (build.Options, error) {
	cache, err := g.sourceCache(con)
	if err != nil {
		return build.Options{}, err
	}
	runner, err := builder.OpenRunner(ctx, po.Store, builder.WithConsole(con))
	if err != nil {
		return build.Options{}, err
	}
	return build.Options{PlanOptions: po, Runner: runner, Sources: cache, KeepFailed: keep, Events: con.event}, nil
}

func (g *graphFlags) sourceCache(progress io.Writer) (*sources.Cache, error) {
	dir := g.sourcesDir
	if dir == "" {
		d, err := sources.DefaultDir()
		if err != nil {
			return nil, err
		}
		dir = d
	}
	// The cache and the mirrors are bind-mounted into containers, whose specs take only
	// absolute paths: a relative one (--sources-dir sources) is the working directory's.
	dir, err := filepath.Abs(dir)
	if err != nil {
		return nil, fmt.Errorf("source cache %s: %w", g.sourcesDir, err)
	}
	mirrors := make([]string, len(g.mirrors))
	for i, m := range g.mirrors {
		if mirrors[i], err = filepath.Abs(m); err != nil {
			return nil, fmt.Errorf("source mirror %s: %w", m, err)
		}
	}
	return &sources.Cache{Dir: dir, Mirrors: mirrors, Progress: progress}, nil
}

func buildCommand() *command {
	var (
		g        graphFlags
		keep     bool
		progress string
		push     pushFlags
		spin     string
		ccache   compilerCacheFlags
		farm     compileFarmFlag
		flagSet  *pflag.FlagSet
	)
	return &command{
		name:    "build",
		args:    "TARGET",
		summary: "Build a stage and every stage it needs, for each platform",
		long: `Each stage runs inside the image of the stage before it and becomes an image in the store.
A stage whose cache key (recipe, script and files, source digests, base image digest, target
and host platform, builder version) matches the image already tagged for it is reused. Every
source is fetched and checked before any container starts. A failed stage tags nothing; its
log stays, and --keep-failed keeps its files. Ends with a summary table.`,
		example: `serpent-oci build stage3 --platform linux/arm64
serpent-oci build stage3 --platform linux/amd64,linux/arm64 --source-mirror /srv/distfiles
serpent-oci build target-native --stages stages/testdata/busybox --rebuild target-root
serpent-oci build stage3 --platform linux/amd64,linux/arm64 -t registry.example/serpent/stage3:2026.12 --push`,
		rewriteArgs: joinPushValue,
		flags: func(fs *pflag.FlagSet) {
			g.register(fs)
			g.reuseFlags.register(fs)
			fs.BoolVar(&keep, "keep-failed", false, "keep a failed stage's files (unmounted) and print where")
			fs.StringVar(&spin, "spin", "", "build the spin defined in this file instead of a stage (as \"spin build FILE\"; TARGET is then not given)")
			push.register(fs, "TARGET's images")
			fs.StringVar(&g.cache.to, "cache-to", "", "repository (REGISTRY/REPO, or buildx's type=registry,ref=REGISTRY/REPO[,mode=max]) to push every stage image to under its cache key")
			fs.StringVar(&progress, "progress", "auto", "progress output: auto, plain or tty")
			ccache.register(fs)
			fs.Var(&farm, "compile-farm", "distcc helpers (serpent-oci compile-helper on other machines) that stages whose recipe says distribute send their compiles to, reached as loopback ports of the stage's own network namespace; a helper that fails costs its compiles the trip, not the build")
			flagSet = fs
		},
		run: func(ctx context.Context, e *env, args []string) error {
			if spin != "" {
				if len(args) != 0 {
					return usagef("build --spin: no TARGET stage with a spin")
				}
				if err := onlySpinFlags(flagSet); err != nil {
					return err
				}
				f := spinFlags{plat: g.plat, push: push, epoch: g.epoch, reg: g.reg}
				return f.build(ctx, e, spin)
			}
			if len(args) != 1 {
				return usagef("build: want one TARGET stage, got %d arguments", len(args))
			}
			pushRefs, err := push.references("build", g.reg.client(io.Discard).ParseReference)
			if err != nil {
				return err
			}
			con, err := progressConsole(e, "build", progress)
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
			po.BuildAccelerator = true // an --accelerator a stage makes is built first
			var cacheTo *registry.Cache
			if g.cache.to != "" {
				cs, err := caches(po.Registry, "cache-to", []string{g.cache.to})
				if err != nil {
					return err
				}
				cacheTo = cs[0]
			}
			opts, err := g.buildOptions(ctx, po, con, keep)
			if err != nil {
				return err
			}
			if ccache.readOnly && ccache.remote == nil {
				return usagef("build: --compiler-cache-read-only without --compiler-cache")
			}
			opts.CacheTo, opts.CompilerCache, opts.CompileFarm = cacheTo, ccache.Remote(), farm
			rep, err := build.Run(ctx, opts, args[0])
			for _, ref := range pushRefs {
				if err != nil {
					break
				}
				var p registry.Pushed
				if p, err = build.Push(ctx, opts, rep, args[0], ref); err == nil {
					fmt.Fprintf(con, "pushed %s@%s (%s uploaded)\n", ref.Context(), p.Descriptor.Digest, humanBytes(p.Uploaded))
				}
			}
			con.stop()
			if rep != nil && len(rep.Steps) > 0 {
				printSummary(e.stdout, rep)
			}
			return err
		},
	}
}

// spinBuildFlags are the flags of build that build --spin honours (those of spin build).
var spinBuildFlags = []string{"spin", "platform", "push", "reference", "source-date-epoch", "insecure-registry", "store"}

// onlySpinFlags refuses a flag of build that a spin build cannot honour, rather than ignore it.
func onlySpinFlags(fs *pflag.FlagSet) error {
	var bad []string
	fs.Visit(func(f *pflag.Flag) {
		if !slices.Contains(spinBuildFlags, f.Name) {
			bad = append(bad, "--"+f.Name)
		}
	})
	if len(bad) > 0 {
		return usagef("build --spin: %s: not for a spin (it takes --platform, --push, -t, --source-date-epoch and --insecure-registry; see spin build --help)", strings.Join(bad, ", "))
	}
	return nil
}

func printSummary(w io.Writer, rep *build.Report) {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "STAGE\tPLATFORM\tTAG\tDIGEST\tSIZE\tTIME\tRESULT")
	for _, s := range rep.Steps {
		result := "reused"
		switch {
		case s.Built && s.Step.Accelerated():
			result = "built, accelerated (" + s.Step.Reason + ")"
		case s.Built:
			result = "built (" + s.Step.Reason + ")"
		case s.Pulled:
			result = "pulled " + humanBytes(s.Downloaded) + " (" + s.Step.Reason + ")"
		case s.Resolved:
			result = "resolved, 0 B (" + s.Step.Reason + ")"
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\n", s.Step.Name(), platform.String(s.Step.Target.Platform),
			s.Step.Tag, shortDigest(s.Descriptor.Digest), humanBytes(s.Size), s.Took.Round(time.Millisecond), result)
	}
	tw.Flush()
	fmt.Fprintf(w, "%s, %d built, %d pulled (%s), %d resolved only, in %s\n", count(len(rep.Steps), "stage", "stages"), rep.Containers(), rep.Pulled(), humanBytes(rep.Downloaded()), rep.Resolved(), rep.Took.Round(time.Millisecond))
	var engine, total time.Duration
	for _, s := range rep.Steps {
		if s.Built {
			engine += s.Run.Prepare + s.Run.Capture
			total += s.Took
		}
	}
	if total > 0 {
		fmt.Fprintf(w, "engine (snapshots, mounts, capture, compression, store): %s, %.1f%% of the stages' time\n",
			engine.Round(time.Millisecond), 100*engine.Seconds()/total.Seconds())
	}
}

func planCommand() *command {
	var (
		g      graphFlags
		format string
	)
	return &command{
		name:    "plan",
		args:    "TARGET",
		summary: "Show what building TARGET would do, stage by stage, and why",
		long: `For each stage the target needs, per platform: where it runs, its base, its cache key, and
whether build would reuse the store's image or build it, and why (no image with this key;
recipe changed; base changed; --no-cache; --rebuild). A stage whose base is rebuilt first has
no key yet.`,
		example: `serpent-oci plan stage3 --platform linux/arm64
serpent-oci plan stage3 --platform linux/amd64,linux/arm64 --format json`,
		flags: func(fs *pflag.FlagSet) {
			g.register(fs)
			g.reuseFlags.register(fs)
			fs.StringVar(&format, "format", "table", "table or json")
		},
		run: func(ctx context.Context, e *env, args []string) error {
			if len(args) != 1 {
				return usagef("plan: want one TARGET stage, got %d arguments", len(args))
			}
			if format != "table" && format != "json" {
				return usagef("plan: --format %q: want table or json", format)
			}
			st, err := e.storeAsItIs(ctx, e.stderr) // a plan writes nothing
			if err != nil {
				return err
			}
			po, err := g.planOptions(st, e.stderr)
			if err != nil {
				return err
			}
			po.BuildAccelerator = true // as build would
			g, err := build.Plan(ctx, po, args[0])
			if err != nil {
				return err
			}
			steps := g.Steps()
			estimates := map[*build.Vertex]build.Estimate{}
			for _, s := range steps {
				if s.Action == build.Build {
					if est, ok := build.EstimateOf(ctx, st, &s); ok {
						estimates[s.Vertex] = est
					}
				}
			}
			if format == "json" {
				type row struct { // the keys of images and inspect: lower case, snake_case
					Stage    string   `json:"stage"`
					Platform string   `json:"platform"`
					RunsOn   string   `json:"runs_on"`
					Base     string   `json:"base"`
					Tag      string   `json:"tag"`
					Key      string   `json:"key"`
					Action   string   `json:"action"`
					Reason   string   `json:"reason"`
					Download int64    `json:"download_bytes"`             // what a pull fetches; 0 for the others
					Accel    string   `json:"accelerator,omitempty"`      // the accelerator's digest when the stage is accelerated (its tag while it is to be built first)
					Estimate *float64 `json:"estimate_seconds,omitempty"` // for a stage to build: how long the store's last build of it took
				}
				var rows []row
				for _, s := range steps {
					var accel string
					if s.Accelerated() {
						accel = s.AcceleratorInput.Name()
						if a := s.Accelerator(); a != nil {
							accel = a.Digest.String()
						}
					}
					r := row{s.Name(), platform.String(s.Target.Platform), platform.String(s.RunsOn), s.Base, s.Tag.String(), s.Key, string(s.Action), s.Reason, s.Download, accel, nil}
					if est, ok := estimates[s.Vertex]; ok {
						secs := est.Took.Seconds()
						r.Estimate = &secs
					}
					rows = append(rows, r)
				}
				enc := json.NewEncoder(e.stdout)
				enc.SetIndent("", "  ")
				return enc.Encode(rows)
			}
			tw := tabwriter.NewWriter(e.stdout, 0, 4, 2, ' ', 0)
			fmt.Fprintln(tw, "STAGE\tPLATFORM\tRUNS ON\tBASE\tKEY\tACTION\tDOWNLOAD\tESTIMATE\tWHY")
			var total time.Duration
			toBuild, unknown := 0, 0
			for _, s := range steps {
				key := "(after its base)"
				if s.Key != "" {
					key = s.Key[:len("sha256:")+16]
				}
				download := "-"
				switch s.Action {
				case build.Pull:
					download = humanBytes(s.Download)
				case build.Resolve:
					download = "0 B"
				}
				runsOn := platform.String(s.RunsOn)
				if s.Accelerated() {
					runsOn += " (accelerated)"
				}
				estimate := "-"
				if s.Action == build.Build {
					toBuild++
					estimate = "?"
					if est, ok := estimates[s.Vertex]; ok {
						estimate, total = est.String(), total+est.Took
					} else {
						unknown++
					}
				}
				fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n", s.Name(), platform.String(s.Target.Platform), runsOn, s.Base, key, s.Action, download, estimate, s.Reason)
			}
			if err := tw.Flush(); err != nil {
				return err
			}
			if toBuild > 0 {
				fmt.Fprintf(e.stdout, "\n%s\n", planTotal(toBuild, unknown, total))
			}
			return nil
		},
	}
}

// count is n with its noun: "1 stage", "3 stages".
func count(n int, one, many string) string {
	if n == 1 {
		return "1 " + one
	}
	return fmt.Sprintf("%d %s", n, many)
}

// planTotal is plan's last line: how long the stages to build should take, from the store's
// record of their last builds ("~" marks one of other inputs, "?" one never built here).
func planTotal(toBuild, unknown int, total time.Duration) string {
	stages := count(toBuild, "stage", "stages")
	if unknown == toBuild {
		return fmt.Sprintf("%s to build, none built in this store before: no estimate", stages)
	}
	line := fmt.Sprintf("%s to build, about %s from the store's last builds of them", stages, build.Estimate{Took: total, SameKey: true})
	if unknown > 0 {
		line += fmt.Sprintf(" (%d never built here: not counted)", unknown)
	}
	return line
}

func sourcesCommand() *command {
	var g graphFlags
	return &command{
		name:    "sources",
		args:    "fetch|list TARGET",
		summary: "Fetch or list the sources TARGET's stages build from",
		long: `fetch fills the source cache ahead of a build (for a machine that builds offline later);
list prints each source's name, file, sha256, origin and whether it is cached.`,
		example: `serpent-oci sources list stage3 --platform linux/arm64
serpent-oci sources fetch stage3 --platform linux/amd64,linux/arm64`,
		flags: func(fs *pflag.FlagSet) { g.register(fs) },
		run: func(ctx context.Context, e *env, args []string) error {
			if len(args) != 2 || (args[0] != "fetch" && args[0] != "list") {
				return usagef("sources: want fetch or list, and a TARGET stage")
			}
			set, err := g.loadSet()
			if err != nil {
				return err
			}
			srcs, err := set.ChainSources(args[1])
			if err != nil {
				return err
			}
			cache, err := g.sourceCache(e.stderr)
			if err != nil {
				return err
			}
			if args[0] == "fetch" {
				for _, s := range srcs {
					if _, err := cache.Ensure(ctx, s); err != nil {
						return err
					}
					fmt.Fprintf(e.stdout, "%s %s\n", s.SHA256, s.File)
				}
				return nil
			}
			tw := tabwriter.NewWriter(e.stdout, 0, 4, 2, ' ', 0)
			fmt.Fprintln(tw, "NAME\tFILE\tSHA256\tORIGIN\tCACHED")
			for _, s := range srcs {
				cached := "no"
				if cache.Has(s) {
					cached = "yes"
				}
				fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\n", s.Name, s.File, s.SHA256, s.Origin(), cached)
			}
			return tw.Flush()
		},
	}
}

// console is where a build's live output and progress go. In tty mode it keeps a status line
// (stage i of n, platform, elapsed, the stage's own percentage when its build prints one, and
// what is left by the store's record of its last build) at the bottom, redrawn under each line
// of log.
type console struct {
	mu       sync.Mutex
	w        io.Writer
	tty      bool
	status   string
	started  time.Time
	percent  int // the running stage's last counter, or -1
	estimate *build.Estimate
	done     chan struct{}
	once     sync.Once
}

func newConsole(w io.Writer, tty bool) *console {
	c := &console{w: w, tty: tty, percent: -1, done: make(chan struct{})}
	if tty {
		go func() {
			t := time.NewTicker(time.Second)
			defer t.Stop()
			for {
				select {
				case <-c.done:
					return
				case <-t.C:
					c.mu.Lock()
					c.redraw()
					c.mu.Unlock()
				}
			}
		}()
	}
	return c
}

func (c *console) redraw() {
	if c.tty && c.status != "" {
		fmt.Fprintf(c.w, "\r\033[K%s", statusLine(c.status, time.Since(c.started), c.percent, c.estimate))
	}
}

// statusLine is the tty's status line: where the build is, for how long, the stage's own
// percentage (-1: none printed yet) and what its last build says is left.
func statusLine(where string, elapsed time.Duration, percent int, est *build.Estimate) string {
	line := where + " " + elapsed.Round(time.Second).String()
	if percent >= 0 {
		line += fmt.Sprintf(" %d%%", percent)
	}
	if est != nil {
		if left := est.Took - elapsed; left >= time.Second {
			line += fmt.Sprintf(", last build %s: about %s left", est, roughly(left))
		} else if left > 0 {
			line += fmt.Sprintf(", last build %s: under a second left", est)
		} else {
			line += fmt.Sprintf(", last build %s: over by %s", est, roughly(-left))
		}
	}
	return line
}

// roughly rounds a time left to what is worth reading: seconds under a minute, minutes after.
func roughly(d time.Duration) string {
	if d < time.Minute {
		return d.Round(time.Second).String()
	}
	return strings.TrimSuffix(d.Round(time.Minute).String(), "0s")
}

// Build tools' progress counters, in a line of a stage's output ("STAGE | ..."): ninja's
// "[N/M]" (or our NINJA_STATUS "[N/M 12.3s]") and CMake's Makefiles' "[ 45%]".
var (
	ninjaCounter = regexp.MustCompile(`^[^ ]+ \| \[(\d{1,9})/(\d{1,9})[] ]`)
	makeCounter  = regexp.MustCompile(`^[^ ]+ \| \[ *(\d{1,3})%\]`)
)

// counterPercent is the percentage a line of build output gives, or -1.
func counterPercent(line []byte) int {
	if m := ninjaCounter.FindSubmatch(line); m != nil {
		n, _ := strconv.Atoi(string(m[1]))
		total, _ := strconv.Atoi(string(m[2]))
		if total > 0 && n <= total {
			return n * 100 / total
		}
		return -1
	}
	if m := makeCounter.FindSubmatch(line); m != nil {
		if p, _ := strconv.Atoi(string(m[1])); p <= 100 {
			return p
		}
	}
	return -1
}

func (c *console) Write(p []byte) (int, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.status != "" {
		for _, line := range bytes.Split(p, []byte("\n")) {
			if pc := counterPercent(line); pc >= 0 {
				c.percent = pc
			}
		}
	}
	if c.tty {
		fmt.Fprint(c.w, "\r\033[K")
	}
	n, err := c.w.Write(p)
	c.redraw()
	return n, err
}

func (c *console) event(ev build.Event) {
	s := ev.Step
	where := fmt.Sprintf("[%d/%d] %s for %s", ev.Index, ev.Total, s.Name(), platform.String(s.Target.Platform))
	switch ev.Kind {
	case build.StepStarted:
		c.mu.Lock()
		c.status, c.started, c.percent, c.estimate = where, time.Now(), -1, ev.Estimate
		c.mu.Unlock()
		switch s.Action {
		case build.Reuse:
			fmt.Fprintf(c, "%s: reusing %s (same key)\n", where, s.Tag)
		case build.Pull:
			fmt.Fprintf(c, "%s: pulling %s (%s)\n", where, s.CachedRef, humanBytes(s.Download))
		case build.Resolve:
			fmt.Fprintf(c, "%s: resolved %s as %s, nothing downloaded (%s)\n", where, s.Tag, shortDigest(s.CachedDigest), s.Reason)
		default:
			accelerated := ""
			if s.Accelerated() {
				accelerated = ", accelerated by " + s.AcceleratorInput.Name()
			}
			last := ""
			if ev.Estimate != nil {
				last = "; its last build here took " + ev.Estimate.String()
			}
			fmt.Fprintf(c, "%s: building on %s%s (%s%s)\n", where, platform.String(s.RunsOn), accelerated, s.Reason, last)
		}
	case build.StepDone:
		if ev.Result.Pulled {
			fmt.Fprintf(c, "%s: pulled %s %s in %s\n", where, s.Tag, shortDigest(ev.Result.Descriptor.Digest), ev.Result.Took.Round(time.Millisecond))
		}
		if ev.Result.Built {
			fmt.Fprintf(c, "%s: built %s %s in %s\n", where, s.Tag, shortDigest(ev.Result.Descriptor.Digest), ev.Result.Took.Round(time.Millisecond))
		}
		c.mu.Lock()
		c.status, c.estimate = "", nil
		c.mu.Unlock()
	}
}

func (c *console) stop() {
	c.once.Do(func() {
		close(c.done)
		c.mu.Lock()
		if c.tty {
			fmt.Fprint(c.w, "\r\033[K")
		}
		c.status = ""
		c.mu.Unlock()
	})
}

func isTerminalWriter(w io.Writer) bool {
	f, ok := w.(*os.File)
	return ok && isTerminal(f)
}

func verifyCommand() *command {
	var (
		g             graphFlags
		rebuild, deep bool
		against       string
	)
	return &command{
		name:    "verify",
		args:    "TARGET --rebuild | --against STORE",
		summary: "Rebuild a stage in a scratch store and check it comes out bit-identical",
		long: `The stage's image in the store must be built from its current recipe. verify --rebuild builds
it again, in a scratch store removed afterwards, on the store's own image of its base (with
--deep, every stage of its chain is rebuilt, each on the rebuild before it), and compares
digests. Where they differ it lists the paths whose content, mode, owner or link target
differ, with a hint of how (for example: only in an embedded timestamp), and what else
differs (annotations, config). --against STORE compares with the images another store holds
under the same tags instead of rebuilding (two builds made apart: make repro). Exit code 1
when a stage is not reproducible.`,
		example: `serpent-oci verify stage3 --rebuild --platform linux/arm64
serpent-oci verify stage2 --rebuild --deep --platform linux/amd64,linux/arm64`,
		flags: func(fs *pflag.FlagSet) {
			g.register(fs)
			fs.BoolVar(&rebuild, "rebuild", false, "rebuild the stage and compare (the only kind of verification so far)")
			fs.BoolVar(&deep, "deep", false, "rebuild (or compare) every stage of the chain, not only TARGET")
			fs.StringVar(&against, "against", "", "compare with this other store's images instead of rebuilding")
		},
		run: func(ctx context.Context, e *env, args []string) error {
			if len(args) != 1 {
				return usagef("verify: want one TARGET stage, got %d arguments", len(args))
			}
			if rebuild == (against != "") {
				return usagef("verify: give --rebuild, or --against STORE")
			}
			// --against only reads: both stores as they are.
			open := e.openStore
			if against != "" {
				open = func(ctx context.Context) (*store.Store, error) { return e.storeAsItIs(ctx, e.stderr) }
			}
			st, err := open(ctx)
			if err != nil {
				return err
			}
			po, err := g.planOptions(st, e.stderr)
			if err != nil {
				return err
			}
			if against != "" {
				other, err := store.OpenExisting(ctx, against)
				if err != nil {
					return err
				}
				vs, err := build.Compare(ctx, po, args[0], deep, other)
				return reportVerifications(e, vs, err)
			}
			cache, err := g.sourceCache(e.stderr)
			if err != nil {
				return err
			}
			runner, err := builder.OpenRunner(ctx, po.Store, builder.WithConsole(e.stderr))
			if err != nil {
				return err
			}
			vs, err := build.Verify(ctx, build.Options{PlanOptions: po, Runner: runner, Sources: cache}, args[0], deep)
			return reportVerifications(e, vs, err)
		},
	}
}

func reportVerifications(e *env, vs []build.Verification, err error) error {
	failed := 0
	for _, v := range vs {
		v.Report(e.stdout)
		if !v.Reproducible() {
			failed++
		}
	}
	if err != nil {
		return err
	}
	if failed > 0 {
		return fmt.Errorf("verify: %d of %d stages are not reproducible", failed, len(vs))
	}
	return nil
}
