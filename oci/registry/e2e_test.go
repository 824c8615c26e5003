package registry

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"os/exec"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
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

// loggedIn returns a client of d that has logged in (credentials in a Docker config of the
// test's own).
func loggedIn(t *testing.T, d *registrytest.Distribution, opts Options) *Client {
	t.Helper()
	t.Setenv("DOCKER_CONFIG", t.TempDir())
	t.Setenv("HOME", t.TempDir())
	if opts.Transport == nil {
		opts.Transport = d.Transport()
	}
	c := New(opts)
	if _, err := c.Login(context.Background(), d.Addr, d.User, d.Password); err != nil {
		t.Fatalf("login: %v\n%s", err, d.Log())
	}
	return c
}

func TestDistributionTwoPlatformIndex(t *testing.T) {
	testenv.RequireTools(t, "skopeo")
	ctx := context.Background()
	d := registrytest.StartDistribution(t)
	c := loggedIn(t, d, Options{})

	imgs := []v1.Image{testImage(t, amd64), testImage(t, arm64)}
	idx, err := image.Index(imgs, nil)
	if err != nil {
		t.Fatal(err)
	}
	dst := ref(t, c, d.Addr+"/serpent/stage3:2026.11")
	if _, err := c.Push(ctx, idx, dst, PushOptions{}); err != nil {
		t.Fatalf("push: %v\n%s", err, d.Log())
	}

	// skopeo, with its own TLS and credential handling, reads what we pushed.
	out, err := exec.Command("skopeo", "inspect", "--raw", "--cert-dir", d.CertDir, "--creds", d.User+":"+d.Password, "docker://"+dst.String()).Output()
	if err != nil {
		t.Fatalf("skopeo inspect --raw: %v", err)
	}
	var im v1.IndexManifest
	if err := json.Unmarshal(out, &im); err != nil {
		t.Fatalf("skopeo inspect --raw printed %s: %v", out, err)
	}
	if im.MediaType != types.OCIImageIndex || len(im.Manifests) != 2 {
		t.Fatalf("index as skopeo reads it: %s with %d entries", im.MediaType, len(im.Manifests))
	}
	for i, m := range im.Manifests {
		want := []v1.Platform{amd64, arm64}[i]
		if m.Platform == nil || !platform.Equal(*m.Platform, want) || m.Platform.OS == "unknown" {
			t.Errorf("entry %d has platform %v, want %s", i, m.Platform, platform.String(want))
		}
	}

	// Each platform pulled into a fresh store is the image pushed.
	for i, p := range []v1.Platform{amd64, arm64} {
		got, err := c.Pull(ctx, newStore(t), dst, p, "stage3")
		if err != nil {
			t.Fatal(err)
		}
		if got.Digest != testenv.Digest(t, imgs[i]) {
			t.Errorf("%s: pulled %s, pushed %s", platform.String(p), got.Digest, testenv.Digest(t, imgs[i]))
		}
	}

	// Another repository of the same registry gets the layers by a cross-repository mount.
	other := ref(t, c, d.Addr+"/serpent/spin:1")
	p, err := c.Push(ctx, imgs[1], other, PushOptions{MountFrom: []name.Repository{dst.Context()}})
	if err != nil {
		t.Fatal(err)
	}
	if p.Uploaded > 4<<10 {
		t.Errorf("push with a mount source uploaded %d bytes: the layers were not mounted", p.Uploaded)
	}
	p, err = c.Push(ctx, imgs[1], ref(t, c, d.Addr+"/elsewhere/x:1"), PushOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if p.Uploaded < 128<<10 {
		t.Errorf("push to a new repository without a mount source uploaded only %d bytes", p.Uploaded)
	}
}

func TestDistributionRefusals(t *testing.T) {
	ctx := context.Background()
	d := registrytest.StartDistribution(t)
	t.Setenv("DOCKER_CONFIG", t.TempDir())
	t.Setenv("HOME", t.TempDir())
	img := testImage(t, amd64)

	// The test CA is not among the system roots: TLS is verified by default.
	c := New(Options{})
	_, err := c.Push(ctx, img, ref(t, c, d.Addr+"/x/y:1"), PushOptions{})
	if err == nil || !strings.Contains(err.Error(), "registry "+d.Addr+": TLS certificate not trusted") {
		t.Errorf("push to a registry with an unknown CA: %v", err)
	}
	// Named insecure, the same registry is reached (and asks for credentials).
	c = New(Options{Insecure: []string{d.Addr}})
	_, err = c.Push(ctx, img, ref(t, c, d.Addr+"/x/y:1"), PushOptions{})
	if err == nil || !strings.Contains(err.Error(), "registry "+d.Addr+" refused the credentials") {
		t.Errorf("push without credentials: %v", err)
	}
	// A wrong password: a line naming the registry, no HTTP text, no password.
	c = New(Options{Transport: d.Transport()})
	_, err = c.Login(ctx, d.Addr, d.User, "not-"+d.Password)
	if err == nil {
		t.Fatal("login with a wrong password succeeded")
	}
	msg := err.Error()
	if !strings.Contains(msg, "registry "+d.Addr+" refused the credentials") || strings.Contains(msg, "not-"+d.Password) ||
		strings.Contains(msg, "https://") || strings.Contains(msg, "\n") || strings.Contains(msg, "map[") {
		t.Errorf("wrong password: %q", msg)
	}
}

// stopAfter stops the registry once n bytes of blob uploads have gone through it.
type stopAfter struct {
	inner http.RoundTripper
	n     int64
	sent  atomic.Int64
	once  sync.Once
	stop  func()
}

func (s *stopAfter) RoundTrip(req *http.Request) (*http.Response, error) {
	if req.Body != nil && strings.Contains(req.URL.Path, "/blobs/uploads/") {
		req.Body = &tripwire{ReadCloser: req.Body, s: s}
	}
	return s.inner.RoundTrip(req)
}

type tripwire struct {
	io.ReadCloser
	s *stopAfter
}

func (w *tripwire) Read(p []byte) (int, error) {
	n, err := w.ReadCloser.Read(p)
	if w.s.sent.Add(int64(n)) > w.s.n {
		w.s.once.Do(w.s.stop)
	}
	return n, err
}

func TestDistributionStoppedMidPush(t *testing.T) {
	ctx := context.Background()
	d := registrytest.StartDistribution(t)
	trip := &stopAfter{inner: d.Transport(), n: 8 << 20, stop: d.Stop}
	c := loggedIn(t, d, Options{Transport: trip, Backoff: fastBackoff})

	img, err := image.Scratch(amd64, time.Unix(0, 0))
	if err != nil {
		t.Fatal(err)
	}
	big, err := random.Layer(48<<20, types.OCILayer)
	if err != nil {
		t.Fatal(err)
	}
	if img, err = mutate.AppendLayers(img, big); err != nil {
		t.Fatal(err)
	}
	dst := ref(t, c, d.Addr+"/serpent/big:1")
	_, err = c.Push(ctx, img, dst, PushOptions{})
	if err == nil {
		t.Fatal("push through a registry stopped in the middle succeeded")
	}
	if !strings.Contains(err.Error(), "registry "+d.Addr) {
		t.Errorf("error does not name the registry: %v", err)
	}
	d.Start()
	if _, err := c.Head(ctx, dst); !IsNotFound(err) {
		t.Errorf("after the interrupted push the registry has %s: %v\n%s", dst, err, d.Log())
	}
	trip.n = 1 << 62 // no more stops
	if _, err := c.Push(ctx, img, dst, PushOptions{}); err != nil {
		t.Fatalf("second push: %v", err)
	}
	got, err := c.Head(ctx, dst)
	if err != nil || got.Digest != testenv.Digest(t, img) {
		t.Errorf("after the second push: %v %v", got.Digest, err)
	}
}

// TestPushMountsWhatTheStoreKnows: a store remembers which repositories hold its layers (it
// pushed them there, or pulled them from there), so that a push to another repository of the
// same registry mounts them instead of uploading them again, with no mount source named; a
// record naming a repository that lacks the layers costs an upload, not the push.
func TestPushMountsWhatTheStoreKnows(t *testing.T) {
	ctx := context.Background()
	d := registrytest.StartDistribution(t)
	c := loggedIn(t, d, Options{})
	st := newStore(t)
	img := testImage(t, amd64)
	desc, err := st.WriteImage(ctx, img, store.Ref{Name: "x"}.WithPlatform(&amd64))
	if err != nil {
		t.Fatal(err)
	}
	stored, err := st.ImageByDigest(desc)
	if err != nil {
		t.Fatal(err)
	}
	push := func(st *store.Store, img v1.Image, to string) int64 {
		t.Helper()
		p, err := c.Push(ctx, img, ref(t, c, d.Addr+"/"+to), PushOptions{Store: st})
		if err != nil {
			t.Fatalf("push to %s: %v\n%s", to, err, d.Log())
		}
		return p.Uploaded
	}
	const layers = 2 * 64 << 10
	if n := push(st, stored, "first/x:1"); n < layers {
		t.Fatalf("first push uploaded %d bytes, want the layers' %d at least", n, layers)
	}
	if n := push(st, stored, "second/x:1"); n > 4<<10 {
		t.Errorf("second repository: %d bytes uploaded, the layers were not mounted from first/x", n)
	}

	// Pulled into another store, the layers are known to be in second/x: a push from there
	// to a third repository mounts them too.
	other := newStore(t)
	pulledDesc, err := c.Pull(ctx, other, ref(t, c, d.Addr+"/second/x:1"), amd64, "x")
	if err != nil {
		t.Fatal(err)
	}
	if got := other.DistributionSources(mustLayer(t, img, 0)); len(got) != 1 || got[0] != d.Addr+"/second/x" {
		t.Errorf("sources of a pulled layer: %v, want [%s/second/x]", got, d.Addr)
	}
	pulled, err := other.ImageByDigest(pulledDesc)
	if err != nil {
		t.Fatal(err)
	}
	if n := push(other, pulled, "third/x:1"); n > 4<<10 {
		t.Errorf("push of a pulled image: %d bytes uploaded, the layers were not mounted from second/x", n)
	}

	// A record naming a repository that never had the layers: the registry answers the
	// mount with an upload, and the push goes through.
	fresh := newStore(t)
	img2 := testImage(t, amd64)
	desc2, err := fresh.WriteImage(ctx, img2, store.Ref{Name: "y"}.WithPlatform(&amd64))
	if err != nil {
		t.Fatal(err)
	}
	nowhere, err := name.NewRepository(d.Addr + "/nowhere/y")
	if err != nil {
		t.Fatal(err)
	}
	if err := fresh.AddDistributionSource(nowhere, mustLayer(t, img2, 0), mustLayer(t, img2, 1)); err != nil {
		t.Fatal(err)
	}
	stored2, err := fresh.ImageByDigest(desc2)
	if err != nil {
		t.Fatal(err)
	}
	if n := push(fresh, stored2, "fourth/y:1"); n < layers {
		t.Errorf("push with a wrong record uploaded %d bytes, want the layers' %d", n, layers)
	}
}

func mustLayer(t *testing.T, img v1.Image, i int) v1.Hash {
	t.Helper()
	m, err := img.Manifest()
	if err != nil {
		t.Fatal(err)
	}
	return m.Layers[i].Digest
}
