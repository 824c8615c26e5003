package registry

import (
	"context"
	"flag"
	"fmt"
	"os/exec"
	"path/filepath"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/crane"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/random"
	"github.com/google/go-containerregistry/pkg/v1/types"
	"github.com/serpent-os/serpent-oci/oci/image"
	"github.com/serpent-os/serpent-oci/oci/platform"
	"github.com/serpent-os/serpent-oci/oci/registry/registrytest"
	"github.com/serpent-os/serpent-oci/oci/store"

	"github.com/serpent-os/serpent-oci/oci/testenv"
)

var (
	benchStore  = flag.String("bench.store", "", "store holding the image BenchmarkPushPull moves (default: a made-up one of -bench.mb MB)")
	benchImage  = flag.String("bench.image", "", "its tag, NAME@OS/ARCH (with -bench.store)")
	benchMB     = flag.Int("bench.mb", 256, "size of the made-up image's layers, MB, in four incompressible layers")
	benchRounds = flag.Int("bench.rounds", 5, "rounds of each tool's push and pull, interleaved; their medians are compared")
)

// BenchmarkPushPull pushes one image from a store to a real registry on loopback (Debian's
// docker-registry, TLS and a password, as in the end-to-end tests) and pulls it back into a
// fresh store, and in the same run copies the same image between the same places with
// `skopeo copy`; skopeo's time is reported as a ratio to ours (above 1: we are faster). It
// then pushes the image again and fails unless that uploads no blob byte at all.
func BenchmarkPushPull(b *testing.B) {
	ctx := context.Background()
	d := registrytest.StartDistribution(b)
	b.Setenv("DOCKER_CONFIG", b.TempDir())
	c := New(Options{Transport: d.Transport()})
	if _, err := c.Login(ctx, d.Addr, d.User, d.Password); err != nil {
		b.Fatal(err)
	}
	st, tag, img := benchSource(b)
	size, _ := image.Size(img)
	creds := d.User + ":" + d.Password
	refName := tag.Name + "@" + platform.Slug(*tag.Platform)

	// Each tool's push and pull, interleaved round by round so that a load that comes and goes
	// falls on all of them alike; the median of each is reported.
	craneOpts := []crane.Option{crane.WithContext(ctx), crane.WithTransport(d.Transport()), crane.WithAuth(&authn.Basic{Username: d.User, Password: d.Password})}
	skopeo := func(args ...string) time.Duration {
		start := time.Now()
		if out, err := exec.Command("skopeo", append([]string{"copy", "-q"}, args...)...).CombinedOutput(); err != nil {
			b.Fatalf("skopeo copy %v: %v\n%s", args, err, out)
		}
		return time.Since(start)
	}
	var push, pull, skPush, skPull, crPush, crPull []time.Duration
	var round int
	for b.Loop() {
		for range *benchRounds {
			round++
			dst := ref(b, c, fmt.Sprintf("%s/ours/r%d:1", d.Addr, round))
			start := time.Now()
			if _, err := c.Push(ctx, img, dst, PushOptions{}); err != nil {
				b.Fatal(err)
			}
			push = append(push, time.Since(start))
			fresh, err := store.Open(ctx, b.TempDir())
			if err != nil {
				b.Fatal(err)
			}
			start = time.Now()
			if _, err := c.Pull(ctx, fresh, dst, *tag.Platform, "pulled"); err != nil {
				b.Fatal(err)
			}
			pull = append(pull, time.Since(start))

			// skopeo once: it remembers where it pushed a blob (its blob-info cache, outside
			// the test's reach) and mounts it into the next repository instead of uploading.
			if round == 1 {
				skRepo := "docker://" + d.Addr + "/skopeo/r1:1"
				skPush = append(skPush, skopeo("--dest-cert-dir", d.CertDir, "--dest-creds", creds, "oci:"+st.Dir()+":"+refName, skRepo))
				skPull = append(skPull, skopeo("--src-cert-dir", d.CertDir, "--src-creds", creds, skRepo, "oci:"+filepath.Join(b.TempDir(), "layout")+":pulled"))
			}

			// crane, the library the crane CLI is (go-containerregistry's, which serpent-oci's
			// registry code is built on): push the same image, and pull it into an OCI layout
			// as `crane pull --format=oci` does.
			crRepo := fmt.Sprintf("%s/crane/r%d:1", d.Addr, round)
			start = time.Now()
			if err := crane.Push(img, crRepo, craneOpts...); err != nil {
				b.Fatalf("crane push: %v", err)
			}
			crPush = append(crPush, time.Since(start))
			start = time.Now()
			pulled, err := crane.Pull(crRepo, craneOpts...)
			if err == nil {
				err = crane.SaveOCI(pulled, filepath.Join(b.TempDir(), "crane-layout"))
			}
			if err != nil {
				b.Fatalf("crane pull: %v", err)
			}
			crPull = append(crPull, time.Since(start))
		}
	}
	b.StopTimer()
	again, err := c.Push(ctx, img, ref(b, c, d.Addr+"/ours/r1:1"), PushOptions{})
	if err != nil {
		b.Fatal(err)
	}

	med := func(ds []time.Duration) float64 { return testenv.Median(ds).Seconds() }
	ourPush, ourPull := med(push), med(pull)
	fmt.Printf("\npush and pull of %s (%d MB compressed) on loopback, TLS, docker-registry; medians of %d rounds\n", tag, size>>20, len(pull))
	fmt.Printf("  %-22s %8.2fs   skopeo copy %8.2fs  %5.2fx serpent-oci's time\n", "push (new repository)", ourPush, med(skPush), med(skPush)/ourPush)
	fmt.Printf("  %-22s %8.2fs   skopeo copy %8.2fs  %5.2fx serpent-oci's time\n", "pull (fresh store)", ourPull, med(skPull), med(skPull)/ourPull)
	fmt.Printf("  %-22s %8.2fs   crane       %8.2fs  %5.2fx serpent-oci's time\n", "push (new repository)", ourPush, med(crPush), med(crPush)/ourPush)
	fmt.Printf("  %-22s %8.2fs   crane       %8.2fs  %5.2fx serpent-oci's time\n", "pull (fresh store)", ourPull, med(crPull), med(crPull)/ourPull)
	fmt.Printf("  %-22s %d blob bytes uploaded\n", "second push", again.Uploaded)
	b.ReportMetric(med(crPush)/ourPush, "x-crane-push")
	b.ReportMetric(med(crPull)/ourPull, "x-crane-pull")
	b.ReportMetric(med(skPush)/ourPush, "x-skopeo-push")
	b.ReportMetric(med(skPull)/ourPull, "x-skopeo-pull")
	b.ReportMetric(float64(again.Uploaded), "B-second-push")
	if again.Uploaded != 0 {
		b.Fatalf("the second push of the same image uploaded %d blob bytes", again.Uploaded)
	}
}

// benchSource is the image to move: -bench.image from -bench.store, or a made-up one.
func benchSource(b *testing.B) (*store.Store, store.Ref, v1.Image) {
	b.Helper()
	ctx := context.Background()
	if *benchStore != "" {
		st, err := store.Open(ctx, *benchStore)
		if err != nil {
			b.Fatal(err)
		}
		r, err := store.ParseRef(*benchImage)
		if err != nil || r.Platform == nil {
			b.Fatalf("-bench.image %q: want NAME@OS/ARCH (%v)", *benchImage, err)
		}
		img, _, err := st.Image(r)
		if err != nil {
			b.Fatal(err)
		}
		return st, r, img
	}
	st, err := store.Open(ctx, b.TempDir())
	if err != nil {
		b.Fatal(err)
	}
	img, err := image.Scratch(amd64, time.Unix(0, 0))
	if err != nil {
		b.Fatal(err)
	}
	for range 4 {
		l, err := random.Layer(int64(*benchMB)<<20/4, types.OCILayer)
		if err != nil {
			b.Fatal(err)
		}
		if img, err = mutate.AppendLayers(img, l); err != nil {
			b.Fatal(err)
		}
	}
	r := store.Ref{Name: "bench"}.WithPlatform(&amd64)
	if _, err := st.WriteImage(ctx, img, r); err != nil {
		b.Fatal(err)
	}
	stored, _, err := st.Image(r)
	if err != nil {
		b.Fatal(err)
	}
	return st, r, stored
}
