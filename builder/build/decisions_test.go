package build_test

import (
	"errors"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/serpent-os/serpent-oci/builder"
	"github.com/serpent-os/serpent-oci/builder/build"
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
