package testenv

import (
	"testing"

	v1 "github.com/google/go-containerregistry/pkg/v1"
)

// Digest is the manifest digest of an image or index, failing the test when it has none.
func Digest(t testing.TB, x interface{ Digest() (v1.Hash, error) }) v1.Hash {
	t.Helper()
	h, err := x.Digest()
	if err != nil {
		t.Fatal(err)
	}
	return h
}
