package build_test

import (
	"context"
	"crypto/sha256"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/serpent-os/serpent-oci/builder/build"
	"github.com/serpent-os/serpent-oci/oci/store"
)

// timingsFile is where the store keeps the build times of tag (below .serpent/timings).
func timingsFile(st *store.Store, tag store.Ref) string {
	return filepath.Join(st.Dir(), ".serpent", "timings", fmt.Sprintf("%x.json", sha256.Sum256([]byte(tag.String()))))
}

// planEstimates plans target-native on f and gives each step to build's estimate, as
// "stage:same:DURATION", "stage:other:DURATION" or "stage:none".
func planEstimates(t *testing.T, f *fixture, mutate ...func(*build.Options)) (map[string]string, []build.Step) {
	t.Helper()
	ctx := context.Background()
	steps, err := stepsOf(build.Plan(ctx, f.options(t, mutate...).PlanOptions, "target-native"))
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]string{}
	for _, s := range steps {
		if s.Action != build.Build {
			continue
		}
		e, ok := build.EstimateOf(ctx, f.st, &s)
		switch {
		case !ok:
			got[s.Name()] = "none"
		case e.SameKey:
			got[s.Name()] = "same:" + e.Took.String()
		default:
			got[s.Name()] = "other:" + e.Took.String()
		}
	}
	return got, steps
}

func TestEstimatesFromTheStoresLastBuilds(t *testing.T) {
	f, _ := newFakeFixture(t)
	noCache := func(o *build.Options) { o.NoCache = true }
	got, _ := planEstimates(t, f)
	for _, stage := range []string{"host-tools", "target-root", "target-native"} {
		if got[stage] != "none" {
			t.Errorf("before any build: %s has estimate %s", stage, got[stage])
		}
	}

	var started []build.Event
	events := func(o *build.Options) {
		o.Events = func(ev build.Event) {
			if ev.Kind == build.StepStarted {
				started = append(started, ev)
			}
		}
	}
	rep, err := f.build(t, "target-native", events)
	if err != nil {
		t.Fatal(err)
	}
	for _, ev := range started {
		if ev.Estimate != nil {
			t.Errorf("first build: %s started with estimate %v", ev.Step.Name(), *ev.Estimate)
		}
	}
	took := map[string]time.Duration{}
	for _, s := range rep.Steps {
		took[s.Step.Name()] = s.Took
	}

	// The same inputs: each stage's estimate is what its build took, to the microsecond (the
	// record keeps seconds as a float); one whose base is rebuilt first has no key yet, so
	// its estimate is the tag's last build, not said to be of the same key.
	got, steps := planEstimates(t, f, noCache)
	for _, s := range steps {
		kind := "same:"
		if s.Key == "" {
			kind = "other:"
		}
		e, err := time.ParseDuration(strings.TrimPrefix(got[s.Name()], kind))
		if err != nil || !strings.HasPrefix(got[s.Name()], kind) {
			t.Fatalf("--no-cache plan: %s estimate %q, want %s%s", s.Name(), got[s.Name()], kind, took[s.Name()])
		}
		if diff := e - took[s.Name()]; diff > time.Microsecond || diff < -time.Microsecond {
			t.Errorf("%s: estimate %s, the build took %s", s.Name(), e, took[s.Name()])
		}
	}
	started = nil
	if _, err := f.build(t, "target-native", noCache, events); err != nil {
		t.Fatal(err)
	}
	if len(started) != 3 {
		t.Fatalf("%d steps started, want 3", len(started))
	}
	for _, ev := range started {
		if ev.Estimate == nil || !ev.Estimate.SameKey {
			t.Errorf("rebuild: %s started with estimate %v, want its last build's", ev.Step.Name(), ev.Estimate)
		}
	}

	// Other inputs: the last build of the tag, marked as of other inputs.
	edit(t, filepath.Join(f.set, "target-native.sh"), "echo \"built natively", "# changed\necho \"built natively")
	got, steps = planEstimates(t, f)
	if !strings.HasPrefix(got["target-native"], "other:") || len(got) != 1 {
		t.Errorf("after a script change: %v, want target-native alone, other:", got)
	}
	native := steps[len(steps)-1]
	for i := 0; i < 12; i++ {
		edit(t, filepath.Join(f.set, "target-native.sh"), "# changed", fmt.Sprintf("# changed\n# %d", i))
		if _, err := f.build(t, "target-native"); err != nil {
			t.Fatal(err)
		}
	}
	b, err := os.ReadFile(timingsFile(f.st, native.Tag))
	if err != nil {
		t.Fatal(err)
	}
	var rec struct {
		Tag    string            `json:"tag"`
		Builds []json.RawMessage `json:"builds"`
	}
	if err := json.Unmarshal(b, &rec); err != nil || rec.Tag != native.Tag.String() || len(rec.Builds) != 8 {
		t.Errorf("record after 14 builds of target-native (%v): tag %s, %d builds, want %s and 8", err, rec.Tag, len(rec.Builds), native.Tag)
	}

	// A bad record informs nothing and fails nothing.
	over := `{"tag": "` + native.Tag.String() + `", "builds": [` + strings.Repeat(`{"key": "k", "seconds": 1},`, 8) + `{"key": "k", "seconds": 1}]}`
	for name, content := range map[string]string{
		"not JSON":              "{",
		"another tag's":         `{"tag": "other@linux-arm64", "builds": [{"key": "k", "seconds": 1}]}`,
		"negative":              `{"tag": "` + native.Tag.String() + `", "builds": [{"key": "k", "seconds": -1}]}`,
		"more than 8 builds":    over,
		"larger than the bound": strings.Repeat(" ", 65<<10) + "{}",
	} {
		if err := os.WriteFile(timingsFile(f.st, native.Tag), []byte(content), 0o600); err != nil {
			t.Fatal(err)
		}
		if got, _ := planEstimates(t, f, noCache); got["target-native"] != "none" {
			t.Errorf("record %s: estimate %s, want none", name, got["target-native"])
		}
	}
	if err := os.Remove(timingsFile(f.st, native.Tag)); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink("/etc/passwd", timingsFile(f.st, native.Tag)); err != nil {
		t.Fatal(err)
	}
	if got, _ := planEstimates(t, f, noCache); got["target-native"] != "none" {
		t.Errorf("record a symlink out of the store: estimate %s, want none", got["target-native"])
	}
	if _, err := f.build(t, "target-native", noCache); err != nil {
		t.Fatalf("build over a bad record: %v", err)
	}
	if got, _ := planEstimates(t, f, noCache); got["target-native"] == "none" {
		t.Errorf("after a build over a bad record: no estimate")
	}
}

func TestEstimateString(t *testing.T) {
	for _, c := range []struct {
		e    build.Estimate
		want string
	}{
		{build.Estimate{Took: 382 * time.Millisecond, SameKey: true}, "400ms"},
		{build.Estimate{Took: 1520 * time.Millisecond}, "~1.5s"},
		{build.Estimate{Took: 12500 * time.Millisecond, SameKey: true}, "13s"},
		{build.Estimate{Took: 9*time.Minute + 59*time.Second}, "~9m59s"},
		{build.Estimate{Took: 87*time.Minute + 20*time.Second, SameKey: true}, "1h27m"},
		{build.Estimate{Took: 2 * time.Hour}, "~2h0m"},
	} {
		if got := c.e.String(); got != c.want {
			t.Errorf("%+v: %q, want %q", c.e, got, c.want)
		}
	}
}
