package snapshot_test

import (
	"archive/tar"
	"bytes"
	"context"
	"os"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/static"
	"github.com/google/go-containerregistry/pkg/v1/types"
	"github.com/serpent-os/serpent-oci/builder/snapshot"
	"github.com/serpent-os/serpent-oci/oci/image"
	"github.com/serpent-os/serpent-oci/oci/platform"
	"github.com/serpent-os/serpent-oci/oci/store"
	"github.com/serpent-os/serpent-oci/oci/testenv"
)

// TestWhiteoutsAreListed: a snapshot's overlayfs whiteouts are listed beside it when it is
// made; a snapshot without the list (made before lists were kept) is walked once for it; gc
// removes the list with the layer.
func TestWhiteoutsAreListed(t *testing.T) {
	testenv.RequireRoot(t)
	ctx := context.Background()
	st, err := store.Open(ctx, filepath.Join(t.TempDir(), "store"))
	if err != nil {
		t.Fatal(err)
	}
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	for _, name := range []string{"d/.wh.gone", ".wh.top", "d/kept", "e/.wh..wh..opq"} {
		if err := tw.WriteHeader(&tar.Header{Name: name, Typeflag: tar.TypeReg, Mode: 0o644}); err != nil {
			t.Fatal(err)
		}
	}
	tw.Close()
	img, err := image.Scratch(platform.Host(), time.Unix(0, 0))
	if err != nil {
		t.Fatal(err)
	}
	img, err = mutate.Append(img, mutate.Addendum{Layer: static.NewLayer(buf.Bytes(), types.OCIUncompressedLayer), MediaType: types.OCIUncompressedLayer})
	if err != nil {
		t.Fatal(err)
	}
	snaps, err := snapshot.New(st)
	if err != nil {
		t.Fatal(err)
	}
	dirs, _, err := snaps.Prepare(ctx, img)
	if err != nil {
		t.Fatal(err)
	}
	want := []string{"d/gone", "top"}
	got, err := snaps.Whiteouts(dirs[0])
	if slices.Sort(got); err != nil || !slices.Equal(got, want) {
		t.Fatalf("whiteouts %v (%v), want %v", got, err, want)
	}
	list := dirs[0] + ".whiteouts"
	if err := os.Remove(list); err != nil {
		t.Fatal(err)
	}
	got, err = snaps.Whiteouts(dirs[0])
	if slices.Sort(got); err != nil || !slices.Equal(got, want) {
		t.Fatalf("whiteouts of a snapshot without its list: %v (%v), want %v", got, err, want)
	}
	if _, err := os.Stat(list); err != nil {
		t.Errorf("the list was not written again: %v", err)
	}
	if _, err := st.GC(ctx); err != nil {
		t.Fatal(err)
	}
	for _, p := range []string{dirs[0], list} {
		if _, err := os.Lstat(p); !os.IsNotExist(err) {
			t.Errorf("gc left %s of a layer nothing reaches: %v", p, err)
		}
	}
}
