package store

import (
	"encoding/json"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
)

// A blob's distribution sources are the registry repositories known to hold it: those it was
// pulled from or pushed to. containerd keeps the same as content labels
// (containerd.io/distribution.source.HOST=REPO,...), for the same use: a push to another
// repository of one of those registries asks the registry to mount the blob from there
// instead of uploading it again. They are kept as derived data of the blob, so gc drops them
// with it; a record is a hint only (a registry that no longer has the blob answers the mount
// with an upload), so one that cannot be read is none.

// distributionKind is the derived-data kind of the sources: one file per blob, HEX.json.
const distributionKind = "distribution"

const (
	maxDistributionSources = 16       // per blob, the newest kept
	maxDistributionBytes   = 16 << 10 // a record's file
)

// DistributionSources returns the repositories (REGISTRY/REPO) known to hold blob h, newest
// first.
func (s *Store) DistributionSources(h v1.Hash) []string {
	root, err := os.OpenRoot(s.private("derived", distributionKind))
	if err != nil {
		return nil
	}
	defer root.Close()
	f, err := root.Open(h.Hex + ".json")
	if err != nil {
		return nil
	}
	defer f.Close()
	if fi, err := f.Stat(); err != nil || !fi.Mode().IsRegular() {
		return nil
	}
	b, err := io.ReadAll(io.LimitReader(f, maxDistributionBytes+1))
	var repos []string
	if err != nil || len(b) > maxDistributionBytes || json.Unmarshal(b, &repos) != nil || len(repos) > maxDistributionSources {
		return nil
	}
	for _, r := range repos {
		if _, err := name.NewRepository(r); err != nil {
			return nil
		}
	}
	return repos
}

// AddDistributionSource records that repo holds each of blobs, first among their sources.
func (s *Store) AddDistributionSource(repo name.Repository, blobs ...v1.Hash) error {
	dir, err := s.DerivedDir(distributionKind)
	if err != nil {
		return err
	}
	r := repo.Name()
	for _, h := range blobs {
		if h.Algorithm != "sha256" || !hexRE.MatchString(h.Hex) {
			return fmt.Errorf("record %s as a source of %s: not a sha256 digest", r, h)
		}
		old := s.DistributionSources(h)
		if len(old) > 0 && old[0] == r {
			continue
		}
		repos := append([]string{r}, slices.DeleteFunc(old, func(o string) bool { return o == r })...)
		b, err := json.Marshal(repos[:min(len(repos), maxDistributionSources)])
		if err == nil {
			err = writeFileAtomic(s.private("tmp"), filepath.Join(dir, h.Hex+".json"), append(b, '\n'))
		}
		if err != nil {
			return fmt.Errorf("record %s as a source of %s: %w", r, h, err)
		}
	}
	return nil
}
