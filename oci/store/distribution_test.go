package store

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
)

func TestDistributionSources(t *testing.T) {
	ctx := context.Background()
	s := openStore(t)
	h, _, err := s.WriteBlob(ctx, strings.NewReader("a layer"), nil)
	if err != nil {
		t.Fatal(err)
	}
	repo := func(r string) name.Repository {
		t.Helper()
		n, err := name.NewRepository(r)
		if err != nil {
			t.Fatal(err)
		}
		return n
	}
	if got := s.DistributionSources(h); got != nil {
		t.Fatalf("a new blob has sources %v", got)
	}
	for _, r := range []string{"reg.test/a", "reg.test/b", "reg.test/a", "other.test/c"} {
		if err := s.AddDistributionSource(repo(r), h); err != nil {
			t.Fatal(err)
		}
	}
	if got, want := s.DistributionSources(h), []string{"other.test/c", "reg.test/a", "reg.test/b"}; !slices.Equal(got, want) {
		t.Errorf("sources %v, want %v (newest first, none twice)", got, want)
	}
	for i := range 20 {
		if err := s.AddDistributionSource(repo(fmt.Sprintf("reg.test/r%d", i)), h); err != nil {
			t.Fatal(err)
		}
	}
	if got := s.DistributionSources(h); len(got) != maxDistributionSources || got[0] != "reg.test/r19" {
		t.Errorf("after 23 sources: %d kept, first %v; want %d, the newest first", len(got), got[:1], maxDistributionSources)
	}
	if err := s.AddDistributionSource(repo("reg.test/a"), v1.Hash{Algorithm: "sha256", Hex: "../../../etc/passwd"}); err == nil {
		t.Error("a source recorded for a digest that is a path")
	}

	// A record is a hint: one that is bad, too large or not a file reads as none.
	file := filepath.Join(s.Dir(), ".serpent", "derived", distributionKind, h.Hex+".json")
	for what, content := range map[string]string{
		"not JSON":              "[",
		"not a repository":      `["reg.test/UPPER CASE"]`,
		"more than the bound":   `[` + strings.Repeat(`"reg.test/a",`, maxDistributionSources) + `"reg.test/a"]`,
		"larger than the bound": `["reg.test/a"]` + strings.Repeat(" ", maxDistributionBytes),
	} {
		if err := os.WriteFile(file, []byte(content), 0o600); err != nil {
			t.Fatal(err)
		}
		if got := s.DistributionSources(h); got != nil {
			t.Errorf("record %s: sources %v", what, got)
		}
	}
	outside := filepath.Join(t.TempDir(), "record.json")
	if err := os.WriteFile(outside, []byte(`["reg.test/a"]`), 0o600); err != nil {
		t.Fatal(err)
	}
	os.Remove(file)
	if err := os.Symlink(outside, file); err != nil {
		t.Fatal(err)
	}
	if got := s.DistributionSources(h); got != nil {
		t.Errorf("a record that is a symlink out of the store: sources %v", got)
	}
	// Replaced by the next record, the symlink's target untouched.
	if err := s.AddDistributionSource(repo("reg.test/new"), h); err != nil {
		t.Fatal(err)
	}
	if b, _ := os.ReadFile(outside); string(b) != `["reg.test/a"]` {
		t.Errorf("the symlink's target was written: %s", b)
	}
	if got := s.DistributionSources(h); !slices.Equal(got, []string{"reg.test/new"}) {
		t.Errorf("after a write over a symlink: %v", got)
	}

	// gc removes a blob's sources with it.
	if _, err := s.GC(ctx); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Lstat(file); !os.IsNotExist(err) {
		t.Errorf("gc left the sources of a blob it removed: %v", err)
	}
}
