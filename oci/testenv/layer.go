package testenv

import (
	"archive/tar"
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
