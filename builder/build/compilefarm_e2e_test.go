package build_test

import (
	"context"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/serpent-os/serpent-oci/builder"
	"github.com/serpent-os/serpent-oci/builder/build"
	"github.com/serpent-os/serpent-oci/builder/buildertest"
	"github.com/serpent-os/serpent-oci/builder/compilefarm"
	"github.com/serpent-os/serpent-oci/oci/platform"
	"github.com/serpent-os/serpent-oci/oci/store"
	"github.com/serpent-os/serpent-oci/oci/testenv"
)

// farmRecipe compiles three files, through distcc when the build gives it a compile farm.
const farmRecipe = `description: Three compiles, sent to a compile farm when there is one.
from: image:ccbox
runs-on: host
output: layer
platforms: [linux/amd64]
distribute: true
run: |
  cc=/usr/bin/cc
  if [ -n "${DISTCC_HOSTS:-}" ]; then cc="distcc /usr/bin/cc"; echo "farm: $DISTCC_HOSTS"; fi
  mkdir -p /work /usr/lib/objects && cd /work
  for n in 1 2 3; do
    echo "int f$n(void) { return $n; }" > f$n.c
    $cc -c f$n.c -o /usr/lib/objects/f$n.o
    sleep 1 # time for a test to stop a helper between compiles
  done
  rm -rf /work
`

// Real runc and Debian's distcc: a helper (compile-helper's distccd in the toolchain's image,
// in a network namespace of its own) takes a stage's three compiles, sent from the stage's
// namespace of loopback ports; the image is the one a build without the farm makes; a farm
// whose helper is gone builds locally and the same image again.
func TestCompileFarmBuildsTheLocalImage(t *testing.T) {
	buildertest.RequireRunc(t)
	testenv.RequireTools(t, "distcc", "distccd", "ldd")
	if platform.Host().Architecture != "amd64" {
		t.Skip("the test's base is the host's amd64 distcc")
	}
	ctx := context.Background()
	rootfs := filepath.Join(t.TempDir(), "rootfs")
	ccboxRootfs(t, rootfs, "distcc", "distccd")
	set := oneRecipeSet(t, farmRecipe)
	newStore := func(name string) (*store.Store, builder.Executor) { return ccboxStore(t, rootfs, name) }
	// tryBuild builds in a store of its own (another goroutine's too: it does not fail t).
	tryBuild := func(st *store.Store, r builder.Executor, farm []compilefarm.Helper) (build.StepResult, string, error) {
		rep, err := build.Run(ctx, build.Options{
			PlanOptions: build.PlanOptions{Store: st, Set: set, Platforms: []v1.Platform{amd64}},
			Runner:      r, CompileFarm: farm,
		}, "compile")
		if err != nil {
			return build.StepResult{}, "", err
		}
		log, _ := os.ReadFile(rep.Steps[0].Log)
		return rep.Steps[0], string(log), nil
	}
	buildIn := func(name string, farm []compilefarm.Helper) (build.StepResult, string) {
		t.Helper()
		st, r := newStore(name)
		res, log, err := tryBuild(st, r, farm)
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		return res, log
	}

	// The helper, on a store of its own (its machine).
	hst, hrun := newStore("helper")
	img, _, err := hst.Image(store.Ref{Name: "ccbox"}.WithPlatform(&amd64))
	if err != nil {
		t.Fatal(err)
	}
	startHelper := func() (addr string, log *testenv.Buffer, stop func() (compilefarm.HelperCounts, error)) {
		t.Helper()
		log = &testenv.Buffer{}
		hctx, cancel := context.WithCancel(ctx)
		ready := make(chan net.Addr, 1)
		type helperResult struct {
			counts compilefarm.HelperCounts
			err    error
		}
		done := make(chan helperResult, 1)
		go func() {
			c, err := compilefarm.RunHelper(hctx, hrun, img, "helper", amd64, t.TempDir(), compilefarm.HelperOptions{
				Listen: "127.0.0.1:0", Compilers: []string{"/usr/bin/cc"}, Log: log, Ready: func(a net.Addr) { ready <- a },
			})
			done <- helperResult{c, err}
		}()
		var once sync.Once
		var r helperResult
		stop = func() (compilefarm.HelperCounts, error) {
			once.Do(func() { cancel(); r = <-done })
			return r.counts, r.err
		}
		t.Cleanup(func() { stop() })
		select {
		case a := <-ready:
			waitForDistccd(t, log)
			return a.String(), log, stop
		case r := <-done:
			t.Fatalf("the helper ended before it served: %v\n%s", r.err, log)
		}
		return
	}
	addr, helperLog, stopHelper := startHelper()

	local, localLog := buildIn("local", nil)
	if strings.Contains(localLog, "farm:") {
		t.Errorf("a build without a farm gave the stage one:\n%s", localLog)
	}
	farmed, farmedLog := buildIn("farmed", []compilefarm.Helper{{Address: addr, Jobs: 2}})
	if !strings.Contains(farmedLog, "farm: 127.0.0.1:3632/2") {
		t.Errorf("the stage's DISTCC_HOSTS is not the farm's loopback port:\n%s", farmedLog)
	}
	if len(farmed.Farm) != 1 || farmed.Farm[0].Sent != 3 || farmed.Farm[0].Failed != 0 {
		t.Errorf("farm stats %+v, want 3 compiles sent, none failed", farmed.Farm)
	}
	if n := strings.Count(helperLog.String(), "COMPILE_OK"); n != 3 {
		t.Errorf("the helper's log has %d COMPILE_OK, want 3:\n%s", n, helperLog)
	}
	if farmed.Descriptor.Digest != local.Descriptor.Digest {
		t.Errorf("with the farm the image is %s, without %s", farmed.Descriptor.Digest, local.Descriptor.Digest)
	}

	gone, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	goneAddr := gone.Addr().String()
	gone.Close()
	fallback, _ := buildIn("fallback", []compilefarm.Helper{{Address: goneAddr, Jobs: 2}})
	if len(fallback.Farm) != 1 || fallback.Farm[0].Sent != 0 || fallback.Farm[0].Failed == 0 {
		t.Errorf("farm stats with the helper gone %+v, want none sent, some failed", fallback.Farm)
	}
	if fallback.Descriptor.Digest != local.Descriptor.Digest {
		t.Errorf("with the helper gone the image is %s, without a farm %s", fallback.Descriptor.Digest, local.Descriptor.Digest)
	}

	if counts, err := stopHelper(); err != nil || counts.Connections != 3 {
		t.Errorf("the helper ended with %+v, %v; want 3 connections and no error", counts, err)
	}

	// A helper that dies mid-build: the compiles after its death are made locally.
	addr, helperLog, stopHelper = startHelper()
	type built struct {
		res build.StepResult
		err error
	}
	midway := make(chan built, 1)
	mst, mrun := newStore("midway")
	go func() {
		res, _, err := tryBuild(mst, mrun, []compilefarm.Helper{{Address: addr, Jobs: 2}})
		midway <- built{res, err}
	}()
	for i := 0; strings.Count(helperLog.String(), "COMPILE_OK") == 0; i++ {
		if i > 600 {
			t.Fatalf("the helper took no compile in 30 s:\n%s", helperLog)
		}
		sleep()
	}
	stopHelper()
	b := <-midway
	if b.err != nil {
		t.Fatalf("with the helper stopped midway: %v", b.err)
	}
	if n := strings.Count(helperLog.String(), "COMPILE_OK"); n != 1 {
		t.Errorf("the helper compiled %d before it was stopped, want 1", n)
	}
	if len(b.res.Farm) != 1 || b.res.Farm[0].Sent != 1 || b.res.Farm[0].Failed == 0 {
		t.Errorf("farm stats with the helper stopped midway %+v, want 1 sent and the rest failed", b.res.Farm)
	}
	if b.res.Descriptor.Digest != local.Descriptor.Digest {
		t.Errorf("with the helper stopped midway the image is %s, without a farm %s", b.res.Descriptor.Digest, local.Descriptor.Digest)
	}
}

// waitForDistccd waits for distccd's log to say it listens.
func waitForDistccd(t *testing.T, log *testenv.Buffer) {
	t.Helper()
	for i := 0; !strings.Contains(log.String(), "listening on"); i++ {
		if i > 200 {
			t.Fatalf("distccd did not start:\n%s", log)
		}
		sleep()
	}
}

func sleep() { <-time.After(50 * time.Millisecond) }
