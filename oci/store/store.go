// Package store is serpent-oci's image store: a local OCI image layout (readable by umoci,
// skopeo and any other OCI tool) with what go-containerregistry's layout package leaves out:
// locking, crash safety, tags per platform, garbage collection and a consistency check.
//
// On disk, a store directory is an OCI image layout (oci-layout, index.json, blobs/sha256/)
// plus a private .serpent/ directory for locks, temporary files and, later, snapshots and run
// logs. The invariants that make a crash at any point harmless:
//
//   - a blob appears under blobs/ only by rename, after its bytes were written, synced and
//     found to have the digest they are named by;
//   - index.json is replaced only by rename of a complete, synced file, under an exclusive lock
//     (.serpent/index.lock), so concurrent writers never lose each other's tags;
//   - blobs are written before the index entry that reaches them;
//   - writers hold .serpent/gc.lock shared while they add blobs and tags, and gc holds it
//     exclusively, so gc never removes a blob that a writer is about to tag.
//
// A crash can leave unreferenced blobs and temporary files; gc removes them, fsck ignores them.
package store

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"syscall"

	"github.com/containerd/log"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/types"
	"github.com/serpent-os/serpent-oci/oci/filekind"
)

// EnvStore names the environment variable that overrides the default store location.
const EnvStore = "SERPENT_OCI_STORE"

// ErrNotFound is returned (wrapped) when a tag or blob does not exist.
var ErrNotFound = errors.New("not found")

// ErrAmbiguous is returned (wrapped) when a tag without a platform names images of several
// platforms (tags of each, or an index): "tag x is ambiguous: ...".
var ErrAmbiguous = errors.New("ambiguous")

// Store is an OCI image layout on disk. Its methods are safe for concurrent use by several
// goroutines and several processes.
type Store struct {
	root string
}

// DefaultDir is where the store lives unless the user says otherwise: $SERPENT_OCI_STORE, else
// $XDG_DATA_HOME/serpent-oci/store, else ~/.local/share/serpent-oci/store. It lives outside any
// work tree so that builds survive a fresh checkout.
func DefaultDir() (string, error) {
	if d := os.Getenv(EnvStore); d != "" {
		return d, nil
	}
	if d := os.Getenv("XDG_DATA_HOME"); d != "" {
		return filepath.Join(d, "serpent-oci", "store"), nil
	}
	home, err := os.UserHomeDir()
	if err != nil {
		return "", fmt.Errorf("find default store: %w (set %s or use --store)", err, EnvStore)
	}
	return filepath.Join(home, ".local", "share", "serpent-oci", "store"), nil
}

const layoutVersion = `{"imageLayoutVersion":"1.0.0"}`

// Open opens the store at dir, creating an empty layout there if dir does not exist or is an
// empty directory. A directory that holds something other than an OCI layout is refused.
func Open(ctx context.Context, dir string) (*Store, error) {
	abs, err := filepath.Abs(dir)
	if err != nil {
		return nil, fmt.Errorf("open store %s: %w", dir, err)
	}
	s := &Store{root: abs}
	if err := s.init(ctx); err != nil {
		return nil, fmt.Errorf("open store %s: %w", abs, err)
	}
	// Resolved once, here: runc refuses a rootfs path that passes through a symlink, and
	// every path the store hands out starts with this one.
	if real, err := filepath.EvalSymlinks(abs); err == nil {
		s.root = real
	}
	return s, nil
}

// OpenOrEmpty is OpenExisting, except that a directory that does not exist is an empty store
// (and stays uncreated): for a command that asks what a build would do there. It reports
// whether the directory was missing.
func OpenOrEmpty(ctx context.Context, dir string) (st *Store, missing bool, err error) {
	abs, err := filepath.Abs(dir)
	if err != nil {
		return nil, false, fmt.Errorf("open store %s: %w", dir, err)
	}
	if _, err := os.Lstat(abs); errors.Is(err, os.ErrNotExist) {
		return &Store{root: abs}, true, nil
	}
	st, err = OpenExisting(ctx, dir)
	return st, false, err
}

// OpenExisting opens the store at dir for reading: dir must already be an OCI layout, and
// nothing is created or written (a mistyped path is an error naming it, and a layout on a
// read-only mount can be listed, inspected and exported). Writing methods of the result work
// as Open's if the layout is writable.
func OpenExisting(ctx context.Context, dir string) (*Store, error) {
	abs, err := filepath.Abs(dir)
	if err != nil {
		return nil, fmt.Errorf("open store %s: %w", dir, err)
	}
	if real, err := filepath.EvalSymlinks(abs); err == nil {
		abs = real
	} else if errors.Is(err, os.ErrNotExist) {
		return nil, fmt.Errorf("store %s does not exist (--store, or %s)", abs, EnvStore)
	}
	b, err := os.ReadFile(filepath.Join(abs, "oci-layout"))
	if errors.Is(err, os.ErrNotExist) {
		// An empty directory is an empty store (nothing to read); anything else is not one.
		if entries, derr := os.ReadDir(abs); derr == nil && len(entries) == 0 {
			return &Store{root: abs}, nil
		}
	}
	if err != nil {
		return nil, fmt.Errorf("store %s: no oci-layout file: not an image store", abs)
	}
	var v struct {
		ImageLayoutVersion string `json:"imageLayoutVersion"`
	}
	if json.Unmarshal(b, &v) != nil || v.ImageLayoutVersion == "" {
		return nil, fmt.Errorf("store %s: oci-layout is not an OCI layout marker", abs)
	}
	return &Store{root: abs}, nil
}

// Dir is the store's root directory, the OCI layout itself.
func (s *Store) Dir() string { return s.root }

func (s *Store) private(parts ...string) string {
	return filepath.Join(append([]string{s.root, ".serpent"}, parts...)...)
}

// ensurePrivate makes .serpent/PARTS... (each missing directory 0700) and returns it. What is
// extracted there (snapshots, run trees, the copy provider's trees) keeps the image's setuid
// bits and device nodes, so no other user may enter it or have made any of it, as containerd
// and podman keep theirs: .serpent and each directory below it on the way must be a directory
// (no symlink) this process's user owns, and one open to others (a store made before this
// check) is closed. The store's root must be its user's too: another user who can write it
// could swap .serpent for a directory of their own at any time.
func (s *Store) ensurePrivate(parts ...string) (string, error) {
	if _, err := checkOwner(s.root, "the store's directory", os.Stat); err != nil {
		return "", err
	}
	dir := s.private()
	if err := ownDir(dir); err != nil {
		return "", err
	}
	for _, p := range parts {
		dir = filepath.Join(dir, p)
		if err := ownDir(dir); err != nil {
			return "", err
		}
	}
	return dir, nil
}

// ownDir makes dir (0700) unless it exists, checks it is a directory this process's user
// owns, and closes it to others.
func ownDir(dir string) error {
	if err := os.Mkdir(dir, 0o700); err != nil && !errors.Is(err, fs.ErrExist) {
		return fmt.Errorf("make %s: %w", dir, err)
	}
	fi, err := checkOwner(dir, "a private directory of the store", os.Lstat)
	if err != nil {
		return err
	}
	if fi.Mode().Perm()&0o077 != 0 {
		if err := os.Chmod(dir, 0o700); err != nil {
			return fmt.Errorf("close %s to other users: %w", dir, err)
		}
	}
	return nil
}

// checkOwner refuses dir unless it is a directory owned by this process's effective user, as
// stat (os.Lstat: no symlink either; os.Stat for the store's own path, which may be one) sees
// it, and returns what stat said.
func checkOwner(dir, what string, stat func(string) (fs.FileInfo, error)) (fs.FileInfo, error) {
	fi, err := stat(dir)
	if err != nil {
		return nil, err
	}
	if !fi.IsDir() {
		return nil, fmt.Errorf("%s %s is a %s, not a directory", what, dir, filekind.Of(fi.Mode()))
	}
	st, ok := fi.Sys().(*syscall.Stat_t)
	if ok && int(st.Uid) != os.Geteuid() {
		return nil, fmt.Errorf("%s %s belongs to uid %d, not to uid %d that runs serpent-oci: "+
			"that user could change what is extracted there (setuid programs, device nodes); "+
			"chown it or use a store of your own", what, dir, st.Uid, os.Geteuid())
	}
	return fi, nil
}

func (s *Store) blobPath(h v1.Hash) string {
	return filepath.Join(s.root, "blobs", h.Algorithm, h.Hex)
}

func (s *Store) init(ctx context.Context) error {
	if err := os.MkdirAll(s.root, 0o755); err != nil {
		return err
	}
	// What the directory is, before anything is written into it: refusing a directory that
	// is not a store leaves it as it was.
	marker := filepath.Join(s.root, "oci-layout")
	b, err := os.ReadFile(marker)
	if errors.Is(err, os.ErrNotExist) {
		entries, err := os.ReadDir(s.root)
		if err != nil {
			return err
		}
		for _, e := range entries {
			if e.Name() != ".serpent" && e.Name() != "blobs" {
				return fmt.Errorf("directory is not empty and holds no oci-layout file (found %s)", e.Name())
			}
		}
	}
	if _, err := s.ensurePrivate("tmp"); err != nil {
		return err
	}
	if err := os.MkdirAll(filepath.Join(s.root, "blobs", "sha256"), 0o755); err != nil {
		return err
	}
	switch {
	case err == nil:
		var v struct {
			ImageLayoutVersion string `json:"imageLayoutVersion"`
		}
		if err := json.Unmarshal(b, &v); err != nil || v.ImageLayoutVersion == "" {
			return fmt.Errorf("%s is not an OCI layout marker", marker)
		}
	case errors.Is(err, os.ErrNotExist):
		log.G(ctx).WithField("path", s.root).Info("creating image store")
		if err := writeFileAtomic(s.private("tmp"), marker, []byte(layoutVersion)); err != nil {
			return err
		}
	default:
		return err
	}
	// index.json is created under the index lock so that two first uses do not race.
	return s.updateIndex(ctx, func(*v1.IndexManifest) (bool, error) { return false, nil })
}

func emptyIndex() *v1.IndexManifest {
	return &v1.IndexManifest{SchemaVersion: 2, MediaType: types.OCIImageIndex, Manifests: []v1.Descriptor{}}
}

// DerivedDir returns the directory (created if needed) where data derived from blobs is kept,
// such as a layer's extracted snapshot: one entry per blob, named by the blob's hex digest
// (optionally followed by "." and a suffix). gc removes the entries whose blob it removes, and
// entries starting with "." (work in progress of a crashed writer). Hold the store while an
// entry is in use.
func (s *Store) DerivedDir(kind string) (string, error) {
	if kind == "" || strings.ContainsAny(kind, "/.") {
		return "", fmt.Errorf("derived data kind %q: want a plain name", kind)
	}
	return s.ensurePrivate("derived", kind)
}

// PrivateDir returns a directory below .serpent/ (created if needed) for serpent-oci's own
// state next to the layout, such as run bundles and logs.
func (s *Store) PrivateDir(name string) (string, error) {
	if name == "" || strings.ContainsAny(name, "/.") || name == "tmp" || name == "derived" {
		return "", fmt.Errorf("private directory %q: want a plain name", name)
	}
	return s.ensurePrivate(name)
}

// TempDir makes a scratch directory on the store's filesystem (so that what is built in it can
// be renamed into the store). The caller removes it; gc removes what a crash left.
func (s *Store) TempDir(prefix string) (string, error) {
	tmp, err := s.ensurePrivate("tmp")
	if err != nil {
		return "", err
	}
	d, err := os.MkdirTemp(tmp, prefix+"-*")
	if err != nil {
		return "", fmt.Errorf("make temporary directory: %w", err)
	}
	return d, nil
}
