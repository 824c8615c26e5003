package store

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/containerd/log"
	v1 "github.com/google/go-containerregistry/pkg/v1"
)

// GCResult says what gc removed.
type GCResult struct {
	Blobs     int   // unreachable blobs removed
	TempFiles int   // temporary files of interrupted writes removed
	Derived   int   // entries of derived data (snapshots) whose blob is gone
	Referrers int   // artifacts (SBOMs) whose subject no tag reaches any more
	Bytes     int64 // space freed
}

// GC removes every blob no tag reaches and the temporary files interrupted writes left. It waits
// for writers to finish and keeps new ones waiting while it runs. It refuses to run on a store
// whose index or reachable manifests do not parse, since it could not tell what is reachable.
func (s *Store) GC(ctx context.Context) (GCResult, error) {
	var res GCResult
	// gc deletes: every directory it sweeps must be the store's own, never a way out of it
	// (checked before the lock, whose file lives in .serpent/).
	if probs := s.structureProblems(); len(probs) > 0 {
		return res, fmt.Errorf("gc: refusing to sweep a store whose structure is not plain directories: %s (and %d more; run fsck)", probs[0], len(probs)-1)
	}
	release, err := s.lockGC(ctx)
	if err != nil {
		return res, err
	}
	defer release()
	idx, err := s.readIndex()
	if err != nil {
		return res, fmt.Errorf("gc: %w", err)
	}
	// What the tags reach, then the referrers of what they reach; referrers of anything else
	// leave index.json with their subject.
	tagged, referrers := splitReferrers(idx)
	reachable := map[v1.Hash]bool{}
	mark := func(_ string, d v1.Descriptor) bool {
		reachable[d.Digest] = true
		return true
	}
	errs := s.walkReachable(tagged, mark)
	live := &v1.IndexManifest{}
	dangling := map[v1.Hash]bool{}
	for _, r := range referrers.Manifests {
		if h, err := v1.NewHash(r.Annotations[AnnotationSubject]); err == nil && reachable[h] {
			live.Manifests = append(live.Manifests, r)
		} else {
			dangling[r.Digest] = true
		}
	}
	errs = append(errs, s.walkReachable(live, mark)...)
	if len(errs) > 0 {
		return res, fmt.Errorf("gc: refusing to collect a store that fsck would fail: %w", errs[0])
	}
	if len(dangling) > 0 {
		err := s.updateIndex(ctx, func(idx *v1.IndexManifest) (bool, error) {
			kept := idx.Manifests[:0]
			for _, e := range idx.Manifests {
				if !dangling[e.Digest] || e.Annotations[AnnotationSubject] == "" {
					kept = append(kept, e)
				}
			}
			idx.Manifests = kept
			return true, nil
		})
		if err != nil {
			return res, fmt.Errorf("gc: %w", err)
		}
		res.Referrers = len(dangling)
	}
	blobDir := filepath.Join(s.root, "blobs", "sha256")
	entries, err := os.ReadDir(blobDir)
	if err != nil {
		return res, fmt.Errorf("gc: %w", err)
	}
	for _, e := range entries {
		if err := ctx.Err(); err != nil {
			return res, err
		}
		h := v1.Hash{Algorithm: "sha256", Hex: e.Name()}
		if reachable[h] {
			continue
		}
		path := filepath.Join(blobDir, e.Name())
		fi, err := e.Info()
		if err != nil {
			return res, fmt.Errorf("gc: %w", err)
		}
		if err := os.Remove(path); err != nil {
			return res, fmt.Errorf("gc: remove %s: %w", path, err)
		}
		log.G(ctx).WithFields(log.Fields{"digest": h.String(), "bytes": fi.Size()}).Debug("removed unreachable blob")
		res.Blobs++
		res.Bytes += fi.Size()
	}
	tmps, err := os.ReadDir(s.private("tmp"))
	if err != nil {
		return res, fmt.Errorf("gc: %w", err)
	}
	for _, e := range tmps {
		path := s.private("tmp", e.Name())
		if fi, err := e.Info(); err == nil {
			res.Bytes += fi.Size()
		}
		if err := os.RemoveAll(path); err != nil {
			return res, fmt.Errorf("gc: remove %s: %w", path, err)
		}
		res.TempFiles++
	}
	n, err := s.sweepDerived(ctx, reachable)
	res.Derived = n
	if err != nil {
		return res, err
	}
	return res, syncDir(blobDir)
}

// sweepDerived removes derived data whose blob is unreachable (see DerivedDir).
func (s *Store) sweepDerived(ctx context.Context, reachable map[v1.Hash]bool) (int, error) {
	kinds, err := os.ReadDir(s.private("derived"))
	if errors.Is(err, os.ErrNotExist) {
		return 0, nil
	}
	if err != nil {
		return 0, fmt.Errorf("gc: %w", err)
	}
	removed := 0
	for _, k := range kinds {
		dir := s.private("derived", k.Name())
		entries, err := os.ReadDir(dir)
		if err != nil {
			return removed, fmt.Errorf("gc: %w", err)
		}
		for _, e := range entries {
			hex, _, _ := strings.Cut(e.Name(), ".")
			if hex != "" && hexRE.MatchString(hex) && reachable[v1.Hash{Algorithm: "sha256", Hex: hex}] {
				continue
			}
			path := filepath.Join(dir, e.Name())
			if err := os.RemoveAll(path); err != nil {
				return removed, fmt.Errorf("gc: remove %s: %w", path, err)
			}
			log.G(ctx).WithField("path", path).Debug("removed derived data of an unreachable blob")
			removed++
		}
	}
	return removed, nil
}
