package builder_test

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"context"
	"errors"
	"fmt"
	"os"
	"strings"
	"testing"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/static"
	"github.com/google/go-containerregistry/pkg/v1/types"
	"github.com/serpent-os/serpent-oci/builder"
	"github.com/serpent-os/serpent-oci/builder/buildertest"
	"github.com/serpent-os/serpent-oci/builder/rootfs"
	"github.com/serpent-os/serpent-oci/oci/layer"
	"github.com/serpent-os/serpent-oci/oci/store"
	"github.com/serpent-os/serpent-oci/oci/testenv"
)

type tarEntry struct {
	name, link, body string
	typ              byte
}

// craftedLayer is a gzip layer of the entries, as a registry could serve it.
func craftedLayer(t *testing.T, entries ...tarEntry) v1.Layer {
	t.Helper()
	es := make([]testenv.TarEntry, len(entries))
	for i, e := range entries {
		es[i] = testenv.TarEntry{Name: e.name, Link: e.link, Body: e.body, Type: e.typ}
	}
	var buf bytes.Buffer
	zw := gzip.NewWriter(&buf)
	if _, err := zw.Write(testenv.Tar(t, es...)); err != nil {
		t.Fatal(err)
	}
	if err := zw.Close(); err != nil {
		t.Fatal(err)
	}
	return static.NewLayer(buf.Bytes(), types.OCILayer)
}

// The crafted corpus both providers must agree on: each case is layers on busybox.
var craftedCorpus = []struct {
	name   string
	layers [][]tarEntry
}{
	{"a directory replaced by a symlink", [][]tarEntry{
		{{name: "d/", typ: tar.TypeDir}, {name: "d/f", body: "in d", typ: tar.TypeReg}, {name: "e/", typ: tar.TypeDir}, {name: "e/g", body: "in e", typ: tar.TypeReg}},
		{{name: "d", link: "e", typ: tar.TypeSymlink}},
	}},
	{"a symlink replaced by a directory", [][]tarEntry{
		{{name: "real/", typ: tar.TypeDir}, {name: "real/old", body: "old", typ: tar.TypeReg}, {name: "a", link: "real", typ: tar.TypeSymlink}},
		{{name: "a/", typ: tar.TypeDir}, {name: "a/new", body: "new", typ: tar.TypeReg}},
	}},
	{"a file replaced by a directory, and back", [][]tarEntry{
		{{name: "x", body: "file", typ: tar.TypeReg}, {name: "y/", typ: tar.TypeDir}, {name: "y/z", body: "z", typ: tar.TypeReg}},
		{{name: "x/", typ: tar.TypeDir}, {name: "x/inner", body: "inner", typ: tar.TypeReg}, {name: "y", body: "now a file", typ: tar.TypeReg}},
	}},
	{"whiteouts and an opaque directory", [][]tarEntry{
		{{name: "w/", typ: tar.TypeDir}, {name: "w/keep", body: "k", typ: tar.TypeReg}, {name: "w/gone", body: "g", typ: tar.TypeReg},
			{name: "o/", typ: tar.TypeDir}, {name: "o/old", body: "old", typ: tar.TypeReg}},
		{{name: "w/.wh.gone", typ: tar.TypeReg}, {name: "o/", typ: tar.TypeDir}, {name: "o/.wh..wh..opq", typ: tar.TypeReg}, {name: "o/new", body: "new", typ: tar.TypeReg}},
	}},
	{"hardlinks", [][]tarEntry{
		{{name: "h/", typ: tar.TypeDir}, {name: "h/one", body: "shared", typ: tar.TypeReg}, {name: "h/two", link: "h/one", typ: tar.TypeLink}},
	}},
}

// TestProvidersAgreeOnCraftedLayers runs one script over each crafted image with the overlay
// and the copy provider: the tree the script sees and the layer it captures are the same.
func TestProvidersAgreeOnCraftedLayers(t *testing.T) {
	e := setup(t)
	p := buildertest.Platforms[0]
	script := `for f in $(find /d /e /real /a /x /y /w /o /h -print 2>/dev/null | sort); do
	if [ -L "$f" ]; then echo "$f -> $(readlink "$f")"; elif [ -d "$f" ]; then echo "$f/"; else echo "$f: $(cat "$f")"; fi
done
echo touched > /etc/touched`
	for _, tc := range craftedCorpus {
		t.Run(tc.name, func(t *testing.T) {
			img := e.images["linux/amd64"]
			for _, entries := range tc.layers {
				var err error
				if img, err = mutate.Append(img, mutate.Addendum{Layer: craftedLayer(t, entries...), MediaType: types.OCILayer}); err != nil {
					t.Fatal(err)
				}
			}
			logs, digests := map[string]string{}, map[string]v1.Hash{}
			for _, prov := range []string{"overlay", "copy"} {
				var provider rootfs.Provider = rootfs.Copy{}
				if prov == "overlay" {
					var err error
					if provider, err = builder.OverlayProvider(e.st); err != nil {
						t.Fatal(err)
					}
				}
				o := e.opts(p, script)
				o.Base, o.Output.Capture = img, builder.CaptureLayer
				res, err := builder.RunAndCommit(context.Background(), e.runner(t, builder.WithProvider(provider)), o, builder.Commit{Tag: &store.Ref{Name: "crafted-" + prov}})
				if err != nil {
					t.Fatalf("%s: %v", prov, err)
				}
				b, err := os.ReadFile(res.Log)
				if err != nil {
					t.Fatal(err)
				}
				logs[prov], digests[prov] = string(b), res.Descriptor.Digest
			}
			if logs["overlay"] != logs["copy"] {
				t.Errorf("the script saw different trees:\noverlay:\n%s\ncopy:\n%s", logs["overlay"], logs["copy"])
			}
			if digests["overlay"] != digests["copy"] {
				t.Errorf("overlay captured %s, copy %s", digests["overlay"], digests["copy"])
			}
		})
	}
}

// TestManyLayersStayOnOverlay: an image of 60 layers makes mount options longer than a page;
// it is still mounted with overlayfs (the new mount API), not copied with a warning.
func TestManyLayersStayOnOverlay(t *testing.T) {
	e := setup(t)
	img := e.images["linux/amd64"]
	for i := range 60 {
		var err error
		if img, err = mutate.Append(img, mutate.Addendum{Layer: craftedLayer(t, tarEntry{name: fmt.Sprintf("layer%02d", i), body: "x", typ: tar.TypeReg}), MediaType: types.OCILayer}); err != nil {
			t.Fatal(err)
		}
	}
	o := e.opts(buildertest.Platforms[0], "ls / | grep -c '^layer'")
	o.Base = img
	res, err := e.runner(t).Run(context.Background(), o)
	if err != nil {
		t.Fatal(err)
	}
	if res.Provider != "overlay" {
		t.Errorf("60 layers ran on %s, want overlay", res.Provider)
	}
	if b, _ := os.ReadFile(res.Log); strings.TrimSpace(string(b)) != "60" {
		t.Errorf("the container saw %q layers' files, want 60", b)
	}
}

// TestFailedExtractionIsNotAnOverlayProblem: a layer the applier refuses fails the run once,
// naming the entry; it is not reported as overlayfs being unavailable and extracted again.
func TestFailedExtractionIsNotAnOverlayProblem(t *testing.T) {
	e := setup(t)
	img, err := mutate.Append(e.images["linux/amd64"], mutate.Addendum{Layer: craftedLayer(t, tarEntry{name: ".wh...", typ: tar.TypeReg}), MediaType: types.OCILayer})
	if err != nil {
		t.Fatal(err)
	}
	o := e.opts(buildertest.Platforms[0], "true")
	o.Base = img
	_, err = e.runner(t).Run(context.Background(), o)
	if !errors.Is(err, layer.ErrRefused) || errors.Is(err, rootfs.ErrOverlayUnavailable) || !strings.Contains(err.Error(), "entry .wh...: degenerate whiteout") {
		t.Fatalf("run on a layer with a degenerate whiteout: %v", err)
	}
	if strings.Contains(e.console.String(), "falling back") {
		t.Errorf("the run fell back to a copy:\n%s", e.console)
	}
}
