package build_test

import (
	"context"
	"errors"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/authn"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/serpent-os/serpent-oci/builder"
	"github.com/serpent-os/serpent-oci/builder/build"
	"github.com/serpent-os/serpent-oci/oci/registry"
	"github.com/serpent-os/serpent-oci/oci/registry/registrytest"
	"github.com/serpent-os/serpent-oci/oci/store"
)

// outcomes lists each step as "stage:result (reason)" in build order.
func outcomes(rep *build.Report) string {
	var out []string
	for _, s := range rep.Steps {
		out = append(out, s.Step.Name()+":"+result(s)+" ("+s.Step.Reason+")")
	}
	return strings.Join(out, ", ")
}

// The build's decisions, one build after another on one store, with the fake executor: no
// root, no runc, no qemu. Each row changes something and says what the build must do, and why
// (the reasons plan prints).
func TestDecisionsWithoutRoot(t *testing.T) {
	f, fake := newFakeFixture(t)
	later := time.Date(2021, 1, 1, 0, 0, 0, 0, time.UTC)
	for _, step := range []struct {
		name   string
		change func(t *testing.T)
		opts   func(*build.Options)
		want   string
		runs   []string // what the executor ran
	}{
		{name: "cold", want: "host-tools:built (no image with this key), target-root:built (no image with this key), target-native:built (no image with this key)",
			runs: []string{"host-tools", "target-root", "target-native"}},
		{name: "again", want: "host-tools:reused (same key), target-root:reused (same key), target-native:reused (same key)"},
		{name: "--rebuild target-native", opts: func(o *build.Options) { o.Rebuild = []string{"target-native"} },
			want: "host-tools:reused (same key), target-root:reused (same key), target-native:built (--rebuild target-native)", runs: []string{"target-native"}},
		// The rebuilt base comes out the same, so the stage on it is reusable after all.
		{name: "--rebuild target-root", opts: func(o *build.Options) { o.Rebuild = []string{"target-root"} },
			want: "host-tools:reused (same key), target-root:built (--rebuild target-root), target-native:reused (same key)", runs: []string{"target-root"}},
		{name: "--no-cache", opts: func(o *build.Options) { o.NoCache = true },
			want: "host-tools:built (--no-cache), target-root:built (--no-cache), target-native:built (--no-cache)",
			runs: []string{"host-tools", "target-root", "target-native"}},
		{name: "the last script changed", change: func(t *testing.T) {
			edit(t, filepath.Join(f.set, "target-native.sh"), "built natively", "built natively, again")
		},
			want: "host-tools:reused (same key), target-root:reused (same key), target-native:built (recipe changed)", runs: []string{"target-native"}},
		// A change at the bottom goes up the chain: each base comes out other than before.
		{name: "the first script changed", change: func(t *testing.T) { edit(t, filepath.Join(f.set, "host-tools.sh"), "greeting", "greeting ") },
			want: "host-tools:built (recipe changed), target-root:built (base changed), target-native:built (base changed)",
			runs: []string{"host-tools", "target-root", "target-native"}},
		{name: "another epoch", opts: func(o *build.Options) { o.Epoch = later },
			want: "host-tools:built (target, host, epoch or builder version changed), target-root:built (base changed), target-native:built (base changed)",
			runs: []string{"host-tools", "target-root", "target-native"}},
		{name: "that epoch again", opts: func(o *build.Options) { o.Epoch = later },
			want: "host-tools:reused (same key), target-root:reused (same key), target-native:reused (same key)"},
	} {
		if step.change != nil {
			step.change(t)
		}
		before := len(fake.Runs())
		mutate := []func(*build.Options){}
		if step.opts != nil {
			mutate = append(mutate, step.opts)
		}
		rep, err := f.build(t, "target-native", mutate...)
		if err != nil {
			t.Fatalf("%s: %v", step.name, err)
		}
		if got := outcomes(rep); got != step.want {
			t.Errorf("%s:\n got %s\nwant %s", step.name, got, step.want)
		}
		if got := fake.Runs()[before:]; !slices.Equal(got, step.runs) && !(len(got) == 0 && len(step.runs) == 0) {
			t.Errorf("%s: ran %v, want %v", step.name, got, step.runs)
		}
	}
}

// A failed run tags nothing and stops the build; what was built before it stays.
func TestFailedRunTagsNothingWithoutRoot(t *testing.T) {
	f, fake := newFakeFixture(t)
	boom := errors.New("exit status 1")
	fake.Fail = func(o builder.RunOptions) error {
		if o.Name == "target-root" {
			return boom
		}
		return nil
	}
	rep, err := f.build(t, "target-native")
	if !errors.Is(err, boom) || !strings.Contains(err.Error(), "stage target-root for linux/arm64") {
		t.Fatalf("build with a failing target-root: %v", err)
	}
	if got := outcomes(rep); got != "host-tools:built (no image with this key)" {
		t.Errorf("report of the failed build: %s", got)
	}
	tags, err := f.st.Tags()
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, tg := range tags {
		names = append(names, tg.Ref.String())
	}
	if !slices.Equal(names, []string{"busybox@linux-amd64", "host-tools-for-linux-arm64@linux-amd64"}) {
		t.Errorf("tags after the failed build: %v", names)
	}
}

// manifestOf is the manifest of the image a step's result tagged.
func manifestOf(t *testing.T, f *fixture, r build.StepResult) *v1.Manifest {
	t.Helper()
	img, err := f.st.ImageByDigest(r.Descriptor)
	if err != nil {
		t.Fatal(err)
	}
	m, err := img.Manifest()
	if err != nil {
		t.Fatal(err)
	}
	return m
}

// TestAcceleratedStagesWithoutRoot: with an accelerator, only a stage whose recipe asks for
// it and that runs emulated gets it (mounted, and first on PATH). It keeps the emulated
// build's key, and its image is the emulated build's manifest: only its SBOM names the
// accelerator. Until an emulated build has made the same image, it is not reused for an
// emulated build nor put in a cache; an emulated image serves an accelerated build.
func TestAcceleratedStagesWithoutRoot(t *testing.T) {
	f, fake := newFakeFixture(t)
	edit(t, filepath.Join(f.set, "target-native.yaml"), "script: target-native.sh", "script: target-native.sh\naccelerate: true")
	accel := "busybox@linux-amd64" // the fixture's host busybox, one layer
	var mounted []builder.Mount
	var pathPrepend, env []string
	fake.Fail = func(o builder.RunOptions) error {
		if o.Name == "target-native" {
			mounted, pathPrepend, env = o.Process.Mounts, o.Process.PathPrepend, o.Process.Env
		}
		return nil
	}
	// This accelerator compiles as the emulated compiler does: the run's output does not
	// depend on it (until the last part of the test).
	fake.DependsOn = withoutAccelerator
	ctx := context.Background()
	client := registry.New(registry.Options{Keychain: authn.NewMultiKeychain()})
	repo, err := client.ParseRepository(registrytest.InMemory(t, nil) + "/serpent/cache")
	if err != nil {
		t.Fatal(err)
	}
	cache := &registry.Cache{Client: client, Repo: repo}
	withAccel := func(o *build.Options) { o.Accelerator, o.Registry, o.CacheTo = accel, client, cache }
	emulated := func(o *build.Options) { o.Registry, o.CacheTo = client, cache }
	// cached is what --cache-to holds under s's key (the zero hash for nothing).
	cached := func(s build.StepResult) v1.Hash {
		d, _ := client.Head(ctx, repo.Tag(registry.CacheTag(s.Step.Name(), s.Step.Key)))
		return d.Digest
	}
	inCache := func(s build.StepResult) bool { return cached(s) == s.Descriptor.Digest }
	busybox, _, err := f.st.Image(mustRef(t, accel))
	if err != nil {
		t.Fatal(err)
	}
	accelDigest, _ := busybox.Digest()
	sbomsOf := func(d v1.Descriptor) (accelerated, emulated int) {
		t.Helper()
		sboms, err := f.st.Referrers(d.Digest, build.SPDXMediaType)
		if err != nil {
			t.Fatal(err)
		}
		for _, r := range sboms {
			switch r.Annotations[build.AnnotationAccelerator] {
			case "":
				emulated++
			case accelDigest.String():
				accelerated++
			default:
				t.Errorf("an SBOM of %s names accelerator %s", d.Digest, r.Annotations[build.AnnotationAccelerator])
			}
		}
		return accelerated, emulated
	}

	// Accelerated first: nothing emulated has made the image.
	rep, err := f.build(t, "target-native", withAccel)
	if err != nil {
		t.Fatal(err)
	}
	if got, want := outcomes(rep), "host-tools:built (no image with this key), target-root:built (no image with this key), target-native:built (no image with this key)"; got != want {
		t.Errorf("accelerated:\n got %s\nwant %s", got, want)
	}
	for _, s := range rep.Steps[:2] {
		if s.Step.AcceleratorInput != nil {
			t.Errorf("%s runs on the host but was accelerated", s.Step.Name())
		}
	}
	accelerated := rep.Steps[2]
	if len(mounted) == 0 || mounted[len(mounted)-1].Destination != build.AcceleratorDir || mounted[len(mounted)-1].Image == nil {
		t.Errorf("mounts of the accelerated run: %+v", mounted)
	}
	if want := []string{build.AcceleratorDir + "/usr/bin", build.AcceleratorDir + "/bin"}; !slices.Equal(pathPrepend, want) {
		t.Errorf("the accelerated run puts %q ahead of its PATH, want %q", pathPrepend, want)
	}
	if !slices.Contains(env, "SERPENT_ACCELERATOR="+build.AcceleratorDir) {
		t.Errorf("the accelerated run's environment lacks SERPENT_ACCELERATOR: %q", env)
	}
	if got, ok := manifestOf(t, f, accelerated).Annotations[build.AnnotationAccelerator]; ok {
		t.Errorf("the accelerated image's manifest has %s %q: the emulated build's would not", build.AnnotationAccelerator, got)
	}
	if a, e := sbomsOf(accelerated.Descriptor); a != 1 || e != 0 {
		t.Errorf("SBOMs of the accelerated image: %d naming the accelerator, %d not; want 1, 0", a, e)
	}
	sbom, err := build.SBOM(accelerated.Step, accelerated.Descriptor, nil, time.Time{})
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(sbom), `"spdxElementId": "SPDXRef-Accelerator"`) || !strings.Contains(string(sbom), accelDigest.Hex) {
		t.Errorf("the accelerated image's SBOM does not name the accelerator %s:\n%s", accelDigest, sbom)
	}
	if inCache(accelerated) || !inCache(rep.Steps[1]) {
		t.Errorf("--cache-to: accelerated image cached %v (want false), its emulated base %v (want true)", inCache(accelerated), inCache(rep.Steps[1]))
	}

	// Accelerated again: the same key, reused, and no SBOM of an emulated build added.
	if rep, err = f.build(t, "target-native", withAccel); err != nil {
		t.Fatal(err)
	}
	if got := outcomes(rep); !strings.HasSuffix(got, "target-native:reused (same key)") {
		t.Errorf("accelerated again: %s", got)
	}
	if a, e := sbomsOf(accelerated.Descriptor); a != 1 || e != 0 {
		t.Errorf("SBOMs after an accelerated reuse: %d naming the accelerator, %d not; want 1, 0", a, e)
	}

	// Emulated: built, since only an accelerated build made the image; it makes the same
	// bytes, which proves the image.
	if rep, err = f.build(t, "target-native", emulated); err != nil {
		t.Fatal(err)
	}
	if got := outcomes(rep); !strings.HasSuffix(got, "target-native:built (built with an accelerator only, not yet emulated)") {
		t.Errorf("emulated after accelerated: %s", got)
	}
	if rep.Steps[2].Descriptor.Digest != accelerated.Descriptor.Digest {
		t.Errorf("emulated build %s, accelerated %s: want the same image", rep.Steps[2].Descriptor.Digest, accelerated.Descriptor.Digest)
	}
	if a, e := sbomsOf(accelerated.Descriptor); a != 1 || e != 1 {
		t.Errorf("SBOMs after the emulated build: %d naming the accelerator, %d not; want 1, 1", a, e)
	}
	if !inCache(rep.Steps[2]) {
		t.Errorf("the image an emulated build made is not in --cache-to")
	}
	for name, mutate := range map[string]func(*build.Options){"emulated": emulated, "accelerated": withAccel} {
		mounted = nil
		if rep, err = f.build(t, "target-native", mutate); err != nil {
			t.Fatal(err)
		}
		if got := outcomes(rep); !strings.HasSuffix(got, "target-native:reused (same key)") || rep.Steps[2].Step.Accelerated() || mounted != nil {
			t.Errorf("%s after the emulated build: %s (mounts %v), want a reuse that runs nothing", name, got, mounted)
		}
	}

	// verify --rebuild with the accelerator rebuilds accelerated and compares with the store's
	// (emulated) image: one command for the proof.
	mounted = nil
	vs, err := build.Verify(ctx, f.options(t, withAccel), "target-native", false)
	if err != nil {
		t.Fatal(err)
	}
	if len(vs) != 1 || !vs[0].Reproducible() || len(mounted) == 0 || mounted[len(mounted)-1].Destination != build.AcceleratorDir {
		t.Errorf("verify with the accelerator: %+v, mounts %+v; want the emulated image, made accelerated", vs, mounted)
	}
	var report strings.Builder
	vs[0].Report(&report)
	if want := "target-native for linux/arm64: reproducible, accelerated by busybox@linux-amd64: the accelerated rebuild is the store's image, sha256:"; !strings.HasPrefix(report.String(), want) {
		t.Errorf("verify's report: %q, want it to start %q", report.String(), want)
	}

	// An accelerator that changes what is built: its image is not the emulated one, and the
	// emulated build that follows makes (and tags) the emulated image again.
	fake.DependsOn = nil
	if rep, err = f.build(t, "target-native", withAccel, func(o *build.Options) { o.Rebuild = []string{"target-native"} }); err != nil {
		t.Fatal(err)
	}
	changed := rep.Steps[2]
	if changed.Descriptor.Digest == accelerated.Descriptor.Digest || changed.Step.Key != accelerated.Step.Key || cached(changed) != accelerated.Descriptor.Digest {
		t.Errorf("a changing accelerator: image %s (emulated %s), key %s (emulated %s), cache has %s (want the emulated image)", changed.Descriptor.Digest, accelerated.Descriptor.Digest, changed.Step.Key, accelerated.Step.Key, cached(changed))
	}
	if rep, err = f.build(t, "target-native", emulated); err != nil {
		t.Fatal(err)
	}
	if got := outcomes(rep); !strings.HasSuffix(got, "target-native:built (built with an accelerator only, not yet emulated)") || rep.Steps[2].Descriptor.Digest != accelerated.Descriptor.Digest {
		t.Errorf("emulated after a changing accelerator: %s, %s; want a build of %s", got, rep.Steps[2].Descriptor.Digest, accelerated.Descriptor.Digest)
	}

	// An accelerator of several layers has no one tree to mount.
	if _, err := f.build(t, "target-native", func(o *build.Options) {
		o.Accelerator = "host-tools-for-linux-arm64"
		o.Rebuild = []string{"target-native"}
	}); err == nil || !strings.Contains(err.Error(), "want a one-layer image") {
		t.Errorf("a layered accelerator: %v", err)
	}
}

// withoutAccelerator is o without what an accelerated run adds to it: the accelerator's
// mount, its PATH entries and SERPENT_ACCELERATOR.
func withoutAccelerator(o builder.RunOptions) builder.RunOptions {
	o.Process.Mounts = slices.DeleteFunc(slices.Clone(o.Process.Mounts), func(m builder.Mount) bool { return m.Destination == build.AcceleratorDir })
	o.Process.PathPrepend = slices.DeleteFunc(slices.Clone(o.Process.PathPrepend), func(p string) bool { return strings.HasPrefix(p, build.AcceleratorDir+"/") })
	o.Process.Env = slices.DeleteFunc(slices.Clone(o.Process.Env), func(e string) bool { return strings.HasPrefix(e, "SERPENT_ACCELERATOR=") })
	return o
}

func mustRef(t *testing.T, s string) store.Ref {
	t.Helper()
	r, err := store.ParseRef(s)
	if err != nil {
		t.Fatal(err)
	}
	return r
}

// plannedSteps lists a plan as "stage:action (reason) key" in build order, the key cut short
// ("-" while it waits for its base).
func plannedSteps(g *build.Graph) string {
	var out []string
	for _, s := range g.Steps() {
		key := "-"
		if s.Key != "" {
			key = s.Key[:len("sha256:")+8]
		}
		out = append(out, s.Name()+":"+string(s.Action)+" ("+s.Reason+") "+key)
	}
	return strings.Join(out, ", ")
}

// A plan is not changed by running it: a stage whose base is rebuilt is decided by the build
// once the base is made (here: reusable, since the base comes out the same), and the plan
// still says what it said; run again, it decides the same again.
func TestBuildLeavesItsPlanAsItWasWithoutRoot(t *testing.T) {
	f, fake := newFakeFixture(t)
	if _, err := f.build(t, "target-native"); err != nil {
		t.Fatal(err)
	}
	opts := f.options(t, func(o *build.Options) { o.Rebuild = []string{"target-root"} })
	ctx := context.Background()
	g, err := build.Plan(ctx, opts.PlanOptions, "target-native")
	if err != nil {
		t.Fatal(err)
	}
	before := plannedSteps(g)
	if want := "target-native:build (base target-root is rebuilt first) -"; !strings.HasSuffix(before, want) {
		t.Fatalf("plan: %s\nwant it to end in %s", before, want)
	}
	const want = "host-tools:reused (same key), target-root:built (--rebuild target-root), target-native:reused (same key)"
	for round := range 2 {
		ran := len(fake.Runs())
		rep, err := build.Execute(ctx, opts, g)
		if err != nil {
			t.Fatalf("round %d: %v", round, err)
		}
		if got := outcomes(rep); got != want {
			t.Errorf("round %d:\n got %s\nwant %s", round, got, want)
		}
		if got := fake.Runs()[ran:]; !slices.Equal(got, []string{"target-root"}) {
			t.Errorf("round %d ran %v, want [target-root]", round, got)
		}
		if after := plannedSteps(g); after != before {
			t.Errorf("round %d changed the plan:\n was %s\n now %s", round, before, after)
		}
	}
}
