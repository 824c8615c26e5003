package packages

import (
	"fmt"
	"slices"
	"strings"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/serpent-os/serpent-oci/oci/layer"
	"github.com/serpent-os/serpent-oci/oci/platform"
)

// Comparison is a package of one repository against the package of that name and platform in
// another: a rebuild against what it rebuilt.
type Comparison struct {
	Name     string
	Platform v1.Platform
	// A and B are the two packages' versions and image digests; an empty digest: the
	// package is in that repository only.
	VersionA, VersionB string
	A, B               v1.Hash
	SameLayer          bool // the files are bit-identical (the image may differ in its annotations)
	Differences        []layer.Difference
}

// Identical reports whether both repositories have the package with the same files.
func (c Comparison) Identical() bool { return c.SameLayer }

// String is one line: the package, and identical, differs (with its first differences),
// or in one repository only.
func (c Comparison) String() string {
	head := c.Name + " for " + platform.String(c.Platform)
	switch {
	case c.A == (v1.Hash{}):
		return head + ": only in the second repository"
	case c.B == (v1.Hash{}):
		return head + ": only in the first repository"
	case c.SameLayer:
		return head + ": identical"
	}
	var ds []string
	for i, d := range c.Differences {
		if i == 5 {
			ds = append(ds, fmt.Sprintf("and %d more", len(c.Differences)-5))
			break
		}
		ds = append(ds, d.String())
	}
	return head + ": differs: " + strings.Join(ds, "; ")
}

// Compare compares every package of repository a with the package of the same name and
// platform in b, in name then platform order, and lists those in one of them only.
func Compare(a, b v1.ImageIndex) ([]Comparison, error) {
	ea, err := Entries(a)
	if err != nil {
		return nil, fmt.Errorf("first repository: %w", err)
	}
	eb, err := Entries(b)
	if err != nil {
		return nil, fmt.Errorf("second repository: %w", err)
	}
	key := func(e Entry) string { return e.Name + " " + platform.String(e.Platform) }
	inB := map[string]Entry{}
	for _, e := range eb {
		inB[key(e)] = e
	}
	var out []Comparison
	seen := map[string]bool{}
	for _, x := range ea {
		k := key(x)
		seen[k] = true
		c := Comparison{Name: x.Name, Platform: x.Platform, VersionA: x.Version, A: x.Descriptor.Digest}
		y, ok := inB[k]
		if ok {
			c.VersionB, c.B = y.Version, y.Descriptor.Digest
			if err := compareLayers(a, b, x, y, &c); err != nil {
				return nil, fmt.Errorf("package %s: %w", k, err)
			}
		}
		out = append(out, c)
	}
	for _, y := range eb {
		if !seen[key(y)] {
			out = append(out, Comparison{Name: y.Name, Platform: y.Platform, VersionB: y.Version, B: y.Descriptor.Digest})
		}
	}
	slices.SortFunc(out, func(p, q Comparison) int {
		return strings.Compare(p.Name+" "+platform.String(p.Platform), q.Name+" "+platform.String(q.Platform))
	})
	return out, nil
}

func compareLayers(a, b v1.ImageIndex, x, y Entry, c *Comparison) error {
	la, err := onlyLayer(a, x)
	if err != nil {
		return err
	}
	lb, err := onlyLayer(b, y)
	if err != nil {
		return err
	}
	da, err := la.Digest()
	if err != nil {
		return err
	}
	db, err := lb.Digest()
	if err != nil {
		return err
	}
	if da == db {
		c.SameLayer = true
		return nil
	}
	ra, err := la.Uncompressed()
	if err != nil {
		return err
	}
	defer ra.Close()
	rb, err := lb.Uncompressed()
	if err != nil {
		return err
	}
	defer rb.Close()
	c.Differences, err = layer.Diff(ra, rb)
	c.SameLayer = err == nil && len(c.Differences) == 0 // same files, other bytes (compression)
	return err
}

func onlyLayer(idx v1.ImageIndex, e Entry) (v1.Layer, error) {
	img, err := idx.Image(e.Descriptor.Digest)
	if err != nil {
		return nil, err
	}
	ls, err := img.Layers()
	if err != nil {
		return nil, err
	}
	if len(ls) != 1 {
		return nil, fmt.Errorf("%d layers, a package has one", len(ls))
	}
	return ls[0], nil
}
