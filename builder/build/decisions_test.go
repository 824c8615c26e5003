package build_test

import (
	"errors"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/serpent-os/serpent-oci/builder"
	"github.com/serpent-os/serpent-oci/builder/build"
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
// it and that runs emulated gets it (mounted, and first on PATH); its key and its image differ
// from the emulated build's, its image names the accelerator, and going back to no
// accelerator rebuilds it, saying why.
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
	withAccel := func(o *build.Options) { o.Accelerator = accel }

	emulated, err := f.build(t, "target-native")
	if err != nil {
		t.Fatal(err)
	}
	if slices.ContainsFunc(mounted, func(m builder.Mount) bool { return m.Image != nil }) {
		t.Errorf("without --accelerator the run had an image mount: %+v", mounted)
	}
	rep, err := f.build(t, "target-native", withAccel)
	if err != nil {
		t.Fatal(err)
	}
	if got, want := outcomes(rep), "host-tools:reused (same key), target-root:reused (same key), target-native:built (accelerator changed)"; got != want {
		t.Errorf("accelerated:\n got %s\nwant %s", got, want)
	}
	native, accelerated := emulated.Steps[2], rep.Steps[2]
	if native.Step.Key == accelerated.Step.Key || native.Descriptor.Digest == accelerated.Descriptor.Digest {
		t.Errorf("the accelerated build has the emulated one's key or image: %s, %s", accelerated.Step.Key, accelerated.Descriptor.Digest)
	}
	for _, s := range rep.Steps[:2] {
		if s.Step.Accelerator != nil {
			t.Errorf("%s runs on the host but was accelerated", s.Step.Name())
		}
	}
	busybox, _, err := f.st.Image(mustRef(t, accel))
	if err != nil {
		t.Fatal(err)
	}
	want, _ := busybox.Digest()
	if got := manifestOf(t, f, accelerated).Annotations[build.AnnotationAccelerator]; got != want.String() {
		t.Errorf("the accelerated image's %s is %q, want %s", build.AnnotationAccelerator, got, want)
	}
	sbom, err := build.SBOM(accelerated.Step, accelerated.Descriptor, time.Time{})
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(sbom), `"spdxElementId": "SPDXRef-Accelerator"`) || !strings.Contains(string(sbom), want.Hex) {
		t.Errorf("the accelerated image's SBOM does not name the accelerator %s:\n%s", want, sbom)
	}
	if len(mounted) == 0 || mounted[len(mounted)-1].Destination != build.AcceleratorDir || mounted[len(mounted)-1].Image == nil {
		t.Errorf("mounts of the accelerated run: %+v", mounted)
	}
	if want := []string{build.AcceleratorDir + "/usr/bin", build.AcceleratorDir + "/bin"}; !slices.Equal(pathPrepend, want) {
		t.Errorf("the accelerated run puts %q ahead of its PATH, want %q", pathPrepend, want)
	}
	if !slices.Contains(env, "SERPENT_ACCELERATOR="+build.AcceleratorDir) {
		t.Errorf("the accelerated run's environment lacks SERPENT_ACCELERATOR: %q", env)
	}

	if rep, err = f.build(t, "target-native", withAccel); err != nil {
		t.Fatal(err)
	}
	if got := outcomes(rep); !strings.HasSuffix(got, "target-native:reused (same key)") {
		t.Errorf("accelerated again: %s", got)
	}
	if rep, err = f.build(t, "target-native"); err != nil {
		t.Fatal(err)
	}
	if got := outcomes(rep); !strings.HasSuffix(got, "target-native:built (built with an accelerator, now without)") || rep.Steps[2].Descriptor.Digest != native.Descriptor.Digest {
		t.Errorf("without the accelerator again: %s, %s (first emulated build: %s)", got, rep.Steps[2].Descriptor.Digest, native.Descriptor.Digest)
	}

	// An accelerator of several layers has no one tree to mount.
	if _, err := f.build(t, "target-native", func(o *build.Options) { o.Accelerator = "host-tools-for-linux-arm64" }); err == nil || !strings.Contains(err.Error(), "want a one-layer image") {
		t.Errorf("a layered accelerator: %v", err)
	}
}

func mustRef(t *testing.T, s string) store.Ref {
	t.Helper()
	r, err := store.ParseRef(s)
	if err != nil {
		t.Fatal(err)
	}
	return r
}
