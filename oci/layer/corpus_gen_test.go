package layer

import (
	"archive/tar"
	"bytes"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"testing"
)

var writeCorpus = flag.Bool("write-corpus", false, "rewrite testdata/fuzz/FuzzExtract from the crafted cases")

// hostileLayers are the crafted layers of the hostile-input campaign, kept as FuzzExtract's seed
// corpus in testdata/fuzz/FuzzExtract (go test runs them; go test -run TestCorpus
// -write-corpus rewrites them).
func hostileLayers() map[string][]byte {
	tarOf := func(hdrs ...*tar.Header) []byte {
		var buf bytes.Buffer
		tw := tar.NewWriter(&buf)
		for _, h := range hdrs {
			tw.WriteHeader(h)
			if h.Size > 0 {
				tw.Write(bytes.Repeat([]byte("x"), int(h.Size)))
			}
		}
		tw.Close()
		return buf.Bytes()
	}
	reg := func(name string) *tar.Header {
		return &tar.Header{Name: name, Typeflag: tar.TypeReg, Mode: 0o644, Size: 1}
	}
	sparse, _ := io.ReadAll(sparseTar("big", 100<<30))
	return map[string][]byte{
		"whiteout-dot-dot-dot":      tarOf(reg(".wh...")),
		"whiteout-dot-dot":          tarOf(reg(".wh..")),
		"whiteout-empty":            tarOf(reg(".wh.")),
		"whiteout-reserved":         tarOf(&tar.Header{Name: "a/", Typeflag: tar.TypeDir, Mode: 0o755}, reg("a/.wh..wh.other")),
		"sparse-100g":               sparse,
		"symlink-escape-then-write": tarOf(&tar.Header{Name: "l", Typeflag: tar.TypeSymlink, Linkname: "../../outside"}, reg("l/canary")),
		"absolute-symlink-write":    tarOf(&tar.Header{Name: "l", Typeflag: tar.TypeSymlink, Linkname: "/etc"}, reg("l/passwd")),
		"hardlink-out":              tarOf(&tar.Header{Name: "hl", Typeflag: tar.TypeLink, Linkname: "../../etc/passwd"}),
		"overlay-whiteout-device":   tarOf(&tar.Header{Name: "w", Typeflag: tar.TypeChar, Mode: 0o644}),
		"overlay-opaque-xattr": tarOf(&tar.Header{Name: "d/", Typeflag: tar.TypeDir, Mode: 0o755,
			PAXRecords: map[string]string{"SCHILY.xattr.trusted.overlay.opaque": "y"}}),
		"dir-then-symlink-then-entry": tarOf(&tar.Header{Name: "d/", Typeflag: tar.TypeDir, Mode: 0o755},
			&tar.Header{Name: "d", Typeflag: tar.TypeSymlink, Linkname: "/"}, reg("d/x")),
	}
}

func TestCorpusIsCurrent(t *testing.T) {
	dir := filepath.Join("testdata", "fuzz", "FuzzExtract")
	for name, data := range hostileLayers() {
		for _, overlay := range []bool{false, true} {
			file := filepath.Join(dir, fmt.Sprintf("%s-%v", name, map[bool]string{false: "dir", true: "overlay"}[overlay]))
			want := fmt.Sprintf("go test fuzz v1\n[]byte(%q)\nbool(%v)\n", data, overlay)
			if *writeCorpus {
				os.MkdirAll(dir, 0o755)
				if err := os.WriteFile(file, []byte(want), 0o644); err != nil {
					t.Fatal(err)
				}
				continue
			}
			got, err := os.ReadFile(file)
			if err != nil || string(got) != want {
				t.Errorf("%s is missing or stale (go test ./oci/layer -run TestCorpusIsCurrent -write-corpus): %v", file, err)
			}
		}
	}
}
