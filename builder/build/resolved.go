package build

import (
	"context"
	"errors"
	"fmt"
	"io/fs"

	"github.com/containerd/log"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/serpent-os/serpent-oci/oci/store"
)

// resolvedDir is where the store records the stages a build resolved from a cache without
// downloading them (below .serpent/): one file per tag.
const resolvedDir = "resolved"

// resolvedRecord says that a build found the image of Tag under Key in a cache, as Image (a
// registry reference by digest), and used only its Digest. A later plan continues the chain of
// keys from it, and pulls the image from there when something must run on it.
type resolvedRecord struct {
	Tag    string `json:"tag"`
	Key    string `json:"key"`
	Digest string `json:"digest"`
	Image  string `json:"image"`
}

// readResolved reads the store's record for tag, and its digest. A record that is missing,
// unreadable or not for tag is no record (one that is there but bad is logged): it can only
// save a build.
func readResolved(ctx context.Context, st *store.Store, tag store.Ref) (resolvedRecord, v1.Hash, bool) {
	var rec resolvedRecord
	var h v1.Hash
	err := readRecord(st, resolvedDir, tag, &rec)
	if errors.Is(err, fs.ErrNotExist) {
		return rec, h, false
	}
	if err == nil && rec.Tag != tag.String() {
		err = fmt.Errorf("it is for %q", rec.Tag)
	}
	if err == nil {
		h, err = v1.NewHash(rec.Digest)
	}
	if err != nil {
		log.G(ctx).WithError(err).WithFields(log.Fields{"tag": tag.String(), "file": recordPath(st, resolvedDir, tag)}).Warn("resolved record is bad: ignored")
		return resolvedRecord{}, v1.Hash{}, false
	}
	return rec, h, true
}

// writeResolved records that s was resolved from its cache (written whole or not at all).
func writeResolved(st *store.Store, s *Step) error {
	return writeRecord(st, resolvedDir, s.Tag, resolvedRecord{Tag: s.Tag.String(), Key: s.Key, Digest: s.CachedDigest.String(), Image: s.CachedRef.String()})
}

// forgetResolved removes tag's record once the store has an image for it.
func forgetResolved(st *store.Store, tag store.Ref) {
	removeRecord(st, resolvedDir, tag)
}
