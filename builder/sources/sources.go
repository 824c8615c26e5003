// Package sources keeps the files stages build from in a content-addressed cache shared by
// every build: a file is stored under its sha256 once it has been found to hash to it, and
// never changes after. A missing file is taken from a mirror directory (--source-mirror:
// matched by file name or by its sha256 as name, then verified) or fetched from its origin: a
// URL, with retries and progress, or a Debian source package through `apt-get source
// --download-only`, for sources that exist only as Debian's repack.
package sources

import (
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"

	"github.com/containerd/log"
	"github.com/serpent-os/serpent-oci/stages"
)

// EnvCache names the environment variable that overrides the cache location.
const EnvCache = "SERPENT_OCI_SOURCES"

// DefaultDir is $SERPENT_OCI_SOURCES, else $XDG_CACHE_HOME/serpent-oci/sources, else
// ~/.cache/serpent-oci/sources: outside any work tree, so that a fresh checkout keeps it.
func DefaultDir() (string, error) {
	if d := os.Getenv(EnvCache); d != "" {
		return d, nil
	}
	if d := os.Getenv("XDG_CACHE_HOME"); d != "" {
		return filepath.Join(d, "serpent-oci", "sources"), nil
	}
	home, err := os.UserHomeDir()
	if err != nil {
		return "", fmt.Errorf("find the source cache: %w (set %s)", err, EnvCache)
	}
	return filepath.Join(home, ".cache", "serpent-oci", "sources"), nil
}

// Fetcher gets a source from its origin into a file.
type Fetcher interface {
	// Fetch writes the source's bytes to dst (a path that does not exist yet). It may be
	// called again after a failure. It does not check the digest; the cache does.
	Fetch(ctx context.Context, s stages.Source, dst string) error
}

// Cache is the content-addressed source cache.
type Cache struct {
	Dir     string
	Mirrors []string // directories searched before any origin, in order
	URL     Fetcher  // for sources with a url (default: HTTP with retries)
	Debian  Fetcher  // for sources with a debian origin (default: apt-get source)
	// Progress receives progress lines of long fetches (nil: none).
	Progress io.Writer
}

// MismatchError is a source whose bytes do not hash to the recipe's sha256.
type MismatchError struct {
	Source           string
	Where            string
	Expected, Actual string
}

func (e *MismatchError) Error() string {
	return fmt.Sprintf("source %s: %s has sha256 %s, but the recipe says %s", e.Source, e.Where, e.Actual, e.Expected)
}

// Path is where source s is (or would be) in the cache.
func (c *Cache) Path(s stages.Source) string {
	return filepath.Join(c.Dir, "sha256", s.SHA256)
}

// Has reports whether s is in the cache.
func (c *Cache) Has(s stages.Source) bool {
	_, err := os.Stat(c.Path(s))
	return err == nil
}

// Ensure makes s present in the cache and returns its path: from the cache, a mirror, or its
// origin, in that order. Whatever is taken is verified against s.SHA256 first; a mismatch is a
// *MismatchError naming both digests.
func (c *Cache) Ensure(ctx context.Context, s stages.Source) (string, error) {
	dst := c.Path(s)
	if _, err := os.Stat(dst); err == nil {
		return dst, nil
	}
	if err := os.MkdirAll(filepath.Dir(dst), 0o755); err != nil {
		return "", fmt.Errorf("source cache: %w", err)
	}
	for _, m := range c.Mirrors {
		for _, name := range []string{s.File, s.SHA256} {
			p := filepath.Join(m, name)
			if fi, err := os.Stat(p); err != nil || !fi.Mode().IsRegular() {
				continue
			}
			if err := c.add(p, s, "mirror file "+p); err != nil {
				return "", err
			}
			log.G(ctx).WithFields(log.Fields{"source": s.Name, "path": p}).Debug("source taken from mirror")
			return dst, nil
		}
	}
	type origin struct {
		f     Fetcher
		where string
	}
	var origins []origin
	if s.URL != "" {
		f := c.URL
		if f == nil {
			f = &HTTP{Progress: c.Progress}
		}
		origins = append(origins, origin{f, s.URL})
	}
	if s.Debian != nil {
		f := c.Debian
		if f == nil {
			f = &AptSource{}
		}
		origins = append(origins, origin{f, fmt.Sprintf("debian:%s=%s/%s", s.Debian.Package, s.Debian.Version, s.Debian.File)})
	}
	if len(origins) == 0 {
		return "", fmt.Errorf("source %s (%s, sha256 %s): not in the cache nor in any --source-mirror, and the recipe names no origin to fetch it from", s.Name, s.File, s.SHA256)
	}
	var errs []error
	for _, o := range origins {
		err := c.fetch(ctx, s, o.f, o.where)
		if err == nil {
			return dst, nil
		}
		var m *MismatchError
		if errors.As(err, &m) {
			return "", err // the origin serves other bytes: do not paper over it
		}
		errs = append(errs, err)
		if len(origins) > 1 {
			log.G(ctx).WithFields(log.Fields{"source": s.Name, "origin": o.where}).WithError(err).Warn("origin failed")
		}
	}
	return "", errors.Join(errs...)
}

func (c *Cache) fetch(ctx context.Context, s stages.Source, f Fetcher, where string) error {
	tmp, err := os.MkdirTemp(c.Dir, ".fetch-")
	if err != nil {
		return fmt.Errorf("source cache: %w", err)
	}
	defer os.RemoveAll(tmp)
	fetched := filepath.Join(tmp, s.File)
	log.G(ctx).WithFields(log.Fields{"source": s.Name, "origin": where}).Info("fetching source")
	if err := f.Fetch(ctx, s, fetched); err != nil {
		return fmt.Errorf("source %s: fetch %s: %w", s.Name, where, err)
	}
	return c.add(fetched, s, where)
}

// add verifies the file at src and copies it into the cache under its digest.
func (c *Cache) add(src string, s stages.Source, where string) error {
	in, err := os.Open(src)
	if err != nil {
		return fmt.Errorf("source %s: %w", s.Name, err)
	}
	defer in.Close()
	tmp, err := os.CreateTemp(c.Dir, ".add-")
	if err != nil {
		return fmt.Errorf("source cache: %w", err)
	}
	defer os.Remove(tmp.Name())
	h := sha256.New()
	if _, err := io.Copy(io.MultiWriter(tmp, h), in); err != nil {
		tmp.Close()
		return fmt.Errorf("source %s: copy %s: %w", s.Name, where, err)
	}
	if err := tmp.Close(); err != nil {
		return err
	}
	if got := fmt.Sprintf("%x", h.Sum(nil)); got != s.SHA256 {
		return &MismatchError{Source: s.Name, Where: where, Expected: s.SHA256, Actual: got}
	}
	if err := os.Chmod(tmp.Name(), 0o444); err != nil {
		return err
	}
	if err := os.Rename(tmp.Name(), c.Path(s)); err != nil && !errors.Is(err, os.ErrExist) {
		return fmt.Errorf("source cache: %w", err)
	}
	return nil
}
