package registry

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/containerd/log"
	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/random"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/types"
	"github.com/serpent-os/serpent-oci/oci/image"
	"github.com/serpent-os/serpent-oci/oci/platform"
	"github.com/serpent-os/serpent-oci/oci/progress"
	"github.com/serpent-os/serpent-oci/oci/registry/registrytest"
	"github.com/serpent-os/serpent-oci/oci/store"
	"github.com/serpent-os/serpent-oci/oci/testenv"
	"github.com/sirupsen/logrus"
)

var (
	amd64 = v1.Platform{OS: "linux", Architecture: "amd64"}
	arm64 = v1.Platform{OS: "linux", Architecture: "arm64"}
)

// fastBackoff keeps retry tests short.
var fastBackoff = remote.Backoff{Duration: 10 * time.Millisecond, Factor: 1, Steps: 5}

// testImage is an OCI image for p with two random layers.
func testImage(t *testing.T, p v1.Platform) v1.Image {
	t.Helper()
	img, err := image.Scratch(p, time.Unix(0, 0))
	if err != nil {
		t.Fatal(err)
	}
	for range 2 {
		l, err := random.Layer(64<<10, types.OCILayer)
		if err != nil {
			t.Fatal(err)
		}
		if img, err = mutate.AppendLayers(img, l); err != nil {
			t.Fatal(err)
		}
	}
	return img
}

func newStore(t *testing.T) *store.Store {
	t.Helper()
	st, err := store.Open(context.Background(), t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	return st
}

func ref(t testing.TB, c *Client, s string) name.Reference {
	t.Helper()
	r, err := c.ParseReference(s)
	if err != nil {
		t.Fatal(err)
	}
	return r
}

func TestPushPullRoundTrip(t *testing.T) {
	ctx := context.Background()
	host := registrytest.InMemory(t, nil)
	c := New(Options{Keychain: authn.NewMultiKeychain()})
	img := testImage(t, arm64)
	dst := ref(t, c, host+"/serpent/stage3:test")

	first, err := c.Push(ctx, img, dst, PushOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if first.Descriptor.Digest != testenv.Digest(t, img) {
		t.Errorf("pushed %s, image is %s", first.Descriptor.Digest, testenv.Digest(t, img))
	}
	if size, _ := image.Size(img); first.Uploaded < size-(16<<10) {
		t.Errorf("first push uploaded %d bytes, the image's blobs are %d", first.Uploaded, size)
	}
	second, err := c.Push(ctx, img, dst, PushOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if second.Uploaded != 0 {
		t.Errorf("second push of the same image uploaded %d blob bytes, want 0", second.Uploaded)
	}

	st := newStore(t)
	d, err := c.Pull(ctx, st, dst, arm64, "stage3")
	if err != nil {
		t.Fatal(err)
	}
	if d.Digest != testenv.Digest(t, img) {
		t.Errorf("pulled %s, pushed %s", d.Digest, testenv.Digest(t, img))
	}
	got, _, err := st.Image(store.Ref{Name: "stage3"}.WithPlatform(&arm64))
	if err != nil {
		t.Fatal(err)
	}
	if testenv.Digest(t, got) != testenv.Digest(t, img) {
		t.Errorf("store has %s under stage3@linux/arm64", testenv.Digest(t, got))
	}
	if res, err := st.Fsck(ctx); err != nil || len(res.Problems) > 0 {
		t.Errorf("fsck after pull: %v %v", res.Problems, err)
	}

	if _, err := c.Pull(ctx, st, dst, amd64, "stage3"); err == nil || !strings.Contains(err.Error(), "is for linux/arm64, not linux/amd64") {
		t.Errorf("pulling an arm64 image for amd64: %v", err)
	}
}

func TestIndexPushAndPlatformPick(t *testing.T) {
	ctx := context.Background()
	host := registrytest.InMemory(t, nil)
	c := New(Options{Keychain: authn.NewMultiKeychain()})
	imgs := []v1.Image{testImage(t, amd64), testImage(t, arm64)}
	idx, err := image.Index(imgs, []string{"a", "b"})
	if err != nil {
		t.Fatal(err)
	}
	dst := ref(t, c, host+"/serpent/stage3:multi")
	if _, err := c.Push(ctx, idx, dst, PushOptions{}); err != nil {
		t.Fatal(err)
	}
	raw, err := remote.Get(dst)
	if err != nil {
		t.Fatal(err)
	}
	var im v1.IndexManifest
	if err := json.Unmarshal(raw.Manifest, &im); err != nil {
		t.Fatal(err)
	}
	if raw.MediaType != types.OCIImageIndex || len(im.Manifests) != 2 {
		t.Fatalf("pushed %s with %d entries", raw.MediaType, len(im.Manifests))
	}
	for i, m := range im.Manifests {
		want := []v1.Platform{amd64, arm64}[i]
		if m.Platform == nil || !platform.Equal(*m.Platform, want) || m.Digest != testenv.Digest(t, imgs[i]) {
			t.Errorf("entry %d: %v %s, want %s %s", i, m.Platform, m.Digest, platform.String(want), testenv.Digest(t, imgs[i]))
		}
	}
	for i, p := range []v1.Platform{amd64, arm64} {
		st := newStore(t)
		d, err := c.Pull(ctx, st, dst, p, "stage3")
		if err != nil {
			t.Fatal(err)
		}
		if d.Digest != testenv.Digest(t, imgs[i]) {
			t.Errorf("pull for %s: %s, want %s", platform.String(p), d.Digest, testenv.Digest(t, imgs[i]))
		}
	}
	riscv := v1.Platform{OS: "linux", Architecture: "riscv64"}
	if _, err := c.Pull(ctx, newStore(t), dst, riscv, "x"); err == nil || !strings.Contains(err.Error(), "no image for linux/riscv64") {
		t.Errorf("pull for a platform the index lacks: %v", err)
	}
}

func TestIndexRefusesDuplicatesAndNoPlatform(t *testing.T) {
	if _, err := image.Index([]v1.Image{testImage(t, arm64), testImage(t, arm64)}, []string{"x:1", "y:2"}); err == nil || !strings.Contains(err.Error(), "x:1 and y:2 are both for linux/arm64") {
		t.Errorf("two arm64 images: %v", err)
	}
	noPlatform, err := random.Image(10, 1)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := image.Index([]v1.Image{noPlatform}, []string{"z"}); err == nil || !strings.Contains(err.Error(), "z: its config names no platform") {
		t.Errorf("an image without platform: %v", err)
	}
}

func TestJoinIndex(t *testing.T) {
	ctx := context.Background()
	host := registrytest.InMemory(t, nil)
	c := New(Options{Keychain: authn.NewMultiKeychain()})
	a, b := testImage(t, amd64), testImage(t, arm64)
	ra, rb := ref(t, c, host+"/ci/amd64:1"), ref(t, c, host+"/ci/arm64:1")
	for img, r := range map[v1.Image]name.Reference{a: ra, b: rb} {
		if _, err := c.Push(ctx, img, r, PushOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	dst := ref(t, c, host+"/serpent/stage3:1")
	p, err := c.JoinIndex(ctx, dst, []name.Reference{ra, rb})
	if err != nil {
		t.Fatal(err)
	}
	for i, pl := range []v1.Platform{amd64, arm64} {
		img, err := c.Image(ctx, dst, pl)
		if err != nil {
			t.Fatal(err)
		}
		if testenv.Digest(t, img) != testenv.Digest(t, []v1.Image{a, b}[i]) {
			t.Errorf("%s in the joined index: %s", platform.String(pl), testenv.Digest(t, img))
		}
	}
	// Joining an index with an image of a platform it already has is refused.
	if _, err := c.JoinIndex(ctx, ref(t, c, host+"/serpent/stage3:2"), []name.Reference{dst, ra}); err == nil || !strings.Contains(err.Error(), "are both for linux/amd64") {
		t.Errorf("join with a repeated platform: %v", err)
	}
	if p.Descriptor.MediaType != types.OCIImageIndex {
		t.Errorf("joined index is %s", p.Descriptor.MediaType)
	}
}

// basicAuth answers 401 with a Basic challenge unless the request carries user:pass.
func basicAuth(user, pass string) func(http.Handler) http.Handler {
	return func(h http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if u, p, ok := r.BasicAuth(); !ok || u != user || p != pass {
				w.Header().Set("WWW-Authenticate", `Basic realm="test"`)
				w.Header().Set("Content-Type", "application/json")
				w.WriteHeader(http.StatusUnauthorized)
				w.Write([]byte(`{"errors":[{"code":"UNAUTHORIZED","message":"authentication required"}]}`))
				return
			}
			h.ServeHTTP(w, r)
		})
	}
}

func TestLoginAndCredentialErrors(t *testing.T) {
	ctx := context.Background()
	host := registrytest.InMemory(t, basicAuth("builder", "s3cret-pass"))
	cfgDir := t.TempDir()
	t.Setenv("DOCKER_CONFIG", cfgDir)
	t.Setenv("HOME", t.TempDir())

	c := New(Options{})
	img := testImage(t, amd64)
	dst := ref(t, c, host+"/serpent/x:1")

	_, err := c.Push(ctx, img, dst, PushOptions{})
	if err == nil || !strings.Contains(err.Error(), "registry "+host+" refused the credentials") {
		t.Errorf("push without credentials: %v", err)
	}
	if _, err := c.Login(ctx, host, "builder", "wrong-pass"); err == nil || !strings.Contains(err.Error(), host) || strings.Contains(err.Error(), "wrong-pass") {
		t.Errorf("login with a wrong password: %v", err)
	}
	if _, err := os.Stat(filepath.Join(cfgDir, "config.json")); err == nil {
		t.Error("a refused login wrote the Docker config")
	}
	file, err := c.Login(ctx, host, "builder", "s3cret-pass")
	if err != nil {
		t.Fatal(err)
	}
	if file != filepath.Join(cfgDir, "config.json") {
		t.Errorf("login wrote %s", file)
	}
	if fi, err := os.Stat(file); err != nil || fi.Mode().Perm() != 0o600 {
		t.Errorf("config file: %v %v", fi, err)
	}
	// A new client (the keychain reads the file afresh) pushes with the stored credentials.
	if _, err := New(Options{}).Push(ctx, img, dst, PushOptions{}); err != nil {
		t.Fatalf("push after login: %v", err)
	}
	if err := c.Logout(host); err != nil {
		t.Fatal(err)
	}
	_, err = New(Options{}).Push(ctx, img, ref(t, c, host+"/serpent/x:2"), PushOptions{})
	if err == nil || strings.Contains(err.Error(), "s3cret") {
		t.Errorf("push after logout: %v", err)
	}
}

func TestNotFound(t *testing.T) {
	ctx := context.Background()
	host := registrytest.InMemory(t, nil)
	c := New(Options{Keychain: authn.NewMultiKeychain()})
	_, err := c.Pull(ctx, newStore(t), ref(t, c, host+"/nothing/here:1"), amd64, "x")
	if !IsNotFound(err) || !strings.Contains(err.Error(), host) {
		t.Errorf("pull of a missing image: %v", err)
	}
	if strings.Contains(err.Error(), "GET ") || strings.Contains(err.Error(), "http://") {
		t.Errorf("error carries HTTP noise: %v", err)
	}
}

// flaky fails the first n blob upload requests with 503 and cuts the next n connections.
func flaky(n int32) (func(http.Handler) http.Handler, *atomic.Int32) {
	var seen atomic.Int32
	return func(h http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if strings.Contains(r.URL.Path, "/blobs/") && r.Method != http.MethodHead {
				switch k := seen.Add(1); {
				case k <= n:
					w.WriteHeader(http.StatusServiceUnavailable)
					return
				case k <= 2*n:
					conn, _, err := w.(http.Hijacker).Hijack()
					if err == nil {
						conn.Close()
					}
					return
				}
			}
			h.ServeHTTP(w, r)
		})
	}, &seen
}

func TestRetriesOn5xxAndBrokenConnections(t *testing.T) {
	ctx := context.Background()
	wrap, seen := flaky(1)
	host := registrytest.InMemory(t, wrap)
	c := New(Options{Keychain: authn.NewMultiKeychain(), Backoff: fastBackoff})
	img := testImage(t, amd64)
	dst := ref(t, c, host+"/serpent/flaky:1")
	if _, err := c.Push(ctx, img, dst, PushOptions{}); err != nil {
		t.Fatalf("push through a 503 and a cut connection: %v", err)
	}
	if seen.Load() < 3 {
		t.Errorf("the flaky registry saw %d blob requests: the failures never happened", seen.Load())
	}
	seen.Store(0)
	if _, err := c.Pull(ctx, newStore(t), dst, amd64, "flaky"); err != nil {
		t.Fatalf("pull through a 503 and a cut connection: %v", err)
	}
}

func TestPlainHTTPPolicy(t *testing.T) {
	var reached []string
	inner := roundTripFunc(func(r *http.Request) (*http.Response, error) {
		reached = append(reached, r.URL.String())
		return &http.Response{StatusCode: 200, Body: http.NoBody, Request: r}, nil
	})
	p := &policy{secure: inner, insecure: inner, hosts: []string{"10.0.0.9:5000"}}
	for _, tc := range []struct {
		url string
		ok  bool
	}{
		{"http://127.0.0.1:5000/v2/", true},
		{"http://localhost:5000/v2/", true},
		{"http://[::1]:5000/v2/", true},
		{"http://10.0.0.9:5000/v2/", true}, // named insecure
		{"http://10.0.0.8:5000/v2/", false},
		{"http://registry.local:5000/v2/", false},
		{"https://10.0.0.8:5000/v2/", true},
	} {
		req, _ := http.NewRequest(http.MethodGet, tc.url, nil)
		_, err := p.RoundTrip(req)
		if (err == nil) != tc.ok {
			t.Errorf("%s: err %v, want allowed=%v", tc.url, err, tc.ok)
		}
		if err != nil && !strings.Contains(err.Error(), "--insecure-registry") {
			t.Errorf("%s: %v does not say how to allow it", tc.url, err)
		}
	}
	if len(reached) != 5 {
		t.Errorf("%d requests went through, want 5", len(reached))
	}
}

type roundTripFunc func(*http.Request) (*http.Response, error)

func (f roundTripFunc) RoundTrip(r *http.Request) (*http.Response, error) { return f(r) }

func TestCache(t *testing.T) {
	ctx := context.Background()
	host := registrytest.InMemory(t, nil)
	c := New(Options{Keychain: authn.NewMultiKeychain()})
	repo, err := c.ParseRepository(host + "/serpent/cache")
	if err != nil {
		t.Fatal(err)
	}
	cache := &Cache{Client: c, Repo: repo}
	key := "sha256:" + strings.Repeat("ab", 32)
	img, _, err := cache.Find(ctx, "stage2", key)
	if err != nil || img != nil {
		t.Fatalf("find in an empty cache: %v %v", img, err)
	}
	want := testImage(t, arm64)
	if _, err := cache.Put(ctx, "stage2", key, want); err != nil {
		t.Fatal(err)
	}
	again, err := cache.Put(ctx, "stage2", key, want)
	if err != nil || again.Uploaded != 0 {
		t.Errorf("second put: uploaded %d, %v", again.Uploaded, err)
	}
	img, r, err := cache.Find(ctx, "stage2", key)
	if err != nil || img == nil {
		t.Fatalf("find after put: %v %v", img, err)
	}
	if testenv.Digest(t, img) != testenv.Digest(t, want) || r.Identifier() != "stage2-"+strings.Repeat("ab", 32) {
		t.Errorf("found %s at %s", testenv.Digest(t, img), r)
	}
}

func TestCacheTag(t *testing.T) {
	hex := strings.Repeat("0f", 32)
	for _, tc := range []struct{ stage, want string }{
		{"stage2.5", "stage2.5-" + hex},
		{"my stage/x", "my_stage_x-" + hex},
		{strings.Repeat("s", 100), strings.Repeat("s", 63) + "-" + hex},
	} {
		if got := CacheTag(tc.stage, "sha256:"+hex); got != tc.want {
			t.Errorf("CacheTag(%q) = %q, want %q", tc.stage, got, tc.want)
		} else if _, err := name.NewTag("r/x:" + got); err != nil {
			t.Errorf("CacheTag(%q) = %q is not a valid tag: %v", tc.stage, got, err)
		}
	}
}

// slow delays every request, so that a transfer lasts long enough to report progress.
type slow struct{ inner http.RoundTripper }

func (s slow) RoundTrip(r *http.Request) (*http.Response, error) {
	time.Sleep(20 * time.Millisecond)
	return s.inner.RoundTrip(r)
}

func TestProgressLines(t *testing.T) {
	ctx := context.Background()
	host := registrytest.InMemory(t, nil)
	var out strings.Builder
	c := New(Options{Keychain: authn.NewMultiKeychain(), Progress: &out, ProgressInterval: time.Millisecond, Transport: slow{http.DefaultTransport}})
	img := testImage(t, amd64)
	dst := ref(t, c, host+"/serpent/progress:1")
	if _, err := c.Push(ctx, img, dst, PushOptions{}); err != nil {
		t.Fatal(err)
	}
	if _, err := c.Pull(ctx, newStore(t), dst, amd64, "p"); err != nil {
		t.Fatal(err)
	}
	size, _ := image.Size(img)
	for _, want := range []string{"pushing " + dst.String() + ": ", "pulling " + dst.String() + ": ", " MiB/s)"} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("progress output lacks %q:\n%s", want, out.String())
		}
	}
	// The last pull line has every byte of the layers.
	lines := strings.Split(strings.TrimSpace(out.String()), "\n")
	last := lines[len(lines)-1]
	layers := size - int64(len(mustRawConfig(t, img)))
	if !strings.Contains(last, progress.MiB(layers)+" of "+progress.MiB(layers)) {
		t.Errorf("last progress line %q, want all %s", last, progress.MiB(layers))
	}
}

func mustRawConfig(t *testing.T, img v1.Image) []byte {
	t.Helper()
	b, err := img.RawConfigFile()
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// stalling makes the registry's blob downloads trickle (one byte every 50 ms) or stop (headers,
// then nothing), as a hostile or broken registry might.
func stalling(mode string) func(http.Handler) http.Handler {
	return func(h http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if !strings.Contains(r.URL.Path, "/blobs/") || r.Method != http.MethodGet {
				h.ServeHTTP(w, r)
				return
			}
			w.WriteHeader(http.StatusOK)
			w.(http.Flusher).Flush()
			for {
				select {
				case <-r.Context().Done():
					return
				case <-time.After(50 * time.Millisecond):
				}
				if mode == "trickle" {
					if _, err := w.Write([]byte("x")); err != nil {
						return
					}
					w.(http.Flusher).Flush()
				}
			}
		})
	}
}

// TestStalledDownloadsAreCut: a registry that sends one byte every 50 ms, or nothing after its
// headers, makes the pull fail saying so, instead of holding it forever.
func TestStalledDownloadsAreCut(t *testing.T) {
	for _, tc := range []struct{ mode, want string }{{"trickle", "too slow, cut"}, {"stop", "sent nothing for 400ms"}} {
		t.Run(tc.mode, func(t *testing.T) {
			host := registrytest.InMemory(t, stalling(tc.mode))
			good := New(Options{Keychain: authn.NewMultiKeychain(), Backoff: fastBackoff})
			dst := ref(t, good, host+"/serpent/stall:1")
			if _, err := good.Push(context.Background(), testImage(t, amd64), dst, PushOptions{}); err != nil {
				t.Fatal(err)
			}
			c := New(Options{Keychain: authn.NewMultiKeychain(), Backoff: fastBackoff,
				IdleTimeout: 400 * time.Millisecond, StallWindow: 400 * time.Millisecond, MinBytes: 1024})
			ctx, cancel := context.WithTimeout(context.Background(), time.Minute) // a guard, not the limit under test
			defer cancel()
			_, err := c.Pull(ctx, newStore(t), dst, amd64, "stall")
			if err == nil || !strings.Contains(err.Error(), tc.want) || ctx.Err() != nil {
				t.Fatalf("pull from a registry that stalls (%s): %v", tc.mode, err)
			}
		})
	}
}

// TestRetriesAreAnnounced: a registry that hangs up without answering is said to be retried,
// with the tries left, once per try, and given up on by name; a refused connection is not
// retried at all (nothing listens there), and nothing is said of a request that succeeds.
func TestRetriesAreAnnounced(t *testing.T) {
	var logs bytes.Buffer
	logger := logrus.New()
	logger.SetOutput(&logs)
	logger.SetFormatter(&logrus.TextFormatter{DisableTimestamp: true})
	ctx := log.WithLogger(context.Background(), logrus.NewEntry(logger))
	c := New(Options{Keychain: authn.NewMultiKeychain(), Backoff: remote.Backoff{Duration: 10 * time.Millisecond, Factor: 2, Steps: 3}})

	// A server that accepts each connection and closes it: every answer is cut short.
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close() })
	go func() {
		for {
			conn, err := l.Accept()
			if err != nil {
				return
			}
			conn.Close()
		}
	}()
	hangsUp := l.Addr().String()
	if _, err := c.Head(ctx, ref(t, c, hangsUp+"/serpent/x:1")); err == nil {
		t.Fatal("Head on a server that hangs up succeeded")
	}
	out := logs.String()
	for _, want := range []string{
		// What the client reads is EOF or a reset, as the close races the request.
		"registry " + hangsUp + ": ", ": try 1 of 3 failed, retrying in 10ms",
		"try 2 of 3 failed, retrying in 20ms", "giving up after 3 tries",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("the log lacks %q:\n%s", want, out)
		}
	}
	if n := strings.Count(out, "try 1 of 3 failed"); n != 1 {
		t.Errorf("the first retry was announced %d times:\n%s", n, out)
	}

	logs.Reset()
	closed, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	gone := closed.Addr().String()
	closed.Close() // nothing listens there now: every connection is refused
	_, err = c.Head(ctx, ref(t, c, gone+"/serpent/x:1"))
	if err == nil || !strings.Contains(err.Error(), "connection refused") {
		t.Errorf("Head on a closed port: %v, want an error saying the connection was refused", err)
	}
	if strings.Contains(logs.String(), "retrying") {
		t.Errorf("a refused connection was retried:\n%s", logs.String())
	}

	logs.Reset()
	wrap, _ := flaky(0)
	host := registrytest.InMemory(t, wrap)
	if _, err := c.Push(ctx, testImage(t, amd64), ref(t, c, host+"/serpent/ok:1"), PushOptions{}); err != nil {
		t.Fatal(err)
	}
	if strings.Contains(logs.String(), "retrying") {
		t.Errorf("a push that never failed announced retries:\n%s", logs.String())
	}
}

// pushReferrer pushes to repo an artifact about subject holding data, with annotations,
// made by a scratch store as a build's SBOM is.
func pushReferrer(t *testing.T, c *Client, repo name.Repository, subject v1.Descriptor, data []byte, annotations map[string]string) {
	t.Helper()
	scratch := newStore(t)
	d, err := scratch.WriteReferrer(context.Background(), subject, "application/spdx+json", "application/spdx+json", data, annotations)
	if err != nil {
		t.Fatal(err)
	}
	art, err := scratch.ReferrerImage(d)
	if err != nil {
		t.Fatal(err)
	}
	if err := c.PushReferrers(context.Background(), repo, []v1.Image{art}); err != nil {
		t.Fatal(err)
	}
}

func TestPullReferrers(t *testing.T) {
	ctx := context.Background()
	c := New(Options{Keychain: authn.NewMultiKeychain()})
	setup := func(t *testing.T) (name.Reference, v1.Descriptor, *store.Store) {
		host := registrytest.InMemory(t, nil)
		dst := ref(t, c, host+"/serpent/stage3:test")
		if _, err := c.Push(ctx, testImage(t, arm64), dst, PushOptions{}); err != nil {
			t.Fatal(err)
		}
		st := newStore(t)
		d, err := c.Pull(ctx, st, dst, arm64, "stage3")
		if err != nil {
			t.Fatal(err)
		}
		return dst, d, st
	}

	t.Run("stored with their annotations, never as tags", func(t *testing.T) {
		dst, d, st := setup(t)
		pushReferrer(t, c, dst.Context(), d, []byte(`{"spdxVersion":"SPDX-2.3"}`), map[string]string{"os.serpent.oci.accelerator": "sha256:abc"})
		// A hostile registry's artifact naming a tag of the store must not become that tag.
		pushReferrer(t, c, dst.Context(), d, []byte(`{"hostile":true}`), map[string]string{"org.opencontainers.image.ref.name": "stage3@linux-amd64"})
		n, err := c.PullReferrers(ctx, st, dst.Context(), d, "application/spdx+json")
		if err != nil || n != 2 {
			t.Fatalf("PullReferrers: %d, %v; want 2", n, err)
		}
		refs, err := st.Referrers(d.Digest, "application/spdx+json")
		if err != nil || len(refs) != 2 {
			t.Fatalf("store's referrers: %v %v", refs, err)
		}
		var accelerated int
		for _, r := range refs {
			if r.Annotations["os.serpent.oci.accelerator"] == "sha256:abc" {
				accelerated++
				if data, err := st.ReferrerData(r); err != nil || string(data) != `{"spdxVersion":"SPDX-2.3"}` {
					t.Errorf("referrer data: %q %v", data, err)
				}
			}
		}
		if accelerated != 1 {
			t.Errorf("%d referrers kept the accelerator annotation, want 1", accelerated)
		}
		tags, err := st.Tags()
		if err != nil || len(tags) != 1 || tags[0].Ref.String() != "stage3@linux-arm64" {
			t.Errorf("store's tags after pulling referrers: %+v %v", tags, err)
		}
		if _, err := st.Resolve(store.Ref{Name: "stage3"}.WithPlatform(&amd64)); err == nil {
			t.Error("a referrer's ref.name annotation resolved as a tag")
		}
		// Pulled again, nothing changes.
		if n, err := c.PullReferrers(ctx, st, dst.Context(), d, ""); err != nil || n != 2 {
			t.Errorf("second PullReferrers: %d %v", n, err)
		}
		if refs, _ := st.Referrers(d.Digest, ""); len(refs) != 2 {
			t.Errorf("%d referrers after a second pull, want 2", len(refs))
		}
		if res, err := st.Fsck(ctx); err != nil || len(res.Problems) > 0 {
			t.Errorf("fsck after pulling referrers: %v %v", res.Problems, err)
		}
	})

	refusals := []struct {
		name  string
		push  func(t *testing.T, repo name.Repository, d v1.Descriptor)
		error string
	}{
		{"too many", func(t *testing.T, repo name.Repository, d v1.Descriptor) {
			for i := range maxReferrers + 1 {
				pushReferrer(t, c, repo, d, []byte(strings.Repeat("x", i+1)), nil)
			}
		}, "more than the 16 taken"},
		{"too large", func(t *testing.T, repo name.Repository, d v1.Descriptor) {
			pushReferrer(t, c, repo, d, bytes.Repeat([]byte("x"), maxReferrerBytes+1), nil)
		}, "a layer of 8388609 bytes, more than the 8388608 taken"},
		{"too many annotations", func(t *testing.T, repo name.Repository, d v1.Descriptor) {
			pushReferrer(t, c, repo, d, []byte("{}"), map[string]string{"k": strings.Repeat("v", maxReferrerAnnotationBytes)})
		}, "bytes of annotations, more than the 65536 taken"},
	}
	for _, tc := range refusals {
		t.Run(tc.name, func(t *testing.T) {
			dst, d, st := setup(t)
			tc.push(t, dst.Context(), d)
			_, err := c.PullReferrers(ctx, st, dst.Context(), d, "")
			if err == nil || !strings.Contains(err.Error(), tc.error) {
				t.Errorf("PullReferrers: %v, want an error saying %q", err, tc.error)
			}
			if refs, _ := st.Referrers(d.Digest, ""); len(refs) != 0 {
				t.Errorf("a refused pull stored %d referrers", len(refs))
			}
		})
	}
}

// rawManifest is a manifest pushed as the bytes it is, whatever it declares.
type rawManifest struct{ raw []byte }

func (r rawManifest) RawManifest() ([]byte, error)        { return r.raw, nil }
func (r rawManifest) MediaType() (types.MediaType, error) { return types.OCIManifestSchema1, nil }

// TestPullRefusesImagesPastTheBounds: a registry's manifest that declares a config the store
// would not read back, or more layers than it takes, is refused from the manifest alone: no
// blob is asked for.
func TestPullRefusesImagesPastTheBounds(t *testing.T) {
	ctx := context.Background()
	c := New(Options{Keychain: authn.NewMultiKeychain()})
	host, blobGets := registrytest.InMemoryCountingBlobGets(t)
	cfg := v1.Descriptor{MediaType: types.OCIConfigJSON, Digest: v1.Hash{Algorithm: "sha256", Hex: strings.Repeat("a", 64)}, Size: 2}
	layer := v1.Descriptor{MediaType: types.OCILayer, Digest: v1.Hash{Algorithm: "sha256", Hex: strings.Repeat("b", 64)}, Size: 10}
	for i, tc := range []struct {
		name   string
		change func(m *v1.Manifest)
		want   string
	}{
		{"a 1 GiB config", func(m *v1.Manifest) { m.Config.Size = 1 << 30 }, "a config of 1073741824 bytes: at most 16777216"},
		{"1,001 layers", func(m *v1.Manifest) {
			for range store.MaxLayers {
				m.Layers = append(m.Layers, layer)
			}
		}, "1001 layers: at most 1000"},
		{"a negative layer size", func(m *v1.Manifest) { m.Layers[0].Size = -1 }, "layer 0: a size of -1 bytes"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			m := v1.Manifest{SchemaVersion: 2, MediaType: types.OCIManifestSchema1, Config: cfg, Layers: []v1.Descriptor{layer}}
			tc.change(&m)
			raw, err := json.Marshal(m)
			if err != nil {
				t.Fatal(err)
			}
			dst := ref(t, c, fmt.Sprintf("%s/serpent/hostile:%d", host, i))
			if err := remote.Put(dst, rawManifest{raw}); err != nil {
				t.Fatal(err)
			}
			blobGets.Store(0)
			st := newStore(t)
			_, err = c.Pull(ctx, st, dst, arm64, "hostile")
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("pull: %v, want an error saying %q", err, tc.want)
			}
			if n := blobGets.Load(); n != 0 {
				t.Errorf("%d blob requests before refusing", n)
			}
			if tags, _ := st.Tags(); len(tags) != 0 {
				t.Errorf("a refused pull tagged %v", tags)
			}
		})
	}
}

// TestPullRefusesBlobsNotTheirDigest: a registry that serves other bytes for a layer (one
// byte changed, cut short, longer, or a Content-Length that lies) fails the pull with the
// layer named; nothing is tagged, the store holds no blob under that digest, and no partial
// file is left. The store hashes a pulled layer only once (the remote layer's stream checks
// it: store.VerifiedLayer), so this is what keeps a pull honest.
func TestPullRefusesBlobsNotTheirDigest(t *testing.T) {
	ctx := context.Background()
	img := testImage(t, arm64)
	layers, err := img.Layers()
	if err != nil {
		t.Fatal(err)
	}
	bad, err := layers[0].Digest()
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name   string
		serve  func(w http.ResponseWriter, body []byte)
		refuse bool
	}{
		{"served as it is", func(w http.ResponseWriter, body []byte) { w.Write(body) }, false},
		{"one byte changed", func(w http.ResponseWriter, body []byte) {
			body = bytes.Clone(body)
			body[len(body)/2] ^= 0xff
			w.Write(body)
		}, true},
		{"cut short", func(w http.ResponseWriter, body []byte) {
			w.Header().Set("Content-Length", fmt.Sprint(len(body)-100))
			w.Write(body[:len(body)-100])
		}, true},
		{"longer", func(w http.ResponseWriter, body []byte) {
			w.Header().Set("Content-Length", fmt.Sprint(len(body)+100))
			w.Write(append(bytes.Clone(body), make([]byte, 100)...))
		}, true},
		{"a Content-Length that lies", func(w http.ResponseWriter, body []byte) {
			w.Header().Set("Content-Length", fmt.Sprint(len(body)))
			w.Write(body[:len(body)-100])
		}, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			host := registrytest.InMemory(t, func(h http.Handler) http.Handler {
				return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
					if r.Method != http.MethodGet || !strings.HasSuffix(r.URL.Path, "/blobs/"+bad.String()) {
						h.ServeHTTP(w, r)
						return
					}
					rec := httptest.NewRecorder()
					h.ServeHTTP(rec, r)
					w.Header().Set("Docker-Content-Digest", bad.String())
					tc.serve(w, rec.Body.Bytes())
				})
			})
			c := New(Options{Keychain: authn.NewMultiKeychain(), Backoff: fastBackoff})
			dst := ref(t, c, host+"/serpent/stage3:test")
			if _, err := c.Push(ctx, img, dst, PushOptions{}); err != nil {
				t.Fatal(err)
			}
			remoteImg, err := c.Image(ctx, dst, arm64)
			if err != nil {
				t.Fatal(err)
			}
			ls, err := (&meteredImage{Image: remoteImg}).Layers()
			if err != nil {
				t.Fatal(err)
			}
			if v, ok := ls[0].(store.VerifiedLayer); !ok || !v.VerifiesCompressed() {
				t.Errorf("a pulled layer (%T) does not say it checks its own stream", ls[0])
			}

			st := newStore(t)
			_, err = c.Pull(ctx, st, dst, arm64, "stage3")
			if n, b := st.SweepStaleBlobs(); n != 0 {
				t.Errorf("the pull left %d partial blobs (%d bytes)", n, b)
			}
			if !tc.refuse {
				if err != nil {
					t.Fatalf("pull: %v", err)
				}
				if !st.HasBlob(bad) {
					t.Errorf("pulled, but the store has no blob %s", bad)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), bad.String()) {
				t.Fatalf("pull: %v, want an error naming layer %s", err, bad)
			}
			if tags, _ := st.Tags(); len(tags) != 0 {
				t.Errorf("a refused pull tagged %v", tags)
			}
			if st.HasBlob(bad) {
				t.Errorf("the store holds a blob %s after the registry served other bytes for it", bad)
			}
			if res, err := st.Fsck(ctx); err != nil || len(res.Problems) > 0 {
				t.Errorf("fsck after a refused pull: %v %v", res.Problems, err)
			}
		})
	}
}
