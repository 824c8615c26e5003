package store

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"slices"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/types"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
)

// AnnotationSubject marks an index.json entry as a referrer of the manifest it names: an
// artifact (an SBOM, a signature) about an image rather than an image. Such entries carry no
// tag; they live as long as their subject does (gc drops them with it).
const AnnotationSubject = "os.serpent.oci.subject"

// emptyConfig is the OCI empty descriptor's content, an artifact's config.
var emptyConfig = []byte("{}")

// WriteReferrer stores data as an OCI 1.1 artifact of artifactType whose subject is the
// manifest subject describes: a manifest with the empty config, data as its one layer (of
// mediaType), subject and annotations set, listed in index.json as a referrer of subject
// (with the same annotations). The same artifact written twice is stored once.
func (s *Store) WriteReferrer(ctx context.Context, subject v1.Descriptor, artifactType string, mediaType types.MediaType, data []byte, annotations map[string]string) (v1.Descriptor, error) {
	// The artifact's manifest is known before anything is written: a referrer the store has
	// already (every rebuild or reuse of a stage writes its SBOM again) costs no I/O but a
	// read of index.json.
	cfgHash, cfgSize, _ := v1.SHA256(bytes.NewReader(emptyConfig))
	dataHash, dataSize, _ := v1.SHA256(bytes.NewReader(data))
	sub := v1.Descriptor{MediaType: subject.MediaType, Digest: subject.Digest, Size: subject.Size}
	m := v1.Manifest{
		SchemaVersion: 2,
		MediaType:     types.OCIManifestSchema1,
		ArtifactType:  artifactType,
		Config:        v1.Descriptor{MediaType: "application/vnd.oci.empty.v1+json", Digest: cfgHash, Size: cfgSize, Data: emptyConfig},
		Layers:        []v1.Descriptor{{MediaType: mediaType, Digest: dataHash, Size: dataSize}},
		Subject:       &sub,
		Annotations:   annotations,
	}
	raw, err := json.Marshal(m)
	if err != nil {
		return v1.Descriptor{}, err
	}
	mh, msize, _ := v1.SHA256(bytes.NewReader(raw))
	// index.json's entry carries the artifact's annotations too, as a registry's referrers
	// list does, so that a reader of the list need not open every artifact; but never a
	// ref.name (an artifact pulled from a registry naming one would otherwise be a tag).
	entry := map[string]string{AnnotationSubject: subject.Digest.String()}
	for k, v := range annotations {
		if k != AnnotationSubject && k != ocispec.AnnotationRefName {
			entry[k] = v
		}
	}
	d := v1.Descriptor{
		MediaType: types.OCIManifestSchema1, Digest: mh, Size: msize, ArtifactType: artifactType,
		Annotations: entry,
	}
	if have, err := s.Referrers(subject.Digest, artifactType); err == nil && slices.ContainsFunc(have, func(e v1.Descriptor) bool { return e.Digest == mh }) {
		return d, nil
	}

	release, err := s.Hold(ctx)
	if err != nil {
		return v1.Descriptor{}, err
	}
	defer release()
	for _, b := range []struct {
		h    v1.Hash
		data []byte
	}{{cfgHash, emptyConfig}, {dataHash, data}, {mh, raw}} {
		if _, _, err := s.WriteBlob(ctx, bytes.NewReader(b.data), &b.h); err != nil {
			return v1.Descriptor{}, fmt.Errorf("write referrer of %s: %w", subject.Digest, err)
		}
	}
	err = s.updateIndex(ctx, func(idx *v1.IndexManifest) (bool, error) {
		for _, e := range idx.Manifests {
			if e.Digest == d.Digest {
				return false, nil
			}
		}
		idx.Manifests = append(idx.Manifests, d)
		return true, nil
	})
	if err != nil {
		return v1.Descriptor{}, fmt.Errorf("write referrer of %s: %w", subject.Digest, err)
	}
	return d, nil
}

// Referrers lists the artifacts stored about the manifest subject, of artifactType ("" for
// any), in the order they were written.
func (s *Store) Referrers(subject v1.Hash, artifactType string) ([]v1.Descriptor, error) {
	idx, err := s.readIndex()
	if err != nil {
		return nil, err
	}
	var out []v1.Descriptor
	for _, e := range idx.Manifests {
		if e.Annotations[AnnotationSubject] == subject.String() && (artifactType == "" || e.ArtifactType == artifactType) {
			out = append(out, e)
		}
	}
	return out, nil
}

// ReferrerData returns the one layer of the artifact d describes.
func (s *Store) ReferrerData(d v1.Descriptor) ([]byte, error) {
	raw, err := s.readBlob(d.Digest)
	if err != nil {
		return nil, err
	}
	var m v1.Manifest
	if err := json.Unmarshal(raw, &m); err != nil || len(m.Layers) != 1 {
		return nil, fmt.Errorf("artifact %s: not a one-layer manifest", d.Digest)
	}
	return s.readBlob(m.Layers[0].Digest)
}

// ReferrerImage returns the artifact d describes as an image (for a push: a manifest whose
// subject is set goes out as a referrer).
func (s *Store) ReferrerImage(d v1.Descriptor) (v1.Image, error) {
	return s.ImageByDigest(v1.Descriptor{MediaType: d.MediaType, Digest: d.Digest, Size: d.Size})
}

// splitReferrers parts index.json's entries into the rest and referrers.
func splitReferrers(idx *v1.IndexManifest) (rest, referrers *v1.IndexManifest) {
	rest, referrers = &v1.IndexManifest{}, &v1.IndexManifest{}
	for _, e := range idx.Manifests {
		if e.Annotations[AnnotationSubject] != "" {
			referrers.Manifests = append(referrers.Manifests, e)
		} else {
			rest.Manifests = append(rest.Manifests, e)
		}
	}
	return rest, referrers
}
