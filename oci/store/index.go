package store

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"

	v1 "github.com/google/go-containerregistry/pkg/v1"
)

func (s *Store) indexPath() string { return filepath.Join(s.root, "index.json") }

// readIndex returns index.json as it is now. It needs no lock: index.json is only ever replaced
// whole, by rename.
func (s *Store) readIndex() (*v1.IndexManifest, error) {
	f, err := s.openStoreFile("index.json")
	if errors.Is(err, os.ErrNotExist) {
		return emptyIndex(), nil
	}
	if err != nil {
		return nil, fmt.Errorf("read index.json: %w", err)
	}
	b, err := io.ReadAll(io.LimitReader(f, MaxIndexBytes+1))
	f.Close()
	switch {
	case err != nil:
		return nil, fmt.Errorf("read index.json: %w", err)
	case len(b) > MaxIndexBytes:
		return nil, fmt.Errorf("read %s: larger than %d bytes", s.indexPath(), MaxIndexBytes)
	}
	var idx v1.IndexManifest
	if err := json.Unmarshal(b, &idx); err != nil {
		return nil, fmt.Errorf("parse %s: %w", s.indexPath(), err)
	}
	if idx.Manifests == nil {
		idx.Manifests = []v1.Descriptor{}
	}
	for i, d := range idx.Manifests {
		if d.MediaType == "" {
			idx.Manifests[i].MediaType = s.mediaTypeOf(d)
		}
	}
	return &idx, nil
}

// updateIndex applies fn to index.json under the index lock and writes the result atomically
// if fn reports a change (or the file does not exist yet).
func (s *Store) updateIndex(ctx context.Context, fn func(*v1.IndexManifest) (bool, error)) error {
	release, err := s.lockIndex(ctx)
	if err != nil {
		return err
	}
	defer release()
	_, statErr := os.Stat(s.indexPath())
	idx, err := s.readIndex()
	if err != nil {
		return err
	}
	changed, err := fn(idx)
	if err != nil {
		return err
	}
	if !changed && statErr == nil {
		return nil
	}
	b, err := json.MarshalIndent(idx, "", "  ")
	if err != nil {
		return fmt.Errorf("encode index.json: %w", err)
	}
	if err := writeFileAtomic(s.private("tmp"), s.indexPath(), append(b, '\n')); err != nil {
		return fmt.Errorf("write index.json: %w", err)
	}
	return nil
}
