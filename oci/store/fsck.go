package store

import (
	"context"
	"crypto/sha256"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"regexp"
	"runtime"
	"sort"
	"sync"

	"github.com/serpent-os/serpent-oci/oci/internal/ctxio"

	v1 "github.com/google/go-containerregistry/pkg/v1"
)

// Problem is one thing fsck found wrong, said so that a person can act on it.
type Problem struct {
	Where string // the file, or the chain from a tag to the descriptor at fault
	What  string
}

func (p Problem) String() string { return p.Where + ": " + p.What }

// FsckResult is what fsck checked and found.
type FsckResult struct {
	Blobs       int   // blob files hashed
	Bytes       int64 // bytes hashed
	Descriptors int   // descriptors reachable from index.json that were checked
	Problems    []Problem
}

var hexRE = regexp.MustCompile(`^[0-9a-f]{64}$`)

// Fsck checks the whole store: oci-layout and index.json parse; every blob's content hashes to
// its name; every descriptor reachable from index.json names a blob that exists, with the
// descriptor's size, and manifests and indexes parse. Leftovers of interrupted writes
// (temporary files, unreachable blobs) are not problems.
func (s *Store) Fsck(ctx context.Context) (FsckResult, error) {
	var res FsckResult
	release, err := s.Hold(ctx) // gc must not remove blobs under us
	if err != nil {
		return res, err
	}
	defer release()
	add := func(where, format string, args ...any) {
		res.Problems = append(res.Problems, Problem{Where: where, What: fmt.Sprintf(format, args...)})
	}

	marker := filepath.Join(s.root, "oci-layout")
	if b, err := os.ReadFile(marker); err != nil {
		add(marker, "%v", err)
	} else {
		var v struct {
			ImageLayoutVersion string `json:"imageLayoutVersion"`
		}
		if json.Unmarshal(b, &v) != nil || v.ImageLayoutVersion == "" {
			add(marker, "not a JSON object with imageLayoutVersion")
		}
	}
	res.Problems = append(res.Problems, s.structureProblems()...)
	idx, err := s.readIndex()
	if err != nil {
		add(s.indexPath(), "%v", err)
		return res, nil
	}

	// Hash every blob, on every core.
	blobDir := filepath.Join(s.root, "blobs", "sha256")
	entries, err := os.ReadDir(blobDir)
	if err != nil {
		return res, fmt.Errorf("fsck: %w", err)
	}
	var (
		mu   sync.Mutex
		wg   sync.WaitGroup
		work = make(chan string)
	)
	for range runtime.GOMAXPROCS(0) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for name := range work {
				path := filepath.Join(blobDir, name)
				sum, n, err := hashFile(ctx, path)
				mu.Lock()
				res.Blobs++
				res.Bytes += n
				switch {
				case err != nil:
					add(path, "cannot read: %v", err)
				case sum != name:
					add(path, "content hashes to sha256:%s, not to its name", sum)
				}
				mu.Unlock()
			}
		}()
	}
	for _, e := range entries {
		if !hexRE.MatchString(e.Name()) || !e.Type().IsRegular() {
			add(filepath.Join(blobDir, e.Name()), "not a blob (name is not a sha256 digest, or not a regular file)")
			continue
		}
		if ctx.Err() != nil {
			break
		}
		work <- e.Name()
	}
	close(work)
	wg.Wait()
	if err := ctx.Err(); err != nil {
		return res, err
	}

	errs := s.walkReachable(idx, func(path string, d v1.Descriptor) bool {
		res.Descriptors++
		if d.Digest.Algorithm != "sha256" || !hexRE.MatchString(d.Digest.Hex) {
			add(path, "descriptor has an unsupported digest %q", d.Digest)
			return false
		}
		fi, err := os.Stat(s.blobPath(d.Digest))
		switch {
		case errors.Is(err, os.ErrNotExist):
			add(path, "blob %s is missing", d.Digest)
			return false
		case err != nil:
			add(path, "%v", err)
			return false
		case fi.Size() != d.Size:
			add(path, "blob %s is %d bytes, its descriptor says %d", d.Digest, fi.Size(), d.Size)
			return false
		}
		return true
	})
	for _, e := range errs {
		add("index.json", "%v", e)
	}
	sort.Slice(res.Problems, func(i, j int) bool { return res.Problems[i].String() < res.Problems[j].String() })
	return res, nil
}

func hashFile(ctx context.Context, path string) (string, int64, error) {
	f, err := os.Open(path)
	if err != nil {
		return "", 0, err
	}
	defer f.Close()
	h := sha256.New()
	n, err := io.Copy(h, ctxio.Reader(ctx, f))
	if err != nil {
		return "", n, err
	}
	return fmt.Sprintf("%x", h.Sum(nil)), n, nil
}
