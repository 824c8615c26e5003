package store

import (
	"fmt"
	"os"
	"path/filepath"

	"github.com/serpent-os/serpent-oci/oci/filekind"
)

// structureProblems lists what makes the store's own directories unsafe to sweep: each of
// blobs/, blobs/sha256/, .serpent/ and the directories below .serpent/ (tmp, derived and its
// kinds, and whatever else serpent-oci keeps there) must be a plain directory, not a symlink
// or anything else, or gc would delete files wherever it points. Entries of blobs/sha256 that
// are not regular files are listed too. Paths that do not exist yet are fine.
func (s *Store) structureProblems() []Problem {
	var out []Problem
	check := func(path string) bool {
		fi, err := os.Lstat(path)
		switch {
		case os.IsNotExist(err):
			return false
		case err != nil:
			out = append(out, Problem{Where: path, What: err.Error()})
			return false
		case fi.Mode()&os.ModeSymlink != 0:
			target, _ := os.Readlink(path)
			out = append(out, Problem{Where: path, What: fmt.Sprintf("is a symlink (to %s), not a directory of the store", target)})
			return false
		case !fi.IsDir():
			out = append(out, Problem{Where: path, What: fmt.Sprintf("is a %s, not a directory", filekind.Of(fi.Mode()))})
			return false
		}
		return true
	}
	blobs := filepath.Join(s.root, "blobs")
	if check(blobs) && check(filepath.Join(blobs, "sha256")) {
		entries, _ := os.ReadDir(filepath.Join(blobs, "sha256"))
		for _, e := range entries {
			if !e.Type().IsRegular() {
				out = append(out, Problem{Where: filepath.Join(blobs, "sha256", e.Name()), What: fmt.Sprintf("is a %s, not a blob file", filekind.Of(e.Type()))})
			}
		}
	}
	private := s.private()
	if !check(private) {
		return out
	}
	entries, _ := os.ReadDir(private)
	for _, e := range entries {
		p := filepath.Join(private, e.Name())
		if e.Type().IsRegular() {
			continue // lock files
		}
		if check(p) && e.Name() == "derived" {
			kinds, _ := os.ReadDir(p)
			for _, k := range kinds {
				check(filepath.Join(p, k.Name()))
			}
		}
	}
	return out
}
