package layer

import (
	"archive/tar"
	"bytes"
	"context"
	"errors"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/serpent-os/serpent-oci/oci/testenv"
	"golang.org/x/sys/unix"
)

// TestExtractRefusesDegenerateWhiteouts: a layer whose only entry is `.wh...` made umoci's
// unpacker remove the parent of its target (the store's every snapshot). Each degenerate
// whiteout is refused, in both formats, and nothing beside the target changes.
func TestExtractRefusesDegenerateWhiteouts(t *testing.T) {
	testenv.RequireRoot(t)
	for _, format := range []Format{Dir, OverlayUpper} {
		for _, name := range []string{".wh...", ".wh..", ".wh.", "a/.wh...", "a/.wh..wh.other", "/.wh..", "./.wh..."} {
			t.Run(formatName(format)+"/"+name, func(t *testing.T) {
				snapshots := t.TempDir()
				sibling := filepath.Join(snapshots, "sibling")
				if err := os.WriteFile(sibling, []byte("another snapshot"), 0o644); err != nil {
					t.Fatal(err)
				}
				target := filepath.Join(snapshots, "target")
				before := snapshot(t, snapshots, target)
				err := Extract(context.Background(), target, craft(t, entry{name: "a/", typ: tar.TypeDir}, entry{name: name, typ: tar.TypeReg}), format)
				if !errors.Is(err, ErrRefused) {
					t.Errorf("extract %s: %v, want it refused", name, err)
				}
				if diff := diffMaps(before, snapshot(t, snapshots, target)); len(diff) > 0 {
					t.Fatalf("extracting %s changed what is beside the target: %v", name, diff)
				}
			})
		}
	}
}

func formatName(f Format) string {
	if f == OverlayUpper {
		return "overlay"
	}
	return "dir"
}

// TestExtractWritesSparseFilesSparse: 1.5 KiB of tar claiming a 100 GiB file is refused under
// the default limit, and with the limit raised it is written as a hole and one block.
func TestExtractWritesSparseFilesSparse(t *testing.T) {
	testenv.RequireRoot(t)
	const claimed = 100 << 30
	target := t.TempDir()
	err := Extract(context.Background(), target, sparseTar("big", claimed), Dir)
	if !errors.Is(err, ErrRefused) || !strings.Contains(err.Error(), "over the limit") {
		t.Fatalf("a 100 GiB entry under the default limits: %v", err)
	}
	// Under a raised limit (a smaller claim, so that the test does not spend a minute reading
	// the zeros the tar reader makes of the hole).
	const raised = 1 << 30
	target = t.TempDir()
	if err := ExtractWith(context.Background(), target, sparseTar("big", raised), ExtractOptions{MaxEntryBytes: 1 << 29 * 3, MaxLayerBytes: 1 << 29 * 3}); err != nil {
		t.Fatal(err)
	}
	if err := ExtractWith(context.Background(), t.TempDir(), sparseTar("big", raised), ExtractOptions{MaxEntryBytes: raised / 2}); !errors.Is(err, ErrRefused) {
		t.Fatalf("an entry over a lowered limit: %v", err)
	}
	var st unix.Stat_t
	if err := unix.Stat(filepath.Join(target, "big"), &st); err != nil {
		t.Fatal(err)
	}
	if st.Size != raised || st.Blocks*512 > 1<<20 {
		t.Fatalf("big: size %d, %d bytes on disk; want %d and at most 1 MiB", st.Size, st.Blocks*512, int64(raised))
	}
	f, err := os.Open(filepath.Join(target, "big"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	b := make([]byte, 2)
	if _, err := f.ReadAt(b, raised-2); err != nil || string(b) != "\x00x" {
		t.Fatalf("the last bytes: %q, %v", b, err)
	}
}

// TestExtractNeverFollowsAParent: a layer entry below a path a lower layer made a symlink
// replaces the symlink by a directory (what overlayfs shows), so the copy and overlay paths
// agree, and nothing is written where the symlink pointed.
func TestExtractNeverFollowsAParent(t *testing.T) {
	testenv.RequireRoot(t)
	target := t.TempDir()
	ctx := context.Background()
	lower := craft(t, entry{name: "real/", typ: tar.TypeDir}, entry{name: "real/old", body: "old", typ: tar.TypeReg},
		entry{name: "a", link: "real", typ: tar.TypeSymlink})
	if err := Extract(ctx, target, lower, Dir); err != nil {
		t.Fatal(err)
	}
	if err := Extract(ctx, target, craft(t, entry{name: "a/new", body: "new", typ: tar.TypeReg}), Dir); err != nil {
		t.Fatal(err)
	}
	if fi, err := os.Lstat(filepath.Join(target, "a")); err != nil || !fi.IsDir() {
		t.Fatalf("a: %v, %v; want a directory in place of the symlink", fi, err)
	}
	if _, err := os.Stat(filepath.Join(target, "real", "new")); !os.IsNotExist(err) {
		t.Errorf("real/new: %v: the entry was written through the symlink", err)
	}
	if b, _ := os.ReadFile(filepath.Join(target, "real", "old")); string(b) != "old" {
		t.Errorf("real/old: %q", b)
	}
}

// TestExtractRefusesOverlayForgeries: a 0/0 character device and trusted.overlay xattrs are
// overlayfs's own vocabulary; a layer cannot smuggle them into a snapshot.
func TestExtractRefusesOverlayForgeries(t *testing.T) {
	testenv.RequireRoot(t)
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	tw.WriteHeader(&tar.Header{Name: "d/", Typeflag: tar.TypeDir, Mode: 0o755, PAXRecords: map[string]string{
		"SCHILY.xattr.trusted.overlay.opaque": "y", "SCHILY.xattr.user.kept": "1"}})
	tw.Close()
	target := t.TempDir()
	if err := Extract(context.Background(), target, bytes.NewReader(buf.Bytes()), OverlayUpper); err != nil {
		t.Fatal(err)
	}
	if _, err := unix.Lgetxattr(filepath.Join(target, "d"), "trusted.overlay.opaque", make([]byte, 8)); err == nil {
		t.Error("a layer's trusted.overlay.opaque xattr was applied")
	}
	if n, err := unix.Lgetxattr(filepath.Join(target, "d"), "user.kept", make([]byte, 8)); err != nil || n != 1 {
		t.Errorf("user.kept: %d, %v", n, err)
	}
	buf.Reset()
	tw = tar.NewWriter(&buf)
	tw.WriteHeader(&tar.Header{Name: "fake-whiteout", Typeflag: tar.TypeChar, Mode: 0o644})
	tw.Close()
	if err := Extract(context.Background(), t.TempDir(), bytes.NewReader(buf.Bytes()), OverlayUpper); !errors.Is(err, ErrRefused) {
		t.Errorf("a 0/0 character device: %v, want it refused", err)
	}
}

// TestExtractHardlinkErrorsSayWhy: a hardlink out of the root says so.
func TestExtractHardlinkErrorsSayWhy(t *testing.T) {
	testenv.RequireRoot(t)
	err := Extract(context.Background(), t.TempDir(), craft(t, entry{name: "link", typ: tar.TypeSymlink, link: "/etc"},
		entry{name: "hl", link: "link/passwd", typ: tar.TypeLink}), Dir)
	if !errors.Is(err, ErrRefused) || !strings.Contains(err.Error(), "entry hl: hardlink to link/passwd: the link points outside the root") {
		t.Fatalf("hardlink through a symlink out: %v", err)
	}
}

// FuzzExtract applies arbitrary tar streams: whatever the stream, nothing beside the target
// changes and Extract returns (an error or not) without a panic.
func FuzzExtract(f *testing.F) {
	if os.Geteuid() != 0 {
		f.Skip("extraction as root is the case that matters")
	}
	seed := func(entries ...entry) {
		var buf bytes.Buffer
		tw := tar.NewWriter(&buf)
		for _, e := range entries {
			tw.WriteHeader(&tar.Header{Name: e.name, Linkname: e.link, Typeflag: e.typ, Mode: 0o755, Size: int64(len(e.body))})
			tw.Write([]byte(e.body))
		}
		tw.Close()
		f.Add(buf.Bytes(), false)
		f.Add(buf.Bytes(), true)
	}
	seed(entry{name: ".wh...", typ: tar.TypeReg})
	seed(entry{name: "a", link: "../../outside", typ: tar.TypeSymlink}, entry{name: "a/b", body: "x", typ: tar.TypeReg})
	seed(entry{name: "d/", typ: tar.TypeDir}, entry{name: "d/.wh..wh..opq", typ: tar.TypeReg}, entry{name: "hl", link: "d", typ: tar.TypeLink})
	sparse, _ := io.ReadAll(sparseTar("s", 1<<20))
	f.Add(sparse, false)
	f.Fuzz(func(t *testing.T, data []byte, overlay bool) {
		sandbox := t.TempDir()
		canary := filepath.Join(sandbox, "canary")
		if err := os.WriteFile(canary, []byte("original"), 0o644); err != nil {
			t.Fatal(err)
		}
		target := filepath.Join(sandbox, "target")
		format := Dir
		if overlay {
			format = OverlayUpper
		}
		_ = ExtractWith(context.Background(), target, bytes.NewReader(data), ExtractOptions{Format: format, MaxEntryBytes: 1 << 24, MaxLayerBytes: 1 << 26})
		entries, err := os.ReadDir(sandbox)
		if err != nil {
			t.Fatal(err)
		}
		for _, e := range entries {
			if e.Name() != "canary" && e.Name() != "target" {
				t.Fatalf("extraction made %s beside its target", e.Name())
			}
		}
		if b, err := os.ReadFile(canary); err != nil || string(b) != "original" {
			t.Fatalf("the file beside the target: %q, %v", b, err)
		}
	})
}

// TestDecompressFindsCorruption: a gzip layer cut short fails its extraction, whether unpigz
// or pgzip inflates it, from a stream or from a blob file (which unpigz reads itself).
func TestDecompressFindsCorruption(t *testing.T) {
	testenv.RequireRoot(t)
	var buf bytes.Buffer
	w, err := compressor(&buf, Gzip)
	if err != nil {
		t.Fatal(err)
	}
	io.Copy(w, craft(t, entry{name: "f", body: strings.Repeat("data ", 100000), typ: tar.TypeReg}))
	w.Close()
	whole, cut := buf.Bytes(), buf.Bytes()[:buf.Len()/2]
	for _, disable := range []string{"", "1"} {
		t.Setenv("SERPENT_OCI_DISABLE_PIGZ", disable)
		for _, tc := range []struct {
			data []byte
			ok   bool
		}{{whole, true}, {cut, false}} {
			file := filepath.Join(t.TempDir(), "blob")
			if err := os.WriteFile(file, tc.data, 0o644); err != nil {
				t.Fatal(err)
			}
			for _, from := range []string{"stream", "file"} {
				var in io.ReadCloser = io.NopCloser(bytes.NewReader(tc.data))
				if from == "file" {
					f, err := os.Open(file)
					if err != nil {
						t.Fatal(err)
					}
					in = f
				}
				rc, err := Decompress(in)
				if err != nil {
					t.Fatal(err)
				}
				dir := t.TempDir()
				err = Extract(context.Background(), dir, rc, Dir)
				rc.Close()
				if (err == nil) != tc.ok {
					t.Errorf("pigz disabled %q, from a %s, whole %v: %v", disable, from, tc.ok, err)
				}
				if b, _ := os.ReadFile(filepath.Join(dir, "f")); tc.ok && string(b) != strings.Repeat("data ", 100000) {
					t.Errorf("pigz disabled %q, from a %s: f holds %d bytes", disable, from, len(b))
				}
			}
		}
	}
}

// TestExtractSkipsGlobalHeaders: a PAX global header (git archive writes one) is no file.
func TestExtractSkipsGlobalHeaders(t *testing.T) {
	testenv.RequireRoot(t)
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	tw.WriteHeader(&tar.Header{Typeflag: tar.TypeXGlobalHeader, Name: "pax_global_header", PAXRecords: map[string]string{"comment": "0123abcd"}})
	tw.WriteHeader(&tar.Header{Name: "f", Typeflag: tar.TypeReg, Mode: 0o644, Size: 2})
	tw.Write([]byte("hi"))
	tw.Close()
	target := t.TempDir()
	if err := Extract(context.Background(), target, bytes.NewReader(buf.Bytes()), Dir); err != nil {
		t.Fatal(err)
	}
	entries, _ := os.ReadDir(target)
	if len(entries) != 1 || entries[0].Name() != "f" {
		t.Errorf("extracted %v, want f alone", entries)
	}
}
