package packages

import (
	"context"
	"fmt"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/serpent-os/serpent-oci/oci/registry"
	"github.com/serpent-os/serpent-oci/oci/store"
)

// OpenRepository opens a repository: a store tag of a package index, or a registry reference
// (REGISTRY/REPO:TAG, reg may be nil for none), read lazily: a package image is fetched only
// when read, its blobs only when written, and not at all when the store has them.
func OpenRepository(ctx context.Context, st *store.Store, reg *registry.Client, repo string) (v1.ImageIndex, error) {
	if !registry.LooksRemote(repo) {
		idx, err := st.Index(repo)
		if err != nil {
			return nil, fmt.Errorf("repository %s: %w", repo, err)
		}
		return idx, nil
	}
	if reg == nil {
		return nil, fmt.Errorf("repository %s: a registry reference, and no registry access", repo)
	}
	ref, err := reg.ParseReference(repo)
	if err != nil {
		return nil, fmt.Errorf("repository %s: %w", repo, err)
	}
	return reg.Index(ctx, ref)
}
