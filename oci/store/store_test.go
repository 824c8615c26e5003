package store

import (
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/random"
	"github.com/google/go-containerregistry/pkg/v1/types"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
	"github.com/serpent-os/serpent-oci/oci/platform"
)

func openStore(t *testing.T) *Store {
	t.Helper()
	s, err := Open(context.Background(), filepath.Join(t.TempDir(), "store"))
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// randomImage is an OCI image of two random layers for platform p.
func randomImage(t testing.TB, p string) v1.Image {
	t.Helper()
	img := mutate.ConfigMediaType(mutate.MediaType(empty.Image, types.OCIManifestSchema1), types.OCIConfigJSON)
	for range 2 {
		l, err := random.Layer(512, types.OCILayer)
		if err != nil {
			t.Fatal(err)
		}
		img, err = mutate.AppendLayers(img, l)
		if err != nil {
			t.Fatal(err)
		}
	}
	cfg, err := img.ConfigFile()
	if err != nil {
		t.Fatal(err)
	}
	plat := platform.MustParse(p)
	cfg = cfg.DeepCopy()
	cfg.OS, cfg.Architecture, cfg.Variant = plat.OS, plat.Architecture, plat.Variant
	img, err = mutate.ConfigFile(img, cfg)
	if err != nil {
		t.Fatal(err)
	}
	return img
}

func mustRef(t *testing.T, s string) Ref {
	t.Helper()
	r, err := ParseRef(s)
	if err != nil {
		t.Fatal(err)
	}
	return r
}

func TestOpenCreatesLayout(t *testing.T) {
	s := openStore(t)
	for _, f := range []string{"oci-layout", "index.json", "blobs/sha256"} {
		if _, err := os.Stat(filepath.Join(s.Dir(), f)); err != nil {
			t.Errorf("new store lacks %s: %v", f, err)
		}
	}
	// Opening again keeps what is there.
	ctx := context.Background()
	if _, err := s.WriteImage(ctx, randomImage(t, "linux/amd64"), mustRef(t, "a")); err != nil {
		t.Fatal(err)
	}
	s2, err := Open(ctx, s.Dir())
	if err != nil {
		t.Fatal(err)
	}
	if tags, _ := s2.Tags(); len(tags) != 1 {
		t.Fatalf("reopened store has %d tags, want 1", len(tags))
	}
}

func TestOpenRefusesForeignDirectory(t *testing.T) {
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "notes.txt"), nil, 0o644); err != nil {
		t.Fatal(err)
	}
	_, err := Open(context.Background(), dir)
	if err == nil || !strings.Contains(err.Error(), "notes.txt") {
		t.Fatalf("Open of a non-empty non-layout directory: %v, want an error naming notes.txt", err)
	}
}

func TestTagsPerPlatform(t *testing.T) {
	ctx := context.Background()
	s := openStore(t)
	amd := randomImage(t, "linux/amd64")
	arm := randomImage(t, "linux/arm64")
	if _, err := s.WriteImage(ctx, amd, mustRef(t, "stage3")); err != nil {
		t.Fatal(err)
	}
	armDesc, err := s.WriteImage(ctx, arm, mustRef(t, "stage3"))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.WriteImage(ctx, amd, mustRef(t, "solo")); err != nil {
		t.Fatal(err)
	}

	tests := []struct {
		ref     string
		want    v1.Image
		wantErr string
	}{
		{ref: "stage3@linux/arm64", want: arm},
		{ref: "stage3@aarch64", want: arm},
		{ref: "stage3@linux/arm64/v8", want: arm},
		{ref: "stage3@x86_64", want: amd},
		{ref: "solo", want: amd},
		{ref: "stage3", wantErr: "ambiguous: it exists as stage3@linux-amd64, stage3@linux-arm64"},
		{ref: "stage3@linux/riscv64", wantErr: "the store has stage3@linux-amd64, stage3@linux-arm64"},
		{ref: "nothing", wantErr: "not found"},
	}
	for _, tt := range tests {
		t.Run(tt.ref, func(t *testing.T) {
			img, _, err := s.Image(mustRef(t, tt.ref))
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("Image(%s) error = %v, want %q", tt.ref, err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			got, _ := img.Digest()
			want, _ := tt.want.Digest()
			if got != want {
				t.Fatalf("Image(%s) = %s, want %s", tt.ref, got, want)
			}
		})
	}

	// Each platform is its own index.json entry with a unique ref.name and its platform.
	idx, err := s.readIndex()
	if err != nil {
		t.Fatal(err)
	}
	names := map[string]bool{}
	for _, d := range idx.Manifests {
		names[d.Annotations[ocispec.AnnotationRefName]] = true
		if d.Platform == nil {
			t.Errorf("entry %s has no platform", d.Digest)
		}
	}
	for _, n := range []string{"stage3@linux-amd64", "stage3@linux-arm64", "solo@linux-amd64"} {
		if !names[n] {
			t.Errorf("index.json lacks ref.name %s (has %v)", n, names)
		}
	}

	// Tagging again replaces, never duplicates.
	if err := s.SetTag(ctx, mustRef(t, "stage3@linux/arm64"), armDesc); err != nil {
		t.Fatal(err)
	}
	if tags, _ := s.Tags(); len(tags) != 3 {
		t.Fatalf("after retagging: %d tags, want 3", len(tags))
	}

	removed, err := s.Untag(ctx, mustRef(t, "stage3@arm64"))
	if err != nil || len(removed) != 1 {
		t.Fatalf("Untag(stage3@arm64) = %v, %v", removed, err)
	}
	if _, _, err := s.Image(mustRef(t, "stage3")); err != nil {
		t.Fatalf("stage3 with one platform left should resolve: %v", err)
	}
	if _, err := s.Untag(ctx, mustRef(t, "stage3@arm64")); !errors.Is(err, ErrNotFound) {
		t.Fatalf("second Untag: %v, want ErrNotFound", err)
	}
}

func TestWriteImageChecksPlatform(t *testing.T) {
	s := openStore(t)
	_, err := s.WriteImage(context.Background(), randomImage(t, "linux/amd64"), mustRef(t, "x@linux/arm64"))
	if err == nil || !strings.Contains(err.Error(), "linux/amd64") {
		t.Fatalf("WriteImage of an amd64 image as arm64: %v", err)
	}
	if tags, _ := s.Tags(); len(tags) != 0 {
		t.Fatalf("a refused write left tags: %v", tags)
	}
}

func TestIndexRoundTrip(t *testing.T) {
	ctx := context.Background()
	s := openStore(t)
	amd, arm := randomImage(t, "linux/amd64"), randomImage(t, "linux/arm64")
	idx := mutate.IndexMediaType(empty.Index, types.OCIImageIndex)
	idx = mutate.AppendManifests(idx,
		mutate.IndexAddendum{Add: amd, Descriptor: v1.Descriptor{Platform: &v1.Platform{OS: "linux", Architecture: "amd64"}}},
		mutate.IndexAddendum{Add: arm, Descriptor: v1.Descriptor{Platform: &v1.Platform{OS: "linux", Architecture: "arm64"}}})
	if _, err := s.WriteIndex(ctx, idx, "multi"); err != nil {
		t.Fatal(err)
	}
	img, _, err := s.Image(mustRef(t, "multi@linux/arm64"))
	if err != nil {
		t.Fatal(err)
	}
	got, _ := img.Digest()
	want, _ := arm.Digest()
	if got != want {
		t.Fatalf("multi@linux/arm64 = %s, want %s", got, want)
	}
	if _, _, err := s.Image(mustRef(t, "multi")); err == nil || !strings.Contains(err.Error(), "multi-platform index") {
		t.Fatalf("Image(multi) = %v, want an error asking for a platform", err)
	}
	if res, err := s.Fsck(ctx); err != nil || len(res.Problems) > 0 {
		t.Fatalf("fsck after writing an index: %v %v", res.Problems, err)
	}
}

func TestConcurrentWritersKeepEveryTag(t *testing.T) {
	ctx := context.Background()
	s := openStore(t)
	const writers, each = 4, 10
	var wg sync.WaitGroup
	errs := make(chan error, writers*each)
	imgs := make([][]v1.Image, writers) // made here: t.Fatal must not run in the goroutines
	for w := range writers {
		for range each {
			imgs[w] = append(imgs[w], randomImage(t, "linux/amd64"))
		}
	}
	for w := range writers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			// Each goroutine opens the store on its own, like a separate process.
			mine, err := Open(ctx, s.Dir())
			if err != nil {
				errs <- err
				return
			}
			for i, img := range imgs[w] {
				if _, err := mine.WriteImage(ctx, img, Ref{Name: fmt.Sprintf("w%d-%d", w, i)}.WithPlatform(&v1.Platform{OS: "linux", Architecture: "amd64"})); err != nil {
					errs <- err
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	tags, err := s.Tags()
	if err != nil {
		t.Fatal(err)
	}
	if len(tags) != writers*each {
		t.Fatalf("%d tags after %d concurrent writes", len(tags), writers*each)
	}
}

func TestFsckFindsDamage(t *testing.T) {
	ctx := context.Background()
	tests := []struct {
		name   string
		damage func(t *testing.T, s *Store, m *v1.Manifest)
		want   string
	}{
		{"flipped byte in a layer", func(t *testing.T, s *Store, m *v1.Manifest) {
			p := s.BlobPath(m.Layers[0].Digest)
			b, _ := os.ReadFile(p)
			b[10] ^= 0xff
			os.WriteFile(p, b, 0o644)
		}, "content hashes to"},
		{"missing config", func(t *testing.T, s *Store, m *v1.Manifest) {
			os.Remove(s.BlobPath(m.Config.Digest))
		}, "→ config sha256:"},
		{"truncated layer", func(t *testing.T, s *Store, m *v1.Manifest) {
			p := s.BlobPath(m.Layers[1].Digest)
			b, _ := os.ReadFile(p)
			os.WriteFile(p, b[:len(b)-1], 0o644)
		}, "its descriptor says"},
		{"stray file among blobs", func(t *testing.T, s *Store, m *v1.Manifest) {
			os.WriteFile(filepath.Join(s.Dir(), "blobs/sha256/junk"), nil, 0o644)
		}, "not a blob"},
		{"broken index.json", func(t *testing.T, s *Store, m *v1.Manifest) {
			os.WriteFile(filepath.Join(s.Dir(), "index.json"), []byte("{"), 0o644)
		}, "index.json"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := openStore(t)
			img := randomImage(t, "linux/arm64")
			if _, err := s.WriteImage(ctx, img, mustRef(t, "victim")); err != nil {
				t.Fatal(err)
			}
			res, err := s.Fsck(ctx)
			if err != nil || len(res.Problems) != 0 {
				t.Fatalf("fsck of a healthy store: %v %v", res.Problems, err)
			}
			if res.Blobs != 4 || res.Descriptors != 4 {
				t.Errorf("fsck checked %d blobs and %d descriptors, want 4 and 4", res.Blobs, res.Descriptors)
			}
			m, _ := img.Manifest()
			tt.damage(t, s, m)
			res, err = s.Fsck(ctx)
			if err != nil {
				t.Fatal(err)
			}
			var all []string
			for _, p := range res.Problems {
				all = append(all, p.String())
			}
			if !strings.Contains(strings.Join(all, "\n"), tt.want) {
				t.Fatalf("fsck problems %q do not mention %q", all, tt.want)
			}
		})
	}
}

func TestGCKeepsReachableBlobs(t *testing.T) {
	ctx := context.Background()
	s := openStore(t)
	keep, drop := randomImage(t, "linux/amd64"), randomImage(t, "linux/amd64")
	if _, err := s.WriteImage(ctx, keep, mustRef(t, "keep")); err != nil {
		t.Fatal(err)
	}
	if _, err := s.WriteImage(ctx, drop, mustRef(t, "drop")); err != nil {
		t.Fatal(err)
	}
	w, _ := s.NewBlob() // an interrupted write
	w.Write([]byte("half"))
	if _, err := s.Untag(ctx, mustRef(t, "drop")); err != nil {
		t.Fatal(err)
	}
	res, err := s.GC(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if res.Blobs != 4 || res.TempFiles != 1 {
		t.Errorf("gc removed %d blobs and %d temporary files, want 4 and 1", res.Blobs, res.TempFiles)
	}
	if _, _, err := s.Image(mustRef(t, "keep")); err != nil {
		t.Fatal(err)
	}
	fr, err := s.Fsck(ctx)
	if err != nil || len(fr.Problems) != 0 || fr.Blobs != 4 {
		t.Fatalf("fsck after gc: %d blobs, problems %v, %v", fr.Blobs, fr.Problems, err)
	}
}

func TestGCRefusesUnparseableManifest(t *testing.T) {
	ctx := context.Background()
	s := openStore(t)
	img := randomImage(t, "linux/amd64")
	d, err := s.WriteImage(ctx, img, mustRef(t, "x"))
	if err != nil {
		t.Fatal(err)
	}
	os.WriteFile(s.BlobPath(d.Digest), []byte("not json"), 0o644)
	if _, err := s.GC(ctx); err == nil {
		t.Fatal("gc ran on a store whose manifest does not parse")
	}
	m, _ := img.Manifest()
	if !s.HasBlob(m.Layers[0].Digest) {
		t.Fatal("gc removed a layer it could not prove unreachable")
	}
}

func TestBlobCommitChecksDigest(t *testing.T) {
	s := openStore(t)
	want := v1.Hash{Algorithm: "sha256", Hex: strings.Repeat("0", 64)}
	_, _, err := s.WriteBlob(context.Background(), strings.NewReader("data"), &want)
	if err == nil || !strings.Contains(err.Error(), want.String()) {
		t.Fatalf("WriteBlob with a wrong digest: %v", err)
	}
	if s.HasBlob(want) {
		t.Fatal("a blob with the wrong content was published")
	}
	tmp, _ := os.ReadDir(s.private("tmp"))
	if len(tmp) != 0 {
		t.Fatalf("temporary files left: %v", tmp)
	}
}

func TestParseRef(t *testing.T) {
	tests := []struct{ in, want, wantErr string }{
		{in: "stage3", want: "stage3"},
		{in: "serpent/stage3:2026.11", want: "serpent/stage3:2026.11"},
		{in: "stage3@aarch64", want: "stage3@linux-arm64"},
		{in: "stage3@linux-amd64", want: "stage3@linux-amd64"},
		{in: "stage3@linux/amd64", want: "stage3@linux-amd64"},
		{in: "stage3@linux/arm/v7", want: "stage3@linux-arm-v7"},
		{in: "", wantErr: "invalid tag name"},
		{in: "-bad", wantErr: "invalid tag name"},
		{in: "a b", wantErr: "invalid tag name"},
		{in: "x@windows/amd64", wantErr: "only linux"},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			r, err := ParseRef(tt.in)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("ParseRef(%q) error = %v, want %q", tt.in, err, tt.wantErr)
				}
				return
			}
			if err != nil || r.String() != tt.want {
				t.Fatalf("ParseRef(%q) = %s, %v; want %s", tt.in, r, err, tt.want)
			}
		})
	}
}

// TestImageForTakesTheGivenPlatformOfAName: a name of several platforms (tags of each, or an
// index) is read for the given platform when it has it; otherwise it stays ambiguous, and a
// ref that names a platform is read as it is.
func TestImageForTakesTheGivenPlatformOfAName(t *testing.T) {
	ctx := context.Background()
	s := openStore(t)
	amd64, arm64 := v1.Platform{OS: "linux", Architecture: "amd64"}, v1.Platform{OS: "linux", Architecture: "arm64"}
	s390x := v1.Platform{OS: "linux", Architecture: "s390x"}
	for _, p := range []string{"linux/amd64", "linux/arm64"} {
		if _, err := s.WriteImage(ctx, randomImage(t, p), mustRef(t, "tags@"+p)); err != nil {
			t.Fatal(err)
		}
	}
	for _, p := range []string{"linux/arm64", "linux/s390x"} {
		if _, err := s.WriteImage(ctx, randomImage(t, p), mustRef(t, "foreign@"+p)); err != nil {
			t.Fatal(err)
		}
	}
	idx := mutate.AppendManifests(mutate.IndexMediaType(empty.Index, types.OCIImageIndex),
		mutate.IndexAddendum{Add: randomImage(t, "linux/amd64"), Descriptor: v1.Descriptor{Platform: &amd64}},
		mutate.IndexAddendum{Add: randomImage(t, "linux/arm64"), Descriptor: v1.Descriptor{Platform: &arm64}})
	if _, err := s.WriteIndex(ctx, idx, "index"); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		ref     string
		p       v1.Platform
		want    string // the platform read, or "" for an error
		wantErr error
	}{
		{"tags", amd64, "linux/amd64", nil},
		{"tags", arm64, "linux/arm64", nil},
		{"tags", s390x, "", ErrAmbiguous},
		{"tags@linux/arm64", amd64, "linux/arm64", nil}, // named: as it is
		{"index", amd64, "linux/amd64", nil},
		{"index", s390x, "", ErrAmbiguous},
		{"foreign", amd64, "", ErrAmbiguous},
		{"foreign", s390x, "linux/s390x", nil},
		{"nothing", amd64, "", ErrNotFound},
	}
	for _, tt := range tests {
		img, _, err := s.ImageFor(mustRef(t, tt.ref), tt.p)
		if tt.wantErr != nil {
			if !errors.Is(err, tt.wantErr) {
				t.Errorf("ImageFor(%s, %s): %v, want %v", tt.ref, platform.String(tt.p), err, tt.wantErr)
			}
			continue
		}
		if err != nil {
			t.Errorf("ImageFor(%s, %s): %v", tt.ref, platform.String(tt.p), err)
			continue
		}
		cfg, err := img.ConfigFile()
		if err != nil {
			t.Fatal(err)
		}
		if got := cfg.OS + "/" + cfg.Architecture; got != tt.want {
			t.Errorf("ImageFor(%s, %s) read %s, want %s", tt.ref, platform.String(tt.p), got, tt.want)
		}
	}
}

// TestVerifiedBlobTakesTheCheckedDigest: a blob written from a stream that checked itself is
// published under the digest it was checked against, and only with one: without it nothing is
// published and no temporary file stays.
func TestVerifiedBlobTakesTheCheckedDigest(t *testing.T) {
	st, err := Open(context.Background(), t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	data := []byte("layer bytes")
	want := v1.Hash{Algorithm: "sha256", Hex: fmt.Sprintf("%x", sha256.Sum256(data))}
	for _, tc := range []struct {
		name string
		want *v1.Hash
		ok   bool
	}{
		{"with the digest", &want, true},
		{"without one", nil, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			w, err := st.newVerifiedBlob()
			if err != nil {
				t.Fatal(err)
			}
			defer w.Abort()
			if _, err := w.Write(data); err != nil {
				t.Fatal(err)
			}
			got, n, err := w.Commit(tc.want)
			if tc.ok != (err == nil) {
				t.Fatalf("commit: %v", err)
			}
			if tc.ok && (got != want || n != int64(len(data)) || !st.HasBlob(want)) {
				t.Errorf("commit: %s, %d bytes, in store %v", got, n, st.HasBlob(want))
			}
			if n, _ := st.SweepStaleBlobs(); n != 0 {
				t.Errorf("%d temporary blobs left", n)
			}
		})
	}
}
