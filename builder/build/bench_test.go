package build_test

import (
	"context"
	"flag"
	"fmt"
	"net/http"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/authn"

	"github.com/serpent-os/serpent-oci/builder/build"
	"github.com/serpent-os/serpent-oci/oci/registry"
	"github.com/serpent-os/serpent-oci/oci/registry/registrytest"
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

// BenchmarkCacheHitFromEmptyStore builds the test set's last stage into an empty store from a
// cache that has every stage, against pulling the whole chain, which is what a build did before
// keys were resolved from manifests: bytes served by the registry and time, in the same run.
func BenchmarkCacheHitFromEmptyStore(b *testing.B) {
	ctx := context.Background()
	var served atomic.Int64
	host := registrytest.InMemory(b, func(h http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			h.ServeHTTP(countingWriter{w, &served}, r)
		})
	})
	client := registry.New(registry.Options{Keychain: authn.NewMultiKeychain()})
	repo, err := client.ParseRepository(host + "/serpent/cache")
	if err != nil {
		b.Fatal(err)
	}
	cache := &registry.Cache{Client: client, Repo: repo}
	_, _, baseRef, built := buildIntoCache(b, cache)
	var hitBytes, chainBytes int64
	var hitTook, chainTook time.Duration
	for b.Loop() {
		empty := newEmptyFixture(b)
		served.Store(0)
		start := time.Now()
		rep, err := empty.build(b, "target-native", func(o *build.Options) {
			o.Registry, o.CacheFrom, o.Images = client, []*registry.Cache{cache}, map[string]string{"busybox": baseRef.String()}
		})
		if err != nil {
			b.Fatal(err)
		}
		hitTook, hitBytes = time.Since(start), served.Load()
		if rep.Containers() != 0 || rep.Pulled() != 1 {
			b.Fatalf("cache hit: %d built, %d pulled", rep.Containers(), rep.Pulled())
		}

		whole := newEmptyFixture(b)
		served.Store(0)
		start = time.Now()
		for _, r := range built.Steps {
			ref := repo.Tag(registry.CacheTag(r.Step.Name(), r.Step.Key))
			if _, err := client.Pull(ctx, whole.st, ref, r.Step.Output, r.Step.Tag.Name); err != nil {
				b.Fatal(err)
			}
		}
		chainTook, chainBytes = time.Since(start), served.Load()
	}
	fmt.Printf("\ncache hit of the test set's last stage into an empty store: %d bytes served in %v; "+
		"pulling its chain (%d stages): %d bytes in %v (%.1fx the bytes, %.1fx the time)\n",
		hitBytes, hitTook.Round(time.Millisecond), len(built.Steps), chainBytes, chainTook.Round(time.Millisecond),
		float64(chainBytes)/float64(hitBytes), chainTook.Seconds()/hitTook.Seconds())
	b.ReportMetric(float64(hitBytes), "B-served-hit")
	b.ReportMetric(float64(chainBytes), "B-served-chain")
	b.ReportMetric(float64(chainBytes)/float64(hitBytes), "x-bytes-saved")
}

type countingWriter struct {
	http.ResponseWriter
	n *atomic.Int64
}

func (w countingWriter) Write(p []byte) (int, error) {
	n, err := w.ResponseWriter.Write(p)
	w.n.Add(int64(n))
	return n, err
}
