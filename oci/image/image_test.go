package image

import (
	"archive/tar"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/static"
	"github.com/google/go-containerregistry/pkg/v1/types"
	"github.com/serpent-os/serpent-oci/oci/layer"
	"github.com/serpent-os/serpent-oci/oci/platform"
	"github.com/serpent-os/serpent-oci/oci/store"
	"github.com/serpent-os/serpent-oci/oci/testenv"
)

var arm64 = platform.MustParse("linux/arm64")

func openStore(t *testing.T) *store.Store {
	t.Helper()
	st, err := store.Open(context.Background(), filepath.Join(t.TempDir(), "store"))
	if err != nil {
		t.Fatal(err)
	}
	return st
}

func importTree(t *testing.T, st *store.Store, src, tag string) v1.Descriptor {
	t.Helper()
	d, err := Import(context.Background(), st, src, store.Ref{Name: tag}, ImportOptions{Platform: arm64})
	if err != nil {
		t.Fatal(err)
	}
	return d
}

func command(t *testing.T, name string, args ...string) string {
	t.Helper()
	out, err := exec.Command(name, args...).CombinedOutput()
	if err != nil {
		t.Fatalf("%s %s: %v\n%s", name, strings.Join(args, " "), err, out)
	}
	return string(out)
}

// TestImportIsDeterministic imports the same tree, made twice in two places a second apart,
// into two stores: the manifest digests are equal.
func TestImportIsDeterministic(t *testing.T) {
	start := time.Now().Add(-time.Second)
	a := filepath.Join(t.TempDir(), "one")
	testenv.Fixture(t, a)
	b := filepath.Join(t.TempDir(), "two", "elsewhere")
	testenv.Fixture(t, b)
	testenv.ShiftNewTimes(t, b, start, time.Hour) // made an hour later: every new mtime differs
	da := importTree(t, openStore(t), a, "x")
	db := importTree(t, openStore(t), b, "y")
	if da.Digest != db.Digest {
		t.Fatalf("same tree, two imports: %s and %s", da.Digest, db.Digest)
	}
}

// TestOthersReadOurStore: skopeo and umoci read what we write, and umoci unpacks the tree we
// imported.
func TestOthersReadOurStore(t *testing.T) {
	testenv.RequireTools(t, "skopeo", "umoci")
	src := t.TempDir()
	testenv.PrivilegedFixture(t, src)
	st := openStore(t)
	d := importTree(t, st, src, "fixture")
	ref := "fixture@linux-arm64"

	var inspected struct {
		Digest       string
		Architecture string
		Os           string
		Layers       []string
	}
	if err := json.Unmarshal([]byte(command(t, "skopeo", "inspect", "oci:"+st.Dir()+":"+ref)), &inspected); err != nil {
		t.Fatal(err)
	}
	if inspected.Digest != d.Digest.String() || inspected.Architecture != "arm64" || inspected.Os != "linux" || len(inspected.Layers) != 1 {
		t.Fatalf("skopeo inspect: %+v, want digest %s, linux/arm64, one layer", inspected, d.Digest)
	}

	if out := command(t, "umoci", "ls", "--layout", st.Dir()); strings.TrimSpace(out) != ref {
		t.Fatalf("umoci ls: %q, want %q", out, ref)
	}
	bundle := filepath.Join(t.TempDir(), "bundle")
	command(t, "umoci", "unpack", "--image", st.Dir()+":"+ref, bundle)
	if diff := testenv.DiffTrees(testenv.Tree(t, src), testenv.Tree(t, filepath.Join(bundle, "rootfs"))); len(diff) > 0 {
		t.Fatalf("umoci unpack of our image differs from the imported tree:\n%s", strings.Join(diff, "\n"))
	}
}

// TestWeReadOthersLayouts: a layout umoci wrote, and one skopeo copied, open as stores and
// unpack to the tree that went in.
func TestWeReadOthersLayouts(t *testing.T) {
	testenv.RequireTools(t, "skopeo", "umoci")
	testenv.RequireRoot(t)
	src := t.TempDir()
	testenv.PrivilegedFixture(t, src)
	umociLayout := filepath.Join(t.TempDir(), "umoci")
	command(t, "umoci", "init", "--layout", umociLayout)
	command(t, "umoci", "new", "--image", umociLayout+":base")
	command(t, "umoci", "insert", "--image", umociLayout+":base", src, "/")
	skopeoLayout := filepath.Join(t.TempDir(), "skopeo")
	command(t, "skopeo", "copy", "oci:"+umociLayout+":base", "oci:"+skopeoLayout+":copied")

	for _, tc := range []struct{ layout, tag string }{{umociLayout, "base"}, {skopeoLayout, "copied"}} {
		t.Run(filepath.Base(tc.layout), func(t *testing.T) {
			st, err := store.Open(context.Background(), tc.layout)
			if err != nil {
				t.Fatal(err)
			}
			img, _, err := st.Image(store.Ref{Name: tc.tag})
			if err != nil {
				t.Fatal(err)
			}
			dst := filepath.Join(t.TempDir(), "rootfs")
			if err := Unpack(context.Background(), img, dst); err != nil {
				t.Fatal(err)
			}
			if diff := testenv.DiffTrees(testenv.Tree(t, src), testenv.Tree(t, dst)); len(diff) > 0 {
				t.Fatalf("unpacked tree differs from what went in:\n%s", strings.Join(diff, "\n"))
			}
			if res, err := st.Fsck(context.Background()); err != nil || len(res.Problems) > 0 {
				t.Fatalf("fsck of the %s layout: %v %v", tc.tag, res.Problems, err)
			}
		})
	}
}

// TestExportOCIArchive: skopeo copies our archive into a layout, keeping the digest.
func TestExportOCIArchive(t *testing.T) {
	testenv.RequireTools(t, "skopeo")
	src := t.TempDir()
	testenv.Fixture(t, src)
	st := openStore(t)
	d := importTree(t, st, src, "fixture")
	img, _, err := st.Image(store.Ref{Name: "fixture"})
	if err != nil {
		t.Fatal(err)
	}
	archive := filepath.Join(t.TempDir(), "fixture.oci.tar")
	f, err := os.Create(archive)
	if err != nil {
		t.Fatal(err)
	}
	if err := Export(context.Background(), img, "fixture", OCIArchive, f); err != nil {
		t.Fatal(err)
	}
	f.Close()
	dst := filepath.Join(t.TempDir(), "copy")
	command(t, "skopeo", "copy", "oci-archive:"+archive+":fixture", "oci:"+dst+":copy")
	out := command(t, "skopeo", "inspect", "--raw", "oci:"+dst+":copy")
	if got := (v1.Hash{Algorithm: "sha256", Hex: sha256Hex(out)}); got != d.Digest {
		t.Fatalf("skopeo's copy of our archive has manifest %s, ours is %s", got, d.Digest)
	}
}

// TestExportRootfsRoundTrip: a rootfs tarball imports back to the same image.
func TestExportRootfsRoundTrip(t *testing.T) {
	testenv.RequireRoot(t)
	src := t.TempDir()
	testenv.PrivilegedFixture(t, src)
	st := openStore(t)
	d := importTree(t, st, src, "fixture")
	img, _, err := st.Image(store.Ref{Name: "fixture"})
	if err != nil {
		t.Fatal(err)
	}
	tarball := filepath.Join(t.TempDir(), "rootfs.tar")
	f, err := os.Create(tarball)
	if err != nil {
		t.Fatal(err)
	}
	if err := Export(context.Background(), img, "fixture", Rootfs, f); err != nil {
		t.Fatal(err)
	}
	f.Close()
	again := importTree(t, st, tarball, "again")
	if again.Digest != d.Digest {
		t.Fatalf("rootfs export imported back as %s, original %s", again.Digest, d.Digest)
	}
}

func TestImportZstd(t *testing.T) {
	src := t.TempDir()
	testenv.Fixture(t, src)
	st := openStore(t)
	_, err := Import(context.Background(), st, src, store.Ref{Name: "z"}, ImportOptions{Platform: arm64, Layer: layer.WriteOptions{Compression: layer.Zstd}})
	if err != nil {
		t.Fatal(err)
	}
	img, _, err := st.Image(store.Ref{Name: "z"})
	if err != nil {
		t.Fatal(err)
	}
	m, _ := img.Manifest()
	if m.Layers[0].MediaType != "application/vnd.oci.image.layer.v1.tar+zstd" {
		t.Fatalf("layer media type %s", m.Layers[0].MediaType)
	}
	if testenv.InCI() || os.Geteuid() == 0 {
		dst := filepath.Join(t.TempDir(), "rootfs")
		if err := Unpack(context.Background(), img, dst); err != nil {
			t.Fatal(err)
		}
		if diff := testenv.DiffTrees(testenv.Tree(t, src), testenv.Tree(t, dst)); len(diff) > 0 {
			t.Fatalf("zstd layer unpacks to another tree:\n%s", strings.Join(diff, "\n"))
		}
	}
}

func TestImportErrorsNameTheSource(t *testing.T) {
	st := openStore(t)
	_, err := Import(context.Background(), st, "/does/not/exist", store.Ref{Name: "x"}, ImportOptions{Platform: arm64})
	if err == nil || !strings.Contains(err.Error(), "/does/not/exist") {
		t.Fatalf("import of a missing path: %v", err)
	}
	if tags, _ := st.Tags(); len(tags) != 0 {
		t.Fatalf("failed import left tags %v", tags)
	}
}

// TestExportRootfsNamesAreRelative: a layer's absolute or `..` names come out of a rootfs
// export relative and clean, so that tar -x of the export as root writes below its directory.
func TestExportRootfsNamesAreRelative(t *testing.T) {
	img := imageOfEntries(t, []*tar.Header{
		{Name: "/abs/", Typeflag: tar.TypeDir, Mode: 0o755},
		{Name: "/abs/file", Typeflag: tar.TypeReg, Mode: 0o644, Size: 1},
		{Name: "hl", Typeflag: tar.TypeLink, Linkname: "/abs/file"},
	})
	var out bytes.Buffer
	if err := Export(context.Background(), img, "x", Rootfs, &out); err != nil {
		t.Fatal(err)
	}
	var names []string
	tr := tar.NewReader(&out)
	for {
		h, err := tr.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		names = append(names, h.Name+"|"+h.Linkname)
	}
	if want := []string{"hl|abs/file", "abs/|", "abs/file|"}; !slices.Equal(sorted(names), sorted(want)) {
		t.Errorf("exported names: %v, want %v", names, want)
	}
}

// TestExportRootfsRefusesAnUnsafeEntry is issue 33's fourth hole: exporting an image with a
// `../../evil` entry exited 0 with an empty tarball (0 of 282 entries, the error lost). The
// export must fail naming the entry, and ExportFile must leave no file.
func TestExportRootfsRefusesAnUnsafeEntry(t *testing.T) {
	hdrs := []*tar.Header{{Name: "etc/", Typeflag: tar.TypeDir, Mode: 0o755}}
	for i := range 281 {
		hdrs = append(hdrs, &tar.Header{Name: fmt.Sprintf("etc/f%03d", i), Typeflag: tar.TypeReg, Mode: 0o644, Size: 1})
	}
	hdrs = append(hdrs, &tar.Header{Name: "../../evil", Typeflag: tar.TypeReg, Mode: 0o644, Size: 1})
	img := imageOfEntries(t, hdrs)
	err := Export(context.Background(), img, "x", Rootfs, io.Discard)
	if err == nil || !strings.Contains(err.Error(), `"../../evil"`) {
		t.Fatalf("Export: %v, want an error naming ../../evil", err)
	}
	out := filepath.Join(t.TempDir(), "rootfs.tar")
	if err := ExportFile(context.Background(), []v1.Image{img}, "x", Rootfs, out); err == nil {
		t.Fatal("ExportFile of an image with an unsafe entry succeeded")
	}
	if _, err := os.Stat(out); !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("a failed export left %s (%v)", out, err)
	}
}

// imageOfEntries is an image of one uncompressed layer of hdrs (regular files hold "x").
func imageOfEntries(t *testing.T, hdrs []*tar.Header) v1.Image {
	t.Helper()
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	for _, h := range hdrs {
		if err := tw.WriteHeader(h); err != nil {
			t.Fatal(err)
		}
		if h.Size > 0 {
			tw.Write([]byte("x"))
		}
	}
	tw.Close()
	l := static.NewLayer(buf.Bytes(), types.OCIUncompressedLayer)
	img, err := mutate.AppendLayers(mutate.MediaType(empty.Image, types.OCIManifestSchema1), l)
	if err != nil {
		t.Fatal(err)
	}
	return img
}

func sorted(s []string) []string { s = slices.Clone(s); slices.Sort(s); return s }

// TestExportFileIsAllOrNothing: ExportFile leaves the whole file or, failing or cancelled,
// none (an earlier file of that name as it was), and no temporary file beside it.
func TestExportFileIsAllOrNothing(t *testing.T) {
	src := t.TempDir()
	testenv.Fixture(t, src)
	st := openStore(t)
	importTree(t, st, src, "fixture")
	img, _, err := st.Image(store.Ref{Name: "fixture"})
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	out := filepath.Join(dir, "rootfs.tar")
	if err := os.WriteFile(out, []byte("an earlier export"), 0o644); err != nil {
		t.Fatal(err)
	}
	cancelled, cancel := context.WithCancel(context.Background())
	cancel()
	if err := ExportFile(cancelled, []v1.Image{img}, "fixture", Rootfs, out); err == nil {
		t.Fatal("a cancelled export succeeded")
	}
	if err := ExportFile(context.Background(), []v1.Image{img, img}, "fixture", Rootfs, out); err == nil {
		t.Fatal("a rootfs of two images was written")
	}
	if b, err := os.ReadFile(out); err != nil || string(b) != "an earlier export" {
		t.Fatalf("after failed exports the file holds %q (%v), want the earlier one", b, err)
	}
	if err := ExportFile(context.Background(), []v1.Image{img}, "fixture", Rootfs, out); err != nil {
		t.Fatal(err)
	}
	entries, err := os.ReadDir(dir)
	if err != nil || len(entries) != 1 {
		t.Fatalf("the directory holds %v (%v), want the export alone", entries, err)
	}
	f, err := os.Open(out)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if _, err := tar.NewReader(f).Next(); err != nil {
		t.Fatalf("the export is no tar stream: %v", err)
	}
	if err := ExportFile(context.Background(), []v1.Image{img}, "fixture", Rootfs, filepath.Join(dir, "missing", "x.tar")); err == nil || !strings.Contains(err.Error(), "no such directory") {
		t.Fatalf("export into a missing directory: %v", err)
	}
}
