package baseimage_test

import (
	"context"
	"errors"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/authn"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/random"

	"github.com/serpent-os/serpent-oci/builder/baseimage"
	"github.com/serpent-os/serpent-oci/oci/image"
	"github.com/serpent-os/serpent-oci/oci/platform"
	"github.com/serpent-os/serpent-oci/oci/registry"
	"github.com/serpent-os/serpent-oci/oci/registry/registrytest"
	"github.com/serpent-os/serpent-oci/oci/store"
	"github.com/serpent-os/serpent-oci/oci/testenv"
)

var (
	amd64 = platform.MustParse("linux/amd64")
	arm64 = platform.MustParse("linux/arm64")
)

func platformImage(t *testing.T, p v1.Platform) v1.Image {
	t.Helper()
	base, err := image.Scratch(p, time.Unix(1700000000, 0))
	if err != nil {
		t.Fatal(err)
	}
	l, err := random.Layer(256, "application/vnd.oci.image.layer.v1.tar+gzip")
	if err != nil {
		t.Fatal(err)
	}
	img, err := mutate.AppendLayers(base, l)
	if err != nil {
		t.Fatal(err)
	}
	return img
}

// TestFind: the one rule by which a stage's from: image: and a spin's from: find their base.
func TestFind(t *testing.T) {
	ctx := context.Background()
	st, err := store.Open(ctx, filepath.Join(t.TempDir(), "store"))
	if err != nil {
		t.Fatal(err)
	}
	local := map[string]v1.Image{"amd64": platformImage(t, amd64), "arm64": platformImage(t, arm64)}
	for _, p := range []v1.Platform{amd64, arm64} {
		if _, err := st.WriteImage(ctx, local[p.Architecture], store.Ref{Name: "busybox"}.WithPlatform(&p)); err != nil {
			t.Fatal(err)
		}
	}
	host := registrytest.InMemory(t, nil)
	reg := registry.New(registry.Options{Keychain: authn.NewMultiKeychain()})
	remote := map[string]v1.Image{"amd64": platformImage(t, amd64), "arm64": platformImage(t, arm64)}
	rref, err := reg.ParseReference(host + "/serpent/base:1")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := reg.PushImages(ctx, []v1.Image{remote["amd64"], remote["arm64"]}, nil, rref, registry.PushOptions{}); err != nil {
		t.Fatal(err)
	}
	armLocal, armRemote := testenv.Digest(t, local["arm64"]), testenv.Digest(t, remote["arm64"])

	tests := []struct {
		name     string
		ref      string
		reg      *registry.Client
		want     v1.Hash
		wantName string
		remote   bool
		err      string // a part of the error; "not found" also asks for store.ErrNotFound
	}{
		{name: "store tag", ref: "busybox", reg: reg, want: armLocal, wantName: "busybox@linux-arm64"},
		{name: "store tag with the platform", ref: "busybox@linux/arm64", want: armLocal, wantName: "busybox@linux-arm64"},
		{name: "store tag pinned to its digest", ref: "busybox@" + armLocal.String(), want: armLocal, wantName: "busybox@" + armLocal.String()},
		{name: "pinned to another digest", ref: "busybox@" + armRemote.String(), err: "is not " + armRemote.String()},
		{name: "pinned, no such tag", ref: "nothing@" + armLocal.String(), reg: reg, err: "not found"},
		{name: "no such tag, not a registry's", ref: "nothing", reg: reg, err: "not found"},
		{name: "registry reference", ref: host + "/serpent/base:1", reg: reg, want: armRemote, wantName: host + "/serpent/base:1", remote: true},
		{name: "registry reference by digest", ref: host + "/serpent/base@" + armRemote.String(), reg: reg, want: armRemote, wantName: host + "/serpent/base@" + armRemote.String(), remote: true},
		{name: "registry reference, no registry access", ref: host + "/serpent/base:1", err: "no registry access"},
		{name: "registry reference, no such tag there", ref: host + "/serpent/base:2", reg: reg, err: "not found at registry"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := baseimage.Find(ctx, st, tt.reg, tt.ref, arm64)
			if tt.err != "" {
				if err == nil || !strings.Contains(err.Error(), tt.err) && !(tt.err == "not found" && errors.Is(err, store.ErrNotFound)) {
					t.Fatalf("Find(%s) = %+v, %v; want an error with %q", tt.ref, got, err, tt.err)
				}
				if tt.err == "not found" && !errors.Is(err, store.ErrNotFound) {
					t.Fatalf("Find(%s): %v does not wrap store.ErrNotFound", tt.ref, err)
				}
				return
			}
			if err != nil {
				t.Fatalf("Find(%s): %v", tt.ref, err)
			}
			if got.Digest != tt.want || testenv.Digest(t, got.Image) != tt.want || got.Name != tt.wantName || got.Remote != tt.remote {
				t.Errorf("Find(%s) = %s %q remote=%v, want %s %q remote=%v", tt.ref, got.Digest, got.Name, got.Remote, tt.want, tt.wantName, tt.remote)
			}
		})
	}

	// ByDigest: a digest recorded by an earlier build, from the store, else from the registry.
	for _, tt := range []struct {
		name string
		ref  string
		h    v1.Hash
	}{
		{"in the store", "busybox", armLocal},
		{"in the registry only", host + "/serpent/base:1", armRemote},
	} {
		img, err := baseimage.ByDigest(ctx, st, reg, tt.ref, tt.h, arm64)
		if err != nil || testenv.Digest(t, img) != tt.h {
			t.Errorf("ByDigest %s: %v", tt.name, err)
		}
	}
	if _, err := baseimage.ByDigest(ctx, st, reg, "busybox", armRemote, arm64); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("ByDigest of a digest the store lacks, for a store tag: %v, want store.ErrNotFound", err)
	}
}
