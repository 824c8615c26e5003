package rootfs_test

import (
	"archive/tar"
	"context"
	"errors"
	"os"
	"path"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/static"
	"github.com/google/go-containerregistry/pkg/v1/types"
	"github.com/serpent-os/serpent-oci/builder/rootfs"
	"github.com/serpent-os/serpent-oci/builder/snapshot"
	"github.com/serpent-os/serpent-oci/oci/image"
	"github.com/serpent-os/serpent-oci/oci/platform"
	"github.com/serpent-os/serpent-oci/oci/store"
	"github.com/serpent-os/serpent-oci/oci/testenv"
)

// entry is one tar entry of a crafted layer.
type entry struct {
	name, link, body string
	typ              byte
}

func reg(name, body string) entry { return entry{name: name, body: body, typ: tar.TypeReg} }
func dir(name string) entry       { return entry{name: name, typ: tar.TypeDir} }
func hard(name, to string) entry  { return entry{name: name, link: to, typ: tar.TypeLink} }
func soft(name, to string) entry  { return entry{name: name, link: to, typ: tar.TypeSymlink} }
func whiteout(name string) entry  { return reg(name, "") }
func tarLayer(t testing.TB, es []entry) []byte {
	t.Helper()
	out := make([]testenv.TarEntry, len(es))
	for i, e := range es {
		out[i] = testenv.TarEntry{Name: e.name, Link: e.link, Body: e.body, Type: e.typ}
	}
	return testenv.Tar(t, out...)
}

// imageOf is a scratch image of the layers (uncompressed tar layers, as a registry may serve).
func imageOf(t testing.TB, layers [][]byte) v1.Image {
	t.Helper()
	img, err := image.Scratch(platform.Host(), time.Unix(0, 0))
	if err != nil {
		t.Fatal(err)
	}
	for _, l := range layers {
		if img, err = mutate.Append(img, mutate.Addendum{Layer: static.NewLayer(l, types.OCIUncompressedLayer), MediaType: types.OCIUncompressedLayer}); err != nil {
			t.Fatal(err)
		}
	}
	return img
}

// prepared is the tree a provider gives a run over img, as testenv.Tree describes it and in
// the corpus's simple form, or the error of its Prepare.
func prepared(t testing.TB, p rootfs.Provider, img v1.Image) (full, plain map[string]string, err error) {
	t.Helper()
	ws, err := p.Prepare(context.Background(), img, filepath.Join(t.TempDir(), "ws"))
	if err != nil {
		return nil, nil, err
	}
	defer ws.Close()
	// Walked from inside, so that a path as long as the kernel takes inside the container
	// (PATH_MAX relative to its root) is not too long for the walk.
	wd, err := os.Getwd()
	if err != nil {
		t.Fatal(err)
	}
	if err := os.Chdir(ws.Root()); err != nil {
		t.Fatal(err)
	}
	defer func() {
		if err := os.Chdir(wd); err != nil {
			t.Fatal(err)
		}
	}()
	return testenv.Tree(t, "."), simple(t, "."), nil
}

// simple is the tree below root in the corpus's form: a file's content, "" for a directory,
// "->T" for a symlink to T, "=P" for a hardlink of P (the first path of its inode).
func simple(t testing.TB, root string) map[string]string {
	t.Helper()
	out := map[string]string{}
	inodes := map[uint64]string{}
	err := filepath.Walk(root, func(p string, fi os.FileInfo, err error) error {
		if err != nil || p == root {
			return err
		}
		rel, _ := filepath.Rel(root, p)
		switch {
		case fi.IsDir():
			out[rel] = ""
		case fi.Mode()&os.ModeSymlink != 0:
			l, err := os.Readlink(p)
			if err != nil {
				return err
			}
			out[rel] = "->" + l
		default:
			ino := fi.Sys().(*syscall.Stat_t).Ino
			if first, ok := inodes[ino]; ok {
				out[rel] = "=" + first
				return nil
			}
			inodes[ino] = rel
			b, err := os.ReadFile(p)
			if err != nil {
				return err
			}
			out[rel] = string(b)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

type agreement struct {
	overlay, copy rootfs.Provider
}

func newAgreement(t testing.TB) agreement {
	t.Helper()
	testenv.RequireRoot(t)
	st, err := store.Open(context.Background(), filepath.Join(t.TempDir(), "store"))
	if err != nil {
		t.Fatal(err)
	}
	snaps, err := snapshot.New(st)
	if err != nil {
		t.Fatal(err)
	}
	return agreement{overlay: &rootfs.Overlay{Snapshots: snaps}, copy: rootfs.Copy{}}
}

// trees prepares img with both providers: their trees, or the error both gave (a layer one
// refuses the other must refuse too). fellBack says the overlay provider could not stack the
// image (ErrOverlayUnavailable) and the tree is the copy's, as a run would have it.
func (a agreement) trees(t testing.TB, img v1.Image) (overlay, copy, plain map[string]string, fellBack error, err error) {
	t.Helper()
	o, plain, oerr := prepared(t, a.overlay, img)
	c, cplain, cerr := prepared(t, a.copy, img)
	if oerr != nil && errors.Is(oerr, rootfs.ErrOverlayUnavailable) {
		if cerr != nil {
			t.Fatalf("overlay fell back (%v), and the copy failed: %v", oerr, cerr)
		}
		return c, c, cplain, oerr, nil
	}
	if (oerr == nil) != (cerr == nil) {
		t.Fatalf("one provider refused the image:\n  overlay: %v\n  copy: %v", oerr, cerr)
	}
	return o, c, plain, nil, oerr
}

// repeated says whether a layer of img is there twice, not one right above the other.
func (agreement) repeated(t testing.TB, img v1.Image) bool {
	t.Helper()
	m, err := img.Manifest()
	if err != nil {
		t.Fatal(err)
	}
	seen := map[v1.Hash]int{}
	for i, l := range m.Layers {
		if j, ok := seen[l.Digest]; ok && j != i-1 {
			return true
		}
		seen[l.Digest] = i
	}
	return false
}

func describe(tree map[string]string) string {
	var b strings.Builder
	for _, k := range sortedKeys(tree) {
		b.WriteString(k + " " + tree[k] + "\n")
	}
	return b.String()
}

func sortedKeys(m map[string]string) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return keys
}

// The corpus: each case is layers, bottom first, and the paths the spec says the tree has
// (only those, with the content given: "" for a directory, "->T" for a symlink to T, "=P" for
// a hardlink of P), or the error both providers must give.
var corpus = []struct {
	name   string
	layers [][]entry
	want   map[string]string
	refuse string
	// fallback: overlayfs cannot show the spec's tree, so the overlay provider hands the run
	// to a copy (ErrOverlayUnavailable).
	fallback bool
}{
	{name: "a long path", layers: [][]entry{{reg(deepPath("d", 199, 19, "f"), "deep")}}, want: deepTree("d", 199, 19, "f", "deep")},
	{name: "a path of 4,000 bytes", layers: [][]entry{{reg(deepPath("e", 249, 15, strings.Repeat("f", 250)), "deep")}},
		want: deepTree("e", 249, 15, strings.Repeat("f", 250), "deep")},
	{name: "a hardlink to a file a whiteout hides, the whiteout first", layers: [][]entry{
		{reg("f", "lower")},
		{whiteout(".wh.f"), hard("g", "f")},
	}, refuse: "hardlink to f"},
	{name: "a hardlink to a file a whiteout hides, the link first", layers: [][]entry{
		{reg("f", "lower")},
		{hard("g", "f"), whiteout(".wh.f")},
	}, refuse: "hardlink to f"},
	{name: "a hardlink into a lower layer", layers: [][]entry{
		{dir("d/"), reg("d/f", "lower")},
		{hard("g", "d/f")},
	}, refuse: "hardlink to d/f"},
	{name: "a hardlink to this layer's file, and a whiteout of it", layers: [][]entry{
		{reg("f", "lower")},
		{reg("f", "upper"), hard("g", "f"), whiteout(".wh.f")},
	}, want: map[string]string{"f": "upper", "g": "=f"}},
	{name: "an opaque whiteout at the root", layers: [][]entry{
		{dir("bin/"), reg("bin/sh", "shell"), reg("top", "t")},
		{whiteout(".wh..wh..opq"), reg("new", "n")},
	}, want: map[string]string{"new": "n"}},
	{name: "an opaque whiteout at the root, under layers", layers: [][]entry{
		{reg("first", "1")},
		{whiteout(".wh..wh..opq"), reg("second", "2")},
		{reg("third", "3")},
	}, want: map[string]string{"second": "2", "third": "3"}},
	{name: "a whiteout of a directory, made again after", layers: [][]entry{
		{dir("d/"), reg("d/old", "old"), dir("d/sub/"), reg("d/sub/x", "x")},
		{whiteout(".wh.d"), dir("d/"), reg("d/new", "new")},
	}, want: map[string]string{"d": "", "d/new": "new"}},
	{name: "a whiteout of a directory, made again before", layers: [][]entry{
		{dir("d/"), reg("d/old", "old")},
		{dir("d/"), reg("d/new", "new"), whiteout(".wh.d")},
	}, want: map[string]string{"d": "", "d/new": "new"}},
	{name: "a whiteout of a directory, a file under it after", layers: [][]entry{
		{dir("d/"), reg("d/old", "old")},
		{whiteout(".wh.d"), reg("d/new", "new")},
	}, want: map[string]string{"d": "", "d/new": "new"}},
	{name: "a whiteout of a directory", layers: [][]entry{
		{dir("d/"), reg("d/old", "old"), reg("keep", "k")},
		{whiteout(".wh.d")},
	}, want: map[string]string{"keep": "k"}},
	{name: "a whiteout that is a directory", layers: [][]entry{
		{dir("d/"), reg("d/old", "old")},
		{dir(".wh.d/"), reg(".wh.d/x", "x")},
	}, refuse: "whiteout"},
	{name: "a name under a whiteout's name", layers: [][]entry{
		{reg("a", "a")},
		{reg(".wh.a/b", "b")},
	}, refuse: "whiteout"},
	{name: "a whiteout that hides nothing", layers: [][]entry{
		{reg("a", "a")},
		{whiteout("d/.wh.a")},
	}, want: map[string]string{"a": "a", "d": ""}, fallback: true},
	{name: "a whiteout that hides nothing, in a directory of a lower layer", layers: [][]entry{
		{dir("d/"), reg("d/b", "b")},
		{whiteout("d/.wh.a")},
	}, want: map[string]string{"d": "", "d/b": "b"}}, // a merged directory: overlayfs hides it
	{name: "a layer twice, one over the other", layers: [][]entry{
		{dir("d/"), reg("d/a", "a"), whiteout(".wh.x")},
		{dir("d/"), reg("d/a", "a"), whiteout(".wh.x")},
	}, want: map[string]string{"d": "", "d/a": "a"}},
	{name: "a symlink over a directory, and a file through it", layers: [][]entry{
		{dir("d/"), reg("d/f", "f"), dir("e/")},
		{soft("d", "e"), reg("d/g", "g")},
	}, want: map[string]string{"e": "", "d": "", "d/g": "g"}},
}

// deepPath is n directories named c repeated size times, one in the other, then leaf.
func deepPath(c string, size, n int, leaf string) string {
	return strings.Repeat(strings.Repeat(c, size)+"/", n) + leaf
}

// deepTree is the tree of deepPath's directories and its leaf, a file holding body.
func deepTree(c string, size, n int, leaf, body string) map[string]string {
	m := map[string]string{}
	p := ""
	for range n {
		p += strings.Repeat(c, size)
		m[p] = ""
		p += "/"
	}
	m[p+leaf] = body
	return m
}

func TestProvidersAgreeOnTheCorpus(t *testing.T) {
	a := newAgreement(t)
	for _, c := range corpus {
		t.Run(c.name, func(t *testing.T) {
			var layers [][]byte
			for _, l := range c.layers {
				layers = append(layers, tarLayer(t, l))
			}
			o, cp, plain, fellBack, err := a.trees(t, imageOf(t, layers))
			if (fellBack != nil) != c.fallback {
				t.Errorf("the overlay provider fell back to a copy: %v, want a fallback %v", fellBack, c.fallback)
			}
			if c.refuse != "" {
				if err == nil || !strings.Contains(err.Error(), c.refuse) {
					t.Fatalf("want both refusing with %q, got %v\noverlay:\n%s\ncopy:\n%s", c.refuse, err, describe(o), describe(cp))
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if d := testenv.DiffTrees(o, cp); len(d) > 0 {
				t.Errorf("overlay and copy differ:\n%s", strings.Join(d, "\n"))
			}
			if got, want := plain, c.want; !equalMaps(got, want) {
				t.Errorf("overlay's tree is not the spec's:\n got %v\nwant %v", got, want)
			}
		})
	}
}

func equalMaps(a, b map[string]string) bool {
	if len(a) != len(b) {
		return false
	}
	for k, v := range a {
		if w, ok := b[k]; !ok || w != v {
			return false
		}
	}
	return true
}

// fuzzNames are the paths a fuzzed layer's entries take: few, so that entries collide,
// replace and white out each other.
var fuzzNames = []string{"a", "b", "d", "d/a", "d/b", "d/e", "d/e/a", "e"}

// fuzzLayers decodes data into layers: three bytes an entry (name, kind, and a link target or
// content), 0xff starting the next layer, at most four layers of sixteen entries.
func fuzzLayers(data []byte) [][]entry {
	layers := [][]entry{nil}
	for i := 0; i+2 < len(data); i += 3 {
		if data[i] == 0xff {
			if len(layers) == 4 {
				break
			}
			layers = append(layers, nil)
			i -= 2
			continue
		}
		l := &layers[len(layers)-1]
		if len(*l) == 16 {
			continue
		}
		name := fuzzNames[int(data[i])%len(fuzzNames)]
		other := fuzzNames[int(data[i+2])%len(fuzzNames)]
		d, base := path.Split(name)
		var e entry
		switch data[i+1] % 6 {
		case 0:
			e = reg(name, string(rune('A'+data[i+2]%26)))
		case 1:
			e = dir(name + "/")
		case 2:
			e = soft(name, other)
		case 3:
			e = hard(name, other)
		case 4:
			e = whiteout(d + ".wh." + base)
		case 5:
			e = whiteout(name + "/.wh..wh..opq")
		}
		*l = append(*l, e)
	}
	return layers
}

// FuzzProvidersAgree: whatever the layers, the overlay and the copy provider both refuse them
// or both make the same tree. The corpus is its seed.
func FuzzProvidersAgree(f *testing.F) {
	if os.Geteuid() != 0 {
		if testenv.InCI() {
			f.Fatal("CI=true and this fuzz target needs root")
		}
		f.Skip("needs root (mounts overlayfs)")
	}
	for _, c := range corpus {
		var b []byte
		for i, l := range c.layers {
			if i > 0 {
				b = append(b, 0xff)
			}
			for _, e := range l {
				b = append(b, encodeFuzzEntry(e)...)
			}
		}
		f.Add(b)
	}
	a := newAgreement(f)
	f.Fuzz(func(t *testing.T, data []byte) {
		var layers [][]byte
		for _, l := range fuzzLayers(data) {
			layers = append(layers, tarLayer(t, l))
		}
		img := imageOf(t, layers)
		o, cp, _, fellBack, err := a.trees(t, img)
		if err != nil {
			return // both refused
		}
		// A run takes a copy only for what overlayfs cannot show as the spec says.
		if fellBack != nil && !strings.Contains(fellBack.Error(), "hides nothing") && !a.repeated(t, img) {
			t.Errorf("the overlay provider fell back to a copy on %v: %v", fuzzLayers(data), fellBack)
		}
		if d := testenv.DiffTrees(o, cp); len(d) > 0 {
			t.Errorf("overlay and copy differ on %v:\n%s", fuzzLayers(data), strings.Join(d, "\n"))
		}
	})
}

// encodeFuzzEntry is the fuzz encoding of a corpus entry, near enough: an entry whose name is
// not among fuzzNames takes the first, so the seeds are of the corpus's shapes.
func encodeFuzzEntry(e entry) []byte {
	index := func(name string) byte {
		name = strings.TrimSuffix(name, "/")
		for i, n := range fuzzNames {
			if n == name {
				return byte(i)
			}
		}
		return 0
	}
	d, base := path.Split(strings.TrimSuffix(e.name, "/"))
	switch {
	case base == ".wh..wh..opq":
		return []byte{index(d), 5, 0}
	case strings.HasPrefix(base, ".wh."):
		return []byte{index(d + strings.TrimPrefix(base, ".wh.")), 4, 0}
	case e.typ == tar.TypeDir:
		return []byte{index(e.name), 1, 0}
	case e.typ == tar.TypeSymlink:
		return []byte{index(e.name), 2, index(e.link)}
	case e.typ == tar.TypeLink:
		return []byte{index(e.name), 3, index(e.link)}
	}
	return []byte{index(e.name), 0, byte(len(e.body))}
}
