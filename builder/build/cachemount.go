package build

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/serpent-os/serpent-oci/builder"
	"github.com/serpent-os/serpent-oci/oci/platform"
	"github.com/serpent-os/serpent-oci/oci/store"
)

// CacheMountsDir is the store's private directory that holds the recipes' cache directories
// (a recipe's cache: field), one tree per stage and platform pair:
// .serpent/cache/STAGE/TARGET-on-HOST/PATH, the path with / as "_".
const CacheMountsDir = "cache"

// cacheMounts makes (if needed) and returns the read-write mounts of s's cache directories.
// They are kept per stage, target platform and host platform, so that a cross build for arm64
// never shares a compiler cache with the native one; what is in them never enters the image
// (the runner captures nothing under a mount point) or the cache key.
func cacheMounts(st *store.Store, s *Step) ([]builder.Mount, error) {
	if len(s.Recipe.Cache) == 0 {
		return nil, nil
	}
	root, err := st.PrivateDir(CacheMountsDir)
	if err != nil {
		return nil, err
	}
	dir := filepath.Join(root, s.Name(), platform.Slug(s.Target.Platform)+"-on-"+platform.Slug(s.RunsOn))
	var mounts []builder.Mount
	for _, p := range s.Recipe.Cache {
		src := filepath.Join(dir, strings.ReplaceAll(strings.TrimPrefix(p, "/"), "/", "_"))
		if err := os.MkdirAll(src, 0o755); err != nil {
			return nil, fmt.Errorf("stage %s: cache directory %s: %w", s.Name(), p, err)
		}
		mounts = append(mounts, builder.Mount{Source: src, Destination: p})
	}
	return mounts, nil
}

// CacheMount is one stage's cache directories for one platform pair, as the store keeps them.
type CacheMount struct {
	Stage     string
	Platforms string // TARGET-on-HOST, as slugs: linux-arm64-on-linux-amd64
	Dir       string
	Bytes     int64
}

// CacheMounts lists the cache directories in st, sorted by stage then platforms.
func CacheMounts(st *store.Store) ([]CacheMount, error) {
	root, err := cacheMountsRoot(st)
	if err != nil || root == "" {
		return nil, err
	}
	stageDirs, err := os.ReadDir(root)
	if err != nil {
		return nil, fmt.Errorf("list cache directories: %w", err)
	}
	var out []CacheMount
	for _, sd := range stageDirs {
		if !sd.IsDir() {
			continue
		}
		platDirs, err := os.ReadDir(filepath.Join(root, sd.Name()))
		if err != nil {
			return nil, fmt.Errorf("list cache directories: %w", err)
		}
		for _, pd := range platDirs {
			if !pd.IsDir() {
				continue
			}
			dir := filepath.Join(root, sd.Name(), pd.Name())
			n, err := treeBytes(dir)
			if err != nil {
				return nil, fmt.Errorf("cache directory %s: %w", dir, err)
			}
			out = append(out, CacheMount{Stage: sd.Name(), Platforms: pd.Name(), Dir: dir, Bytes: n})
		}
	}
	return out, nil
}

// PruneCacheMounts removes the cache directories of stage (every stage when stage is empty)
// and returns what it removed. The next build of such a stage starts with an empty cache,
// which changes how long it takes, never what it builds.
func PruneCacheMounts(st *store.Store, stage string) ([]CacheMount, error) {
	all, err := CacheMounts(st)
	if err != nil {
		return nil, err
	}
	var removed []CacheMount
	for _, c := range all {
		if stage != "" && c.Stage != stage {
			continue
		}
		if err := os.RemoveAll(c.Dir); err != nil {
			return removed, fmt.Errorf("remove cache directory %s: %w", c.Dir, err)
		}
		removed = append(removed, c)
	}
	return removed, nil
}

// cacheMountsRoot is the directory holding the cache directories, or "" when there is none
// yet. It must be a plain directory: a symlink there would make prune delete elsewhere.
func cacheMountsRoot(st *store.Store) (string, error) {
	root := filepath.Join(st.Dir(), ".serpent", CacheMountsDir)
	fi, err := os.Lstat(root)
	switch {
	case os.IsNotExist(err):
		return "", nil
	case err != nil:
		return "", err
	case !fi.IsDir():
		return "", fmt.Errorf("%s is not a plain directory (%s): refusing to use it", root, fi.Mode().Type())
	}
	return root, nil
}

// treeBytes is the apparent size of the regular files below dir, symlinks not followed.
func treeBytes(dir string) (int64, error) {
	var n int64
	err := filepath.WalkDir(dir, func(_ string, d os.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.Type().IsRegular() {
			fi, err := d.Info()
			if err != nil {
				return err
			}
			n += fi.Size()
		}
		return nil
	})
	return n, err
}
