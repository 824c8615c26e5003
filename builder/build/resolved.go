package build

import (
	"context"
	"crypto/sha256"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"
	"path/filepath"

	"github.com/containerd/log"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/serpent-os/serpent-oci/oci/store"
)

// resolvedDir is where the store records the stages a build resolved from a cache without
// downloading them (below .serpent/): one file per tag.
const resolvedDir = "resolved"

// maxResolvedBytes bounds a record read from the store (a few hundred bytes when we wrote it).
const maxResolvedBytes = 64 << 10

// resolvedRecord says that a build found the image of Tag under Key in a cache, as Image (a
// registry reference by digest), and used only its Digest. A later plan continues the chain of
// keys from it, and pulls the image from there when something must run on it.
type resolvedRecord struct {
	Tag    string `json:"tag"`
	Key    string `json:"key"`
	Digest string `json:"digest"`
	Image  string `json:"image"`
}

func resolvedFile(tag store.Ref) string {
	return fmt.Sprintf("%x.json", sha256.Sum256([]byte(tag.String())))
}

// readResolved reads the store's record for tag, and its digest. A record that is missing,
// unreadable or not for tag is no record (one that is there but bad is logged): it can only
// save a build.
func readResolved(ctx context.Context, st *store.Store, tag store.Ref) (resolvedRecord, v1.Hash, bool) {
	var rec resolvedRecord
	var h v1.Hash
	root, err := os.OpenRoot(st.Dir())
	if err != nil {
		return rec, h, false
	}
	defer root.Close()
	name := path.Join(".serpent", resolvedDir, resolvedFile(tag))
	f, err := root.Open(name)
	if err != nil {
		if !errors.Is(err, fs.ErrNotExist) {
			log.G(ctx).WithError(err).WithField("tag", tag.String()).Warn("resolved record unreadable: ignored")
		}
		return rec, h, false
	}
	defer f.Close()
	b, err := io.ReadAll(io.LimitReader(f, maxResolvedBytes+1))
	if err == nil && len(b) > maxResolvedBytes {
		err = fmt.Errorf("larger than %d bytes", maxResolvedBytes)
	}
	if err == nil {
		err = json.Unmarshal(b, &rec)
	}
	if err == nil && rec.Tag != tag.String() {
		err = fmt.Errorf("it is for %q", rec.Tag)
	}
	if err == nil {
		h, err = v1.NewHash(rec.Digest)
	}
	if err != nil {
		log.G(ctx).WithError(err).WithFields(log.Fields{"tag": tag.String(), "file": filepath.Join(st.Dir(), name)}).Warn("resolved record is bad: ignored")
		return resolvedRecord{}, v1.Hash{}, false
	}
	return rec, h, true
}

// writeResolved records that s was resolved from its cache (written whole or not at all).
func writeResolved(st *store.Store, s *Step) error {
	dir, err := st.PrivateDir(resolvedDir)
	if err != nil {
		return err
	}
	b, err := json.MarshalIndent(resolvedRecord{Tag: s.Tag.String(), Key: s.Key, Digest: s.CachedDigest.String(), Image: s.CachedRef.String()}, "", "  ")
	if err != nil {
		return err
	}
	tmp, err := os.CreateTemp(dir, ".record-*")
	if err != nil {
		return err
	}
	defer os.Remove(tmp.Name())
	if _, err := tmp.Write(append(b, '\n')); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Close(); err != nil {
		return err
	}
	return os.Rename(tmp.Name(), filepath.Join(dir, resolvedFile(s.Tag)))
}

// forgetResolved removes tag's record once the store has an image for it.
func forgetResolved(st *store.Store, tag store.Ref) {
	_ = os.Remove(filepath.Join(st.Dir(), ".serpent", resolvedDir, resolvedFile(tag)))
}
