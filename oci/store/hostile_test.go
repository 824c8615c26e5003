package store

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/types"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
	"golang.org/x/sys/unix"

	"github.com/serpent-os/serpent-oci/oci/testenv"
)

// TestGCKeepsAnEntryWithoutMediaType: an index.json entry that names no media type (valid
// enough that run and fsck accept it) is read by its blob, so gc keeps what it reaches.
func TestGCKeepsAnEntryWithoutMediaType(t *testing.T) {
	ctx := context.Background()
	s := openStore(t)
	img := randomImage(t, "linux/amd64")
	if _, err := s.WriteImage(ctx, img, mustRef(t, "bare@linux/amd64")); err != nil {
		t.Fatal(err)
	}
	rewriteIndex(t, s, func(idx map[string]any) {
		for _, m := range idx["manifests"].([]any) {
			delete(m.(map[string]any), "mediaType")
		}
	})
	res, err := s.GC(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if res.Blobs != 0 {
		t.Errorf("gc removed %d blobs of a tagged image", res.Blobs)
	}
	got, _, err := s.Image(mustRef(t, "bare@linux/amd64"))
	if err != nil {
		t.Fatal(err)
	}
	layers, err := got.Layers()
	if err != nil || len(layers) != 2 {
		t.Fatalf("layers after gc: %d, %v", len(layers), err)
	}
	for _, l := range layers {
		rc, err := l.Compressed()
		if err != nil {
			t.Fatalf("a layer of the tagged image is gone: %v", err)
		}
		rc.Close()
	}
	if f, err := s.Fsck(ctx); err != nil || len(f.Problems) != 0 {
		t.Errorf("fsck: %v, %v", f.Problems, err)
	}

	// An entry whose blob is no manifest at all: gc refuses, fsck says why, nothing is lost.
	cfg, _ := img.ConfigName()
	rewriteIndex(t, s, func(idx map[string]any) {
		idx["manifests"] = append(idx["manifests"].([]any), map[string]any{
			"digest": cfg.String(), "size": blobSize(t, s, cfg),
			"annotations": map[string]any{ocispec.AnnotationRefName: "odd"},
		})
	})
	if _, err := s.GC(ctx); err == nil || !strings.Contains(err.Error(), "tag odd: descriptor of media type \"\" whose blob is neither an image manifest nor an index") {
		t.Errorf("gc on an entry that is no manifest: %v", err)
	}
	if f, _ := s.Fsck(ctx); len(f.Problems) != 1 || !strings.Contains(f.Problems[0].String(), "tag odd") {
		t.Errorf("fsck: %v", f.Problems)
	}
}

// TestGCRefusesSymlinkedStructure: with one of the store's directories replaced by a symlink,
// gc refuses and deletes nothing where the link points; fsck names the link.
func TestGCRefusesSymlinkedStructure(t *testing.T) {
	for _, dir := range []string{"blobs/sha256", ".serpent/tmp", ".serpent/derived/snapshots", ".serpent/derived", ".serpent"} {
		t.Run(dir, func(t *testing.T) {
			ctx := context.Background()
			s := openStore(t)
			if _, err := s.DerivedDir("snapshots"); err != nil {
				t.Fatal(err)
			}
			victim := t.TempDir()
			precious := filepath.Join(victim, strings.Repeat("ab", 32))
			if err := os.WriteFile(precious, []byte("host file"), 0o644); err != nil {
				t.Fatal(err)
			}
			p := filepath.Join(s.Dir(), filepath.FromSlash(dir))
			if err := os.RemoveAll(p); err != nil {
				t.Fatal(err)
			}
			if err := os.Symlink(victim, p); err != nil {
				t.Fatal(err)
			}
			_, err := s.GC(ctx)
			if err == nil || !strings.Contains(err.Error(), p+": is a symlink (to "+victim+")") {
				t.Errorf("gc: %v, want a refusal naming %s", err, p)
			}
			if _, err := os.Stat(precious); err != nil {
				t.Fatalf("gc deleted a file outside the store: %v", err)
			}
			f, err := s.Fsck(ctx)
			if err != nil {
				t.Fatal(err)
			}
			found := false
			for _, prob := range f.Problems {
				found = found || prob.Where == p
			}
			if !found {
				t.Errorf("fsck does not report %s: %v", p, f.Problems)
			}
		})
	}
}

// TestManyLayersAreRefused: an image of more layers than MaxLayers is refused by name before
// anything reads its layers (a 10,000-layer manifest used to take minutes to walk).
func TestManyLayersAreRefused(t *testing.T) {
	s := openStore(t)
	img := randomImage(t, "linux/amd64")
	m, err := img.Manifest()
	if err != nil {
		t.Fatal(err)
	}
	m = m.DeepCopy()
	for len(m.Layers) <= MaxLayers {
		m.Layers = append(m.Layers, m.Layers[0])
	}
	raw, err := json.Marshal(m)
	if err != nil {
		t.Fatal(err)
	}
	h, n, err := s.WriteBlob(context.Background(), bytes.NewReader(raw), nil)
	if err != nil {
		t.Fatal(err)
	}
	big, err := s.ImageByDigest(v1.Descriptor{MediaType: types.OCIManifestSchema1, Digest: h, Size: n})
	if err != nil {
		t.Fatal(err)
	}
	_, err = big.Layers()
	if want := fmt.Sprintf("manifest %s has %d layers: at most %d", h, MaxLayers+1, MaxLayers); err == nil || !strings.Contains(err.Error(), want) {
		t.Errorf("Layers of a %d-layer image: %v, want %q", len(m.Layers), err, want)
	}
}

func rewriteIndex(t *testing.T, s *Store, edit func(map[string]any)) {
	t.Helper()
	path := filepath.Join(s.Dir(), "index.json")
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var idx map[string]any
	if err := json.Unmarshal(b, &idx); err != nil {
		t.Fatal(err)
	}
	edit(idx)
	if b, err = json.Marshal(idx); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, b, 0o644); err != nil {
		t.Fatal(err)
	}
}

func blobSize(t *testing.T, s *Store, h v1.Hash) int64 {
	t.Helper()
	fi, err := os.Stat(s.BlobPath(h))
	if err != nil {
		t.Fatal(err)
	}
	return fi.Size()
}

// TestStaleTemporaryBlobsAreSwept: the partial blob a killed writer left (nobody holds its
// lock) is removed by SweepStaleBlobs; one being written is not, and still commits.
func TestStaleTemporaryBlobsAreSwept(t *testing.T) {
	s := openStore(t)
	stale := filepath.Join(s.Dir(), ".serpent", "tmp", "blob-killed")
	if err := os.WriteFile(stale, bytes.Repeat([]byte("x"), 1<<20), 0o600); err != nil {
		t.Fatal(err)
	}
	w, err := s.NewBlob()
	if err != nil {
		t.Fatal(err)
	}
	if _, err := w.Write([]byte("in progress")); err != nil {
		t.Fatal(err)
	}
	n, b := s.SweepStaleBlobs()
	if n != 1 || b != 1<<20 {
		t.Errorf("swept %d files, %d bytes; want the killed writer's one, 1 MiB", n, b)
	}
	if _, err := os.Stat(stale); !os.IsNotExist(err) {
		t.Errorf("the stale blob is still there: %v", err)
	}
	h, _, err := w.Commit(nil)
	if err != nil {
		t.Fatalf("the blob being written did not survive the sweep: %v", err)
	}
	if !s.HasBlob(h) {
		t.Fatal("committed blob missing")
	}
}

// TestRefusedDirectoryIsLeftAsItWas: opening a non-empty directory that is no store is an
// error, and nothing is written into it first.
func TestRefusedDirectoryIsLeftAsItWas(t *testing.T) {
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "notes.txt"), []byte("mine"), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := Open(context.Background(), dir); err == nil || !strings.Contains(err.Error(), "holds no oci-layout file (found notes.txt)") {
		t.Fatalf("Open of a directory that is no store: %v", err)
	}
	entries, _ := os.ReadDir(dir)
	if len(entries) != 1 {
		t.Errorf("the refused directory now holds %d entries: %v", len(entries), entries)
	}
}

// TestStoreThroughASymlinkedPath: a store named through a symlink hands out resolved paths
// (runc refuses a rootfs path with a symlink in it).
func TestStoreThroughASymlinkedPath(t *testing.T) {
	real := t.TempDir()
	link := filepath.Join(t.TempDir(), "link")
	if err := os.Symlink(real, link); err != nil {
		t.Fatal(err)
	}
	s, err := Open(context.Background(), filepath.Join(link, "store"))
	if err != nil {
		t.Fatal(err)
	}
	if want := filepath.Join(real, "store"); s.Dir() != want {
		t.Errorf("Dir() = %s, want %s", s.Dir(), want)
	}
}

// TestBlobsLeadingOutOfTheStoreAreRefused: a blob file replaced by a symlink to a host file,
// or by a FIFO, is never read through: every way of reading the blob fails, naming it, and
// nothing hangs.
func TestBlobsLeadingOutOfTheStoreAreRefused(t *testing.T) {
	host := filepath.Join(t.TempDir(), "host-secret")
	if err := os.WriteFile(host, []byte("root:secret\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name    string
		replace func(path string) error
		error   string
	}{
		{"symlink to a host file", func(p string) error { return os.Symlink(host, p) }, "path escapes from parent"},
		{"absolute symlink", func(p string) error { return os.Symlink("/etc/passwd", p) }, "path escapes from parent"},
		{"fifo", func(p string) error { return unix.Mkfifo(p, 0o600) }, "is a fifo, not a regular file"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ctx := context.Background()
			s := openStore(t)
			img := randomImage(t, "linux/amd64")
			if _, err := s.WriteImage(ctx, img, mustRef(t, "x@linux/amd64")); err != nil {
				t.Fatal(err)
			}
			cfg, _ := img.ConfigName()
			layers, _ := img.Layers()
			layer, _ := layers[0].Digest()
			for _, h := range []v1.Hash{cfg, layer} {
				if err := os.Remove(s.BlobPath(h)); err != nil {
					t.Fatal(err)
				}
				if err := tc.replace(s.BlobPath(h)); err != nil {
					t.Fatal(err)
				}
			}
			if rc, err := s.Blob(layer); err == nil || !strings.Contains(err.Error(), "blob "+layer.String()) || !strings.Contains(err.Error(), tc.error) {
				if rc != nil {
					rc.Close()
				}
				t.Errorf("Blob of a replaced layer: %v, want an error naming it and saying %q", err, tc.error)
			}
			got, _, err := s.Image(mustRef(t, "x@linux/amd64"))
			if err != nil {
				t.Fatal(err)
			}
			if _, err := got.RawConfigFile(); err == nil || !strings.Contains(err.Error(), tc.error) {
				t.Errorf("config read through a replaced blob: %v", err)
			}
			ls, err := got.Layers()
			if err != nil {
				t.Fatal(err)
			}
			if rc, err := ls[0].Compressed(); err == nil {
				rc.Close()
				t.Error("a replaced layer blob was opened")
			}
			if f, _ := s.Fsck(ctx); len(f.Problems) == 0 {
				t.Error("fsck found nothing wrong with replaced blobs")
			}
		})
	}
}

// TestIndexLeadingOutOfTheStoreIsRefused: index.json as a symlink to a file outside the store
// is not read (its entries could name anything); the error says where.
func TestIndexLeadingOutOfTheStoreIsRefused(t *testing.T) {
	s := openStore(t)
	outside := filepath.Join(t.TempDir(), "index.json")
	if err := os.WriteFile(outside, []byte(`{"schemaVersion":2,"manifests":[]}`), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Remove(filepath.Join(s.Dir(), "index.json")); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(outside, filepath.Join(s.Dir(), "index.json")); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Tags(); err == nil || !strings.Contains(err.Error(), "read index.json") || !strings.Contains(err.Error(), "path escapes from parent") {
		t.Errorf("Tags with index.json leading out of the store: %v", err)
	}
}

// TestPrivateDirectoriesAreClosedToOtherUsers is issue 33's second hole: a setuid-root
// program in a layer is extracted into the store's snapshots, so no other user may enter
// them or have made the directories they are made in. The cases: a store made before the
// check (.serpent open to others), a .serpent/derived another user planted, a private
// directory that is a symlink, and a store directory that belongs to another user.
func TestPrivateDirectoriesAreClosedToOtherUsers(t *testing.T) {
	const nobody = 65534
	for _, tc := range []struct {
		name    string
		prepare func(t *testing.T, dir string)
		want    string // "" when the store opens and ends closed
	}{
		{"a store made open to others", func(t *testing.T, dir string) {
			for _, d := range []string{".serpent", ".serpent/derived", ".serpent/derived/snapshots", ".serpent/tmp"} {
				mkdir(t, filepath.Join(dir, d), 0o755)
			}
		}, ""},
		{"another user's derived directory", func(t *testing.T, dir string) {
			mkdir(t, filepath.Join(dir, ".serpent", "derived"), 0o777)
			testenv.RequireRoot(t) // to give a directory to another user
			if err := os.Chown(filepath.Join(dir, ".serpent", "derived"), nobody, nobody); err != nil {
				t.Fatal(err)
			}
		}, "belongs to uid 65534"},
		{"a symlinked snapshots directory", func(t *testing.T, dir string) {
			mkdir(t, filepath.Join(dir, ".serpent", "derived"), 0o700)
			if err := os.Symlink(t.TempDir(), filepath.Join(dir, ".serpent", "derived", "snapshots")); err != nil {
				t.Fatal(err)
			}
		}, "is a symlink, not a directory"},
		{"another user's store directory", func(t *testing.T, dir string) {
			testenv.RequireRoot(t) // to give a directory to another user
			if err := os.Chown(dir, nobody, nobody); err != nil {
				t.Fatal(err)
			}
		}, "the store's directory"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := filepath.Join(t.TempDir(), "store")
			mkdir(t, dir, 0o755)
			tc.prepare(t, dir)
			var err error
			if s, oerr := Open(context.Background(), dir); oerr != nil {
				err = oerr
			} else {
				_, err = s.DerivedDir("snapshots")
			}
			if tc.want != "" {
				if err == nil || !strings.Contains(err.Error(), tc.want) {
					t.Fatalf("got %v, want an error containing %q", err, tc.want)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			for _, d := range []string{".serpent", ".serpent/derived", ".serpent/derived/snapshots", ".serpent/tmp"} {
				fi, err := os.Lstat(filepath.Join(dir, d))
				if err != nil {
					t.Fatal(err)
				}
				if fi.Mode().Perm()&0o077 != 0 {
					t.Errorf("%s is %v: open to other users", d, fi.Mode().Perm())
				}
			}
		})
	}
}

func mkdir(t *testing.T, dir string, mode os.FileMode) {
	t.Helper()
	if err := os.MkdirAll(dir, mode); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(dir, mode); err != nil {
		t.Fatal(err)
	}
}

// TestGCRefusesAMediaTypeItsBlobContradicts: a hand-edited index.json entry whose media type
// says index while its blob is an image manifest, or the reverse. Parsed as what it is not,
// the blob reaches nothing; gc must refuse (naming the entry) and delete none of what the tag
// reaches, and fsck must report it.
func TestGCRefusesAMediaTypeItsBlobContradicts(t *testing.T) {
	tests := []struct {
		name    string
		tag     func(t *testing.T, ctx context.Context, s *Store) []v1.Hash // tags something, returns the blobs it reaches
		lie     types.MediaType
		wantErr string
	}{
		{
			name: "index over a manifest",
			tag: func(t *testing.T, ctx context.Context, s *Store) []v1.Hash {
				img := randomImage(t, "linux/amd64")
				if _, err := s.WriteImage(ctx, img, mustRef(t, "liar")); err != nil {
					t.Fatal(err)
				}
				return imageBlobs(t, img)
			},
			lie:     types.OCIImageIndex,
			wantErr: "is an image manifest",
		},
		{
			name: "manifest over an index",
			tag: func(t *testing.T, ctx context.Context, s *Store) []v1.Hash {
				img := randomImage(t, "linux/arm64")
				arm64 := v1.Platform{OS: "linux", Architecture: "arm64"}
				idx := mutate.AppendManifests(mutate.IndexMediaType(empty.Index, types.OCIImageIndex),
					mutate.IndexAddendum{Add: img, Descriptor: v1.Descriptor{Platform: &arm64}})
				if _, err := s.WriteIndex(ctx, idx, "liar"); err != nil {
					t.Fatal(err)
				}
				return imageBlobs(t, img)
			},
			lie:     types.OCIManifestSchema1,
			wantErr: "is an index",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ctx := context.Background()
			s := openStore(t)
			reached := tt.tag(t, ctx, s)
			rewriteIndex(t, s, func(idx map[string]any) {
				for _, m := range idx["manifests"].([]any) {
					m.(map[string]any)["mediaType"] = string(tt.lie)
				}
			})
			_, err := s.GC(ctx)
			if err == nil || !strings.Contains(err.Error(), "tag liar") ||
				!strings.Contains(err.Error(), "descriptor of media type \""+string(tt.lie)+"\"") ||
				!strings.Contains(err.Error(), tt.wantErr) {
				t.Errorf("gc on a contradicted media type: %v, want an error naming the tag and %q", err, tt.wantErr)
			}
			for _, h := range reached {
				if !s.HasBlob(h) {
					t.Errorf("gc removed %s, which the tag reaches", h)
				}
			}
			if f, _ := s.Fsck(ctx); len(f.Problems) == 0 || !strings.Contains(f.Problems[0].String(), tt.wantErr) {
				t.Errorf("fsck: %v, want a problem saying the blob %s", f.Problems, tt.wantErr)
			}
		})
	}
}

// imageBlobs lists img's manifest, config and layer digests.
func imageBlobs(t *testing.T, img v1.Image) []v1.Hash {
	t.Helper()
	m, err := img.Manifest()
	if err != nil {
		t.Fatal(err)
	}
	d, err := img.Digest()
	if err != nil {
		t.Fatal(err)
	}
	out := []v1.Hash{d, m.Config.Digest}
	for _, l := range m.Layers {
		out = append(out, l.Digest)
	}
	return out
}
