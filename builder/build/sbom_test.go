package build_test

import (
	"bytes"
	"encoding/json"
	"os"
	"strings"
	"testing"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
	"github.com/santhosh-tekuri/jsonschema/v6"
	"github.com/serpent-os/serpent-oci/builder/build"
	"github.com/serpent-os/serpent-oci/stages"
)

// spdxSchema is the SPDX 2.3 JSON schema (see testdata/README.md).
func spdxSchema(t *testing.T) *jsonschema.Schema {
	t.Helper()
	f, err := os.Open("testdata/spdx-schema-2.3.json")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	doc, err := jsonschema.UnmarshalJSON(f)
	if err != nil {
		t.Fatal(err)
	}
	c := jsonschema.NewCompiler()
	if err := c.AddResource("spdx-schema-2.3.json", doc); err != nil {
		t.Fatal(err)
	}
	s, err := c.Compile("spdx-schema-2.3.json")
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// checkSBOM validates data against the schema and checks that it lists every source of r
// with its checksum and licence, and the image itself.
func checkSBOM(t *testing.T, schema *jsonschema.Schema, data []byte, r *stages.Recipe, image v1.Hash) {
	t.Helper()
	inst, err := jsonschema.UnmarshalJSON(bytes.NewReader(data))
	if err != nil {
		t.Fatal(err)
	}
	if err := schema.Validate(inst); err != nil {
		t.Fatalf("%s: the SBOM does not validate against SPDX 2.3: %v", r.Name, err)
	}
	var doc struct {
		SPDXVersion string `json:"spdxVersion"`
		Packages    []struct {
			Name, SPDXID, LicenseDeclared, PackageFileName string
			Checksums                                      []struct{ Algorithm, ChecksumValue string }
		}
		Relationships []struct{ SpdxElementId, RelationshipType, RelatedSpdxElement string }
	}
	if err := json.Unmarshal(data, &doc); err != nil {
		t.Fatal(err)
	}
	// By SPDX ID for the image: a stage may be named as one of its sources (llvm).
	byName := map[string]int{}
	imageAt := -1
	for i, p := range doc.Packages {
		if p.SPDXID == "SPDXRef-Image" {
			imageAt = i
			continue
		}
		byName[p.Name] = i
	}
	if imageAt < 0 || doc.Packages[imageAt].Name != r.Name || doc.Packages[imageAt].Checksums[0].ChecksumValue != image.Hex {
		t.Errorf("%s: the SBOM does not describe the image %s", r.Name, image)
	}
	for _, src := range r.Sources {
		i, ok := byName[src.Name]
		if !ok {
			t.Errorf("%s: source %s is not in the SBOM", r.Name, src.Name)
			continue
		}
		p := doc.Packages[i]
		if len(p.Checksums) != 1 || p.Checksums[0].Algorithm != "SHA256" || p.Checksums[0].ChecksumValue != src.SHA256 {
			t.Errorf("%s: source %s has checksums %v, want SHA256 %s", r.Name, src.Name, p.Checksums, src.SHA256)
		}
		want := src.License
		if want == "" {
			want = "NOASSERTION"
		}
		if p.LicenseDeclared != want {
			t.Errorf("%s: source %s declares licence %q, the recipe says %q", r.Name, src.Name, p.LicenseDeclared, want)
		}
		generated := false
		for _, rel := range doc.Relationships {
			generated = generated || rel.RelationshipType == "GENERATED_FROM" && rel.RelatedSpdxElement == p.SPDXID
		}
		if !generated {
			t.Errorf("%s: no GENERATED_FROM relationship to source %s", r.Name, src.Name)
		}
	}
}

func TestSBOMOfEveryBootstrapStage(t *testing.T) {
	schema := spdxSchema(t)
	img := v1.Hash{Algorithm: "sha256", Hex: strings.Repeat("ab", 32)}
	base := v1.Hash{Algorithm: "sha256", Hex: strings.Repeat("cd", 32)}
	sources := 0
	var set *stages.Set
	var recipes []*stages.Recipe
	for _, profile := range stages.Profiles(stages.Embedded()) {
		var err error
		if set, err = stages.LoadProfile(stages.Embedded(), profile); err != nil {
			t.Fatal(err)
		}
		for _, name := range set.Names() {
			recipes = append(recipes, set.Recipes[name])
		}
	}
	target, _ := set.Target(arm64)
	for _, r := range recipes {
		name := r.File
		s := &build.Step{
			Vertex:   &build.Vertex{Recipe: r, Target: target, Output: arm64, RecipeDigest: build.RecipeDigest(r)},
			Decision: build.Decision{Key: "sha256:" + strings.Repeat("ef", 32), Base: "base", BaseDigest: base},
		}
		data, err := build.SBOM(s, v1.Descriptor{Digest: img}, nil, time.Unix(1597536000, 0))
		if err != nil {
			t.Fatal(err)
		}
		checkSBOM(t, schema, data, r, img)
		again, _ := build.SBOM(s, v1.Descriptor{Digest: img}, nil, time.Unix(1597536000, 0))
		if !bytes.Equal(data, again) {
			t.Errorf("%s: two SBOMs of the same image differ", name)
		}
		sources += len(r.Sources)
	}
	// The schema has teeth: a checksum algorithm SPDX does not know is refused.
	bad, _ := build.SBOM(&build.Step{Vertex: &build.Vertex{Recipe: set.Recipes["stage2"], Target: target}}, v1.Descriptor{Digest: img}, nil, time.Unix(0, 0))
	inst, _ := jsonschema.UnmarshalJSON(bytes.NewReader(bytes.Replace(bad, []byte(`"SHA256"`), []byte(`"SHA-256"`), 1)))
	if schema.Validate(inst) == nil {
		t.Error("the schema accepts a checksum algorithm SHA-256")
	}
	if sources < 8 {
		t.Errorf("the bootstrap's recipes name %d sources: the test saw too few", sources)
	}
}

func TestBuildStoresAnSBOMPerStage(t *testing.T) {
	f := newFixture(t)
	rep, err := f.build(t, "target-native")
	if err != nil {
		t.Fatal(err)
	}
	schema := spdxSchema(t)
	for _, s := range rep.Steps {
		refs, err := f.st.Referrers(s.Descriptor.Digest, build.SPDXMediaType)
		if err != nil || len(refs) != 1 {
			t.Fatalf("%s: %d SBOMs in the store, %v", s.Step.Name(), len(refs), err)
		}
		data, err := f.st.ReferrerData(refs[0])
		if err != nil {
			t.Fatal(err)
		}
		checkSBOM(t, schema, data, s.Step.Recipe, s.Descriptor.Digest)
		img, err := f.st.ImageByDigest(s.Descriptor)
		if err != nil {
			t.Fatal(err)
		}
		m, _ := img.Manifest()
		for _, k := range []string{build.AnnotationSources, build.AnnotationBuilder, ocispec.AnnotationCreated, ocispec.AnnotationRevision,
			ocispec.AnnotationVersion, build.AnnotationKey, build.AnnotationRecipeDigest, ocispec.AnnotationBaseImageDigest} {
			if m.Annotations[k] == "" {
				t.Errorf("%s lacks the annotation %s", s.Step.Name(), k)
			}
		}
		if m.Annotations[ocispec.AnnotationCreated] != "2020-08-16T00:00:00Z" {
			t.Errorf("%s: created %q, want the source date epoch", s.Step.Name(), m.Annotations[ocispec.AnnotationCreated])
		}
	}
}
