package store

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"testing"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/types"
	"github.com/serpent-os/serpent-oci/oci/platform"
)

// FuzzIndexEntries: no index.json makes the store panic: whatever its descriptors' shapes
// (missing platform or media type, unknown media types, nested indexes, duplicate names,
// digests of missing blobs), listing, resolving, reading, untagging and fsck return errors.
func FuzzIndexEntries(f *testing.F) {
	s, err := Open(context.Background(), filepath.Join(f.TempDir(), "store"))
	if err != nil {
		f.Fatal(err)
	}
	ctx := context.Background()
	arm64 := platform.MustParse("linux/arm64")
	img := randomImage(f, "linux/arm64")
	d, err := s.WriteImage(ctx, img, Ref{Name: "base"}.WithPlatform(&arm64))
	if err != nil {
		f.Fatal(err)
	}
	multi := mutate.AppendManifests(mutate.IndexMediaType(empty.Index, types.OCIImageIndex),
		mutate.IndexAddendum{Add: img, Descriptor: v1.Descriptor{Platform: &arm64}})
	idx, err := s.WriteIndex(ctx, multi, "multi")
	if err != nil {
		f.Fatal(err)
	}
	entry := func(mt, digest, name, plat string) string {
		e := fmt.Sprintf(`{"mediaType":%q,"digest":%q,"size":%d`, mt, digest, d.Size)
		if name != "" {
			e += fmt.Sprintf(`,"annotations":{"org.opencontainers.image.ref.name":%q}`, name)
		}
		if plat != "" {
			e += `,"platform":` + plat
		}
		return e + "}"
	}
	m, x := d.Digest.String(), idx.Digest.String()
	for _, seed := range [][]string{
		{entry("application/vnd.oci.image.manifest.v1+json", m, "plain", "")},
		{entry("", m, "plain", ""), entry("", x, "plain", "")},
		{entry("application/vnd.oci.image.index.v1+json", m, "base@linux-arm64", `{"os":"linux","architecture":"arm64"}`)},
		{entry("application/vnd.oci.image.manifest.v1+json", x, "multi", `{}`)},
		{entry("application/x-unknown", m, "base", `{"architecture":""}`), entry("application/vnd.oci.image.manifest.v1+json", m, "base", "")},
		{entry("application/vnd.oci.image.manifest.v1+json", "sha256:0000000000000000000000000000000000000000000000000000000000000000", "gone@linux-arm64", `{"os":"linux","architecture":"arm64"}`)},
		{entry("application/vnd.oci.image.manifest.v1+json", "sha256:../../etc/passwd", "bad", "")},
		{entry("application/vnd.oci.image.index.v1+json", x, "", "")},
	} {
		b := `{"schemaVersion":2,"mediaType":"application/vnd.oci.image.index.v1+json","manifests":[`
		for i, e := range seed {
			if i > 0 {
				b += ","
			}
			b += e
		}
		f.Add([]byte(b + "]}"))
	}
	amd64 := platform.MustParse("linux/amd64")
	f.Fuzz(func(t *testing.T, index []byte) {
		if err := os.WriteFile(s.indexPath(), index, 0o644); err != nil {
			t.Fatal(err)
		}
		tags, _ := s.Tags()
		for _, tag := range tags {
			_ = tag.Ref.String()
			_ = tag.Platform()
		}
		for _, name := range []string{"plain", "base", "multi", "gone", "bad"} {
			for _, r := range []Ref{{Name: name}, Ref{Name: name}.WithPlatform(&arm64), Ref{Name: name}.WithPlatform(&amd64)} {
				if img, _, err := s.Image(r); err == nil {
					_, _ = img.ConfigFile()
					_, _ = img.Layers()
				}
				_, _ = s.Index(r.Name)
			}
		}
		_, _ = s.Fsck(ctx)
		_, _ = s.Untag(ctx, Ref{Name: "plain"}.WithPlatform(&arm64))
	})
}
