package store

import (
	"context"
	"os/exec"
	"testing"

	"github.com/serpent-os/serpent-oci/oci/testenv"
)

func TestReferrersLiveAndDieWithTheirSubject(t *testing.T) {
	ctx := context.Background()
	s := openStore(t)
	img := randomImage(t, "linux/arm64")
	d, err := s.WriteImage(ctx, img, mustRef(t, "stage@linux/arm64"))
	if err != nil {
		t.Fatal(err)
	}
	sbom := []byte(`{"spdxVersion":"SPDX-2.3"}`)
	r, err := s.WriteReferrer(ctx, d, "application/spdx+json", "application/spdx+json", sbom, nil)
	if err != nil {
		t.Fatal(err)
	}
	if again, err := s.WriteReferrer(ctx, d, "application/spdx+json", "application/spdx+json", sbom, nil); err != nil || again.Digest != r.Digest {
		t.Fatalf("the same referrer again: %v %v", again.Digest, err)
	}
	refs, err := s.Referrers(d.Digest, "application/spdx+json")
	if err != nil || len(refs) != 1 || refs[0].Digest != r.Digest {
		t.Fatalf("referrers: %v %v", refs, err)
	}
	if other, _ := s.Referrers(d.Digest, "application/vnd.example.sig"); len(other) != 0 {
		t.Errorf("referrers of another artifact type: %v", other)
	}
	got, err := s.ReferrerData(refs[0])
	if err != nil || string(got) != string(sbom) {
		t.Fatalf("referrer data %q, %v", got, err)
	}
	art, err := s.ReferrerImage(refs[0])
	if err != nil {
		t.Fatal(err)
	}
	if m, err := art.Manifest(); err != nil || m.Subject == nil || m.Subject.Digest != d.Digest || m.ArtifactType != "application/spdx+json" {
		t.Fatalf("artifact manifest %+v %v", m, err)
	}
	if tags, _ := s.Tags(); len(tags) != 1 {
		t.Errorf("a referrer shows as a tag: %v", tags)
	}
	if fr, err := s.Fsck(ctx); err != nil || len(fr.Problems) != 0 {
		t.Fatalf("fsck with a referrer: %v %v", fr.Problems, err)
	}
	if testenv.InCI() || exec.Command("umoci", "--version").Run() == nil {
		if out, err := exec.Command("umoci", "ls", "--layout", s.Dir()).CombinedOutput(); err != nil {
			t.Errorf("umoci ls on a store with a referrer: %v\n%s", err, out)
		}
	}

	// gc keeps the referrer with its subject, and drops it with it.
	if res, err := s.GC(ctx); err != nil || res.Referrers != 0 || res.Blobs != 0 {
		t.Fatalf("gc with the subject tagged: %+v %v", res, err)
	}
	if _, err := s.Untag(ctx, mustRef(t, "stage")); err != nil {
		t.Fatal(err)
	}
	res, err := s.GC(ctx)
	if err != nil {
		t.Fatal(err)
	}
	// The image's manifest, config and two layers, the artifact's manifest, empty config and data.
	if res.Referrers != 1 || res.Blobs != 7 {
		t.Errorf("gc after untagging the subject: %+v, want 1 referrer and 7 blobs removed", res)
	}
	if refs, _ := s.Referrers(d.Digest, ""); len(refs) != 0 {
		t.Errorf("referrers left: %v", refs)
	}
}
