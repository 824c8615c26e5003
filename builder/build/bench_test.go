package build_test

import (
	"flag"
	"fmt"
	"testing"
	"time"
)

var _ = flag.String("bench.tree", "", "unused here; make bench passes it to every package")

// buildkitCachedBuild is the peer figure: BuildKit's fully cached build of a small graph takes
// "1-3 seconds" (tilt-dev/tilt.build#381, measuring `docker build` with BuildKit on a cached
// image). BuildKit cannot run here (no daemon), so its lower bound stands in.
const buildkitCachedBuild = time.Second

// BenchmarkCachedBuild times a build of the three-stage test set when every stage is cached:
// plan, key computation and store lookups, and no container. Goal: under a second.
func BenchmarkCachedBuild(b *testing.B) {
	f := newFixtureB(b)
	if _, err := f.buildB(b); err != nil {
		b.Fatal(err)
	}
	var took time.Duration
	for b.Loop() {
		start := time.Now()
		rep, err := f.buildB(b)
		if err != nil {
			b.Fatal(err)
		}
		if rep.Containers() != 0 {
			b.Fatalf("a cached build ran %d containers", rep.Containers())
		}
		took = time.Since(start)
	}
	fmt.Printf("\nfully cached build of the 3-stage test set: %v (BuildKit, cached: %v or more: %.0fx)\n",
		took, buildkitCachedBuild, buildkitCachedBuild.Seconds()/took.Seconds())
	b.ReportMetric(float64(took.Microseconds())/1000, "ms-cached-build")
	b.ReportMetric(buildkitCachedBuild.Seconds()/took.Seconds(), "x-buildkit-cached")
}
