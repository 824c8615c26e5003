package testenv

import (
	"archive/tar"
	"bytes"
	"errors"
	"io"
	"testing"

	v1 "github.com/google/go-containerregistry/pkg/v1"
)

// Entry is one entry of a layer's tar stream, with the content of a regular file.
type Entry struct {
	Header  *tar.Header
	Content string
}

// TopLayer reads the entries of img's top layer, in the order of its tar stream.
func TopLayer(t testing.TB, img v1.Image) []Entry {
	t.Helper()
	ls, err := img.Layers()
	if err != nil || len(ls) == 0 {
		t.Fatalf("layers: %d, %v", len(ls), err)
	}
	rc, err := ls[len(ls)-1].Uncompressed()
	if err != nil {
		t.Fatal(err)
	}
	defer rc.Close()
	var out []Entry
	tr := tar.NewReader(rc)
	for {
		hdr, err := tr.Next()
		if errors.Is(err, io.EOF) {
			return out
		}
		if err != nil {
			t.Fatal(err)
		}
		b, err := io.ReadAll(tr)
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, Entry{Header: hdr, Content: string(b)})
	}
}

// TarEntry is an entry of a crafted tar stream: a regular file's Body, a link's Link target.
type TarEntry struct {
	Name, Link, Body string
	Type             byte
}

// Tar is the tar stream of entries as given (regular files 0644, directories 0755, owned by
// root), for tests that craft layers a writer would never make.
func Tar(t testing.TB, entries ...TarEntry) []byte {
	t.Helper()
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	for _, e := range entries {
		hdr := &tar.Header{Name: e.Name, Linkname: e.Link, Typeflag: e.Type, Mode: 0o644}
		if e.Type == tar.TypeDir {
			hdr.Mode = 0o755
		}
		if e.Type == tar.TypeReg {
			hdr.Size = int64(len(e.Body))
		}
		if err := tw.WriteHeader(hdr); err != nil {
			t.Fatal(err)
		}
		if e.Type == tar.TypeReg {
			if _, err := tw.Write([]byte(e.Body)); err != nil {
				t.Fatal(err)
			}
		}
	}
	if err := tw.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}
