package layer

import (
	"archive/tar"
	"bytes"
	"context"
	"crypto/sha256"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/serpent-os/serpent-oci/oci/testenv"
	"golang.org/x/sys/unix"
)

func TestMain(m *testing.M) {
	unix.Umask(0o022) // modes in golden files must not depend on the caller's umask
	os.Exit(m.Run())
}

var update = flag.Bool("update", false, "rewrite golden files in testdata/")

// listing renders a tar stream one line per entry: the golden form of a layer.
func listing(t *testing.T, r io.Reader) string {
	t.Helper()
	var b strings.Builder
	tr := tar.NewReader(r)
	for {
		hdr, err := tr.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		sum := ""
		if hdr.Typeflag == tar.TypeReg {
			h := sha256.New()
			if _, err := io.Copy(h, tr); err != nil {
				t.Fatal(err)
			}
			sum = fmt.Sprintf(" sha256:%x", h.Sum(nil))[:20]
		}
		var pax []string
		for k, v := range hdr.PAXRecords {
			if k != "path" && k != "linkpath" {
				pax = append(pax, fmt.Sprintf("%s=%q", k, v))
			}
		}
		sort.Strings(pax)
		fmt.Fprintf(&b, "%c %04o %d:%d %q %q %s size=%d dev=%d,%d%s fmt=%v pax=%v\n",
			hdr.Typeflag, hdr.Mode, hdr.Uid, hdr.Gid, hdr.Uname+hdr.Gname, hdr.Name,
			hdr.ModTime.UTC().Format(time.RFC3339), hdr.Size, hdr.Devmajor, hdr.Devminor, sum,
			hdr.Format, pax)
		if hdr.Linkname != "" {
			fmt.Fprintf(&b, "  -> %s\n", hdr.Linkname)
		}
	}
	return b.String()
}

func writeLayer(t *testing.T, root string, opts WriteOptions) ([]byte, WriteResult) {
	t.Helper()
	var buf bytes.Buffer
	res, err := Write(context.Background(), root, &buf, opts)
	if err != nil {
		t.Fatalf("Write(%s): %v", root, err)
	}
	return buf.Bytes(), res
}

func golden(t *testing.T, name, got string) {
	t.Helper()
	path := filepath.Join("testdata", name)
	if *update {
		if err := os.WriteFile(path, []byte(got), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("read golden file (go test -update writes it): %v", err)
	}
	if got != string(want) {
		t.Errorf("layer listing differs from %s (go test -update rewrites it):\ngot:\n%s\nwant:\n%s", path, got, want)
	}
}

func TestWriteListing(t *testing.T) {
	root := t.TempDir()
	testenv.PrivilegedFixture(t, root)
	data, res := writeLayer(t, root, WriteOptions{Compression: None})
	golden(t, "tree.listing", listing(t, bytes.NewReader(data)))
	if res.Size != int64(len(data)) {
		t.Errorf("WriteResult.Size = %d, stream is %d bytes", res.Size, len(data))
	}
	if want := fmt.Sprintf("%x", sha256.Sum256(data)); res.DiffID.Hex != want {
		t.Errorf("DiffID = %s, sha256 of the stream is %s", res.DiffID.Hex, want)
	}
}

// TestWriteIsDeterministic writes the same tree made twice, in two places, at two times, and
// expects the same bytes for every compression.
func TestWriteIsDeterministic(t *testing.T) {
	start := time.Now().Add(-time.Second)
	a := filepath.Join(t.TempDir(), "first")
	testenv.Fixture(t, a)
	b := filepath.Join(t.TempDir(), "elsewhere", "second")
	testenv.Fixture(t, b)
	testenv.ShiftNewTimes(t, b, start, time.Hour) // made an hour later: every new mtime differs
	for _, c := range []Compression{Gzip, Zstd, None} {
		t.Run(string(c), func(t *testing.T) {
			da, ra := writeLayer(t, a, WriteOptions{Compression: c})
			db, rb := writeLayer(t, b, WriteOptions{Compression: c})
			if ra.DiffID != rb.DiffID {
				t.Errorf("diff IDs differ: %s vs %s", ra.DiffID, rb.DiffID)
			}
			if !bytes.Equal(da, db) {
				t.Errorf("compressed layers differ: sha256 %x vs %x", sha256.Sum256(da), sha256.Sum256(db))
			}
		})
	}
}

func TestWriteClampsToEpoch(t *testing.T) {
	root := t.TempDir()
	testenv.Fixture(t, root)
	epoch := time.Date(2021, 5, 6, 7, 8, 9, 0, time.UTC)
	data, _ := writeLayer(t, root, WriteOptions{Compression: None, SourceDateEpoch: epoch})
	tr := tar.NewReader(bytes.NewReader(data))
	for {
		hdr, err := tr.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		want := epoch
		if hdr.Name == "etc/config" {
			want = testenv.Old
		}
		if !hdr.ModTime.Equal(want) {
			t.Errorf("%s: mtime %s, want %s", hdr.Name, hdr.ModTime, want)
		}
		if hdr.Uname != "" || hdr.Gname != "" {
			t.Errorf("%s: user/group names %q/%q recorded", hdr.Name, hdr.Uname, hdr.Gname)
		}
		if !hdr.AccessTime.IsZero() || !hdr.ChangeTime.IsZero() {
			t.Errorf("%s: atime/ctime recorded", hdr.Name)
		}
		if hdr.Format == tar.FormatPAX && !strings.HasPrefix(hdr.Name, "usr/long-name") {
			t.Errorf("%s: PAX header where USTAR would do", hdr.Name)
		}
	}
}

func TestWriteOverlayWhiteouts(t *testing.T) {
	testenv.RequireRoot(t) // whiteout devices and trusted.* xattrs need root
	upper := t.TempDir()
	if err := os.MkdirAll(filepath.Join(upper, "etc/replaced"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := unix.Lsetxattr(filepath.Join(upper, "etc/replaced"), "trusted.overlay.opaque", []byte("y"), 0); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(upper, "etc/replaced/new"), []byte("new\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := unix.Mknod(filepath.Join(upper, "etc/removed"), unix.S_IFCHR, 0); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(upper, "etc/removed-by-xattr"), nil, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := unix.Lsetxattr(filepath.Join(upper, "etc/removed-by-xattr"), "trusted.overlay.whiteout", []byte("y"), 0); err != nil {
		t.Fatal(err)
	}
	data, _ := writeLayer(t, upper, WriteOptions{Compression: None, Format: OverlayUpper})
	golden(t, "overlay.listing", listing(t, bytes.NewReader(data)))

	// The same tree read as a plain directory is refused where a name would become a whiteout,
	// and otherwise keeps the device as a device.
	if _, err := Write(context.Background(), upper, io.Discard, WriteOptions{Format: Dir}); err != nil {
		t.Fatalf("plain directory with a 0/0 device: %v", err)
	}
}

func TestWriteRefusesWhiteoutNames(t *testing.T) {
	root := t.TempDir()
	if err := os.WriteFile(filepath.Join(root, ".wh.trap"), nil, 0o644); err != nil {
		t.Fatal(err)
	}
	_, err := Write(context.Background(), root, io.Discard, WriteOptions{})
	if err == nil || !strings.Contains(err.Error(), ".wh.trap") {
		t.Fatalf("Write of a tree holding .wh.trap: error %v, want one naming the file", err)
	}
}

func TestWriteStopsOnCancel(t *testing.T) {
	root := t.TempDir()
	testenv.Fixture(t, root)
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := Write(ctx, root, io.Discard, WriteOptions{}); err != context.Canceled {
		t.Fatalf("Write with a cancelled context: %v, want context.Canceled", err)
	}
}

// TestRoundTrip extracts a layer and writes the result again: the same diff ID.
func TestRoundTrip(t *testing.T) {
	testenv.RequireRoot(t) // extraction restores owners
	src := t.TempDir()
	testenv.Fixture(t, src)
	data, res := writeLayer(t, src, WriteOptions{Compression: None})
	dst := filepath.Join(t.TempDir(), "rootfs")
	if err := Extract(context.Background(), dst, bytes.NewReader(data), Dir); err != nil {
		t.Fatal(err)
	}
	_, again := writeLayer(t, dst, WriteOptions{Compression: None})
	if again.DiffID != res.DiffID {
		data2, _ := writeLayer(t, dst, WriteOptions{Compression: None})
		t.Fatalf("round trip changed the layer:\nbefore:\n%s\nafter:\n%s",
			listing(t, bytes.NewReader(data)), listing(t, bytes.NewReader(data2)))
	}
}
