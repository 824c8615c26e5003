package build

import (
	"context"
	"encoding/json"
	"fmt"
	"net/url"
	"regexp"
	"strings"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/partial"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
	"github.com/serpent-os/serpent-oci/builder/cachekey"
	"github.com/serpent-os/serpent-oci/oci/packages"
	"github.com/serpent-os/serpent-oci/oci/platform"
	"github.com/serpent-os/serpent-oci/oci/store"
	"github.com/serpent-os/serpent-oci/stages"
)

// Provenance annotations on every stage image, beside the key, recipe digest, stage, target
// and base digest. None holds a time of the build, a host name or a path: two builds of the
// same recipes give the same manifest.
const (
	AnnotationSources = "os.serpent.oci.sources" // JSON: every source, name, file, sha256, origin, licence
	AnnotationBuilder = "os.serpent.oci.builder" // the builder's format version (what decides the bytes)
	// AnnotationAccelerator is, on the SBOM of a stage image made by a build with an
	// accelerator, the accelerator's manifest digest. It is not on the image: an accelerated
	// build makes the emulated build's manifest, and says how beside it.
	AnnotationAccelerator = "os.serpent.oci.accelerator"
)

// EmbeddedSource is org.opencontainers.image.source of stages built from the recipes built
// into serpent-oci.
const EmbeddedSource = "https://github.com/serpent-os/serpent-oci"

// provenance is the annotations that say what a stage image was made from.
func provenance(opts PlanOptions, s *Step, epoch time.Time) map[string]string {
	srcs, _ := json.Marshal(s.Recipe.Sources)
	a := map[string]string{
		AnnotationKey: s.Key, AnnotationRecipeDigest: s.RecipeDigest,
		AnnotationStage: s.Name(), AnnotationTarget: platform.String(s.Target.Platform),
		AnnotationSources:         string(srcs),
		AnnotationBuilder:         FormatVersion,
		ocispec.AnnotationCreated: epoch.UTC().Format(time.RFC3339),
		// The version of a stage is its recipe: the same recipe, the same stage.
		ocispec.AnnotationVersion: s.RecipeDigest,
		// The content digest of the recipes the stage's chain is made of: a revision that
		// names them in any VCS or none, and that does not move when a commit changes
		// nothing they build (another stage's recipe, a comment).
		ocispec.AnnotationRevision: ChainDigest(opts.Set, s),
	}
	if opts.RecipeSource != "" {
		a[ocispec.AnnotationSource] = opts.RecipeSource
	}
	return a
}

// ChainDigest is the digest of what of a recipe set s's image is made from: the digest of each
// recipe of its chain (the stage and those it is built on, up to an image or host packages)
// and its target's row. An edit to any other recipe leaves it, and so the image, as it is.
func ChainDigest(set *stages.Set, s *Step) string {
	recipes := map[string]string{}
	chain, err := set.Chain(s.Name())
	if err != nil {
		chain = []*stages.Recipe{s.Recipe} // a set Load accepted has none: the stage alone
	}
	for _, r := range chain {
		recipes[r.Name] = RecipeDigest(r)
	}
	return cachekey.Of(struct {
		Recipes map[string]string
		Target  string
		Vars    map[string]string
	}{recipes, platform.String(s.Target.Platform), s.Target.Vars})
}

// SBOM media and artifact type.
const SPDXMediaType = "application/spdx+json"

type spdxDoc struct {
	SPDXVersion       string             `json:"spdxVersion"`
	DataLicense       string             `json:"dataLicense"`
	SPDXID            string             `json:"SPDXID"`
	Name              string             `json:"name"`
	DocumentNamespace string             `json:"documentNamespace"`
	CreationInfo      spdxCreation       `json:"creationInfo"`
	Packages          []spdxPackage      `json:"packages"`
	Relationships     []spdxRelationship `json:"relationships"`
}

type spdxCreation struct {
	Created  string   `json:"created"`
	Creators []string `json:"creators"`
	Comment  string   `json:"comment,omitempty"`
}

type spdxPackage struct {
	Name                  string         `json:"name"`
	SPDXID                string         `json:"SPDXID"`
	VersionInfo           string         `json:"versionInfo,omitempty"`
	PackageFileName       string         `json:"packageFileName,omitempty"`
	DownloadLocation      string         `json:"downloadLocation"`
	FilesAnalyzed         bool           `json:"filesAnalyzed"`
	Checksums             []spdxChecksum `json:"checksums,omitempty"`
	LicenseDeclared       string         `json:"licenseDeclared"`
	LicenseConcluded      string         `json:"licenseConcluded"`
	CopyrightText         string         `json:"copyrightText"`
	SourceInfo            string         `json:"sourceInfo,omitempty"`
	PrimaryPackagePurpose string         `json:"primaryPackagePurpose,omitempty"`
	Comment               string         `json:"comment,omitempty"`
	ExternalRefs          []spdxRef      `json:"externalRefs,omitempty"`
}

type spdxRef struct {
	Category string `json:"referenceCategory"`
	Type     string `json:"referenceType"`
	Locator  string `json:"referenceLocator"`
}

type spdxChecksum struct {
	Algorithm     string `json:"algorithm"`
	ChecksumValue string `json:"checksumValue"`
}

type spdxRelationship struct {
	Element string `json:"spdxElementId"`
	Type    string `json:"relationshipType"`
	Related string `json:"relatedSpdxElement"`
}

var spdxIDUnsafe = regexp.MustCompile(`[^A-Za-z0-9.-]+`)

// SBOM is an SPDX 2.3 JSON document for the stage image d made by step s: the image, its base,
// and every source the recipe names as packages (checksums, origin, and licence where the
// recipe states it). It is the same bytes whenever the same image is described.
func SBOM(s *Step, d v1.Descriptor, installed []DebianPackage, epoch time.Time) ([]byte, error) {
	doc := spdxDoc{
		SPDXVersion: "SPDX-2.3", DataLicense: "CC0-1.0", SPDXID: "SPDXRef-DOCUMENT",
		Name:              s.Name() + " for " + platform.String(s.Target.Platform),
		DocumentNamespace: EmbeddedSource + "/spdx/" + s.Name() + "/" + platform.Slug(s.Target.Platform) + "/" + d.Digest.Hex,
		CreationInfo: spdxCreation{
			Created:  epoch.UTC().Format(time.RFC3339),
			Creators: []string{"Tool: serpent-oci-" + strings.ReplaceAll(FormatVersion, "/", "-")},
			Comment:  "Created is the stage's SOURCE_DATE_EPOCH, not the time of the build.",
		},
	}
	img := spdxPackage{
		Name: s.Name(), SPDXID: "SPDXRef-Image", VersionInfo: s.RecipeDigest,
		DownloadLocation: "NOASSERTION", LicenseDeclared: "NOASSERTION", LicenseConcluded: "NOASSERTION", CopyrightText: "NOASSERTION",
		Checksums:             []spdxChecksum{{"SHA256", d.Digest.Hex}},
		PrimaryPackagePurpose: "CONTAINER",
		Comment:               fmt.Sprintf("OCI image manifest %s for %s; cache key %s", d.Digest, platform.String(s.Output), s.Key),
	}
	doc.Packages = append(doc.Packages, img)
	doc.Relationships = append(doc.Relationships, spdxRelationship{"SPDXRef-DOCUMENT", "DESCRIBES", "SPDXRef-Image"})
	if s.BaseDigest.Hex != "" {
		doc.Packages = append(doc.Packages, spdxPackage{
			Name: s.Base, SPDXID: "SPDXRef-Base", DownloadLocation: "NOASSERTION",
			LicenseDeclared: "NOASSERTION", LicenseConcluded: "NOASSERTION", CopyrightText: "NOASSERTION",
			Checksums: []spdxChecksum{{"SHA256", s.BaseDigest.Hex}}, PrimaryPackagePurpose: "CONTAINER",
			Comment: "the image this stage ran in: OCI image manifest " + s.BaseDigest.String(),
		})
		doc.Relationships = append(doc.Relationships, spdxRelationship{"SPDXRef-Image", "DESCENDANT_OF", "SPDXRef-Base"})
	}
	if a := s.Accelerator(); s.Accelerated() && a != nil {
		doc.Packages = append(doc.Packages, spdxPackage{
			Name: a.Name, SPDXID: "SPDXRef-Accelerator", DownloadLocation: "NOASSERTION",
			LicenseDeclared: "NOASSERTION", LicenseConcluded: "NOASSERTION", CopyrightText: "NOASSERTION",
			Checksums: []spdxChecksum{{"SHA256", a.Digest.Hex}}, PrimaryPackagePurpose: "CONTAINER",
			Comment: "host-native tools the stage's emulated build ran (mounted at " + AcceleratorDir + "): OCI image manifest " + a.Digest.String(),
		})
		doc.Relationships = append(doc.Relationships, spdxRelationship{"SPDXRef-Accelerator", "BUILD_TOOL_OF", "SPDXRef-Image"})
	}
	for _, src := range s.Recipe.Sources {
		p := spdxPackage{
			Name: src.Name, SPDXID: "SPDXRef-Source-" + spdxIDUnsafe.ReplaceAllString(src.Name, "-"),
			PackageFileName: src.File, DownloadLocation: "NOASSERTION",
			Checksums:       []spdxChecksum{{"SHA256", src.SHA256}},
			LicenseDeclared: "NOASSERTION", LicenseConcluded: "NOASSERTION", CopyrightText: "NOASSERTION",
			PrimaryPackagePurpose: "SOURCE",
		}
		if src.URL != "" {
			p.DownloadLocation = src.URL
		}
		if src.License != "" {
			p.LicenseDeclared = src.License
		}
		if src.Debian != nil {
			p.SourceInfo = fmt.Sprintf("Debian source package %s version %s, file %s (fetched with apt-get source)", src.Debian.Package, src.Debian.Version, src.Debian.File)
			if p.PackageFileName == "" {
				p.PackageFileName = src.Debian.File
			}
		}
		doc.Packages = append(doc.Packages, p)
		doc.Relationships = append(doc.Relationships, spdxRelationship{"SPDXRef-Image", "GENERATED_FROM", p.SPDXID})
	}
	for i, p := range installed {
		id := fmt.Sprintf("SPDXRef-Deb-%d-%s", i, spdxIDUnsafe.ReplaceAllString(p.Name, "-"))
		doc.Packages = append(doc.Packages, spdxPackage{
			Name: p.Name, SPDXID: id, VersionInfo: p.Version, DownloadLocation: "NOASSERTION",
			LicenseDeclared: "NOASSERTION", LicenseConcluded: "NOASSERTION", CopyrightText: "NOASSERTION",
			PrimaryPackagePurpose: "INSTALL",
			ExternalRefs: []spdxRef{{"PACKAGE-MANAGER", "purl",
				"pkg:deb/debian/" + p.Name + "@" + url.PathEscape(p.Version) + "?arch=" + p.Arch}},
		})
		doc.Relationships = append(doc.Relationships, spdxRelationship{"SPDXRef-Image", "CONTAINS", id})
	}
	return json.MarshalIndent(doc, "", "  ")
}

// PackageSBOM is an SPDX 2.3 JSON document for the package image d: the package (name,
// version, digest, platform), each source it was built from (checksum, origin, licence) and
// the stage image that made it. The same package of the same stage gives the same bytes.
func PackageSBOM(pkg packages.Package, d v1.Descriptor, stage string, stageDigest v1.Hash, epoch time.Time) ([]byte, error) {
	doc := spdxDoc{
		SPDXVersion: "SPDX-2.3", DataLicense: "CC0-1.0", SPDXID: "SPDXRef-DOCUMENT",
		Name:              "package " + pkg.Name + " " + pkg.Version + " for " + platform.String(pkg.Platform),
		DocumentNamespace: EmbeddedSource + "/spdx/package/" + pkg.Name + "/" + platform.Slug(pkg.Platform) + "/" + d.Digest.Hex,
		CreationInfo: spdxCreation{
			Created:  epoch.UTC().Format(time.RFC3339),
			Creators: []string{"Tool: serpent-oci-" + strings.ReplaceAll(FormatVersion, "/", "-")},
			Comment:  "Created is the stage's SOURCE_DATE_EPOCH, not the time of the build.",
		},
	}
	doc.Packages = append(doc.Packages, spdxPackage{
		Name: pkg.Name, SPDXID: "SPDXRef-Package", VersionInfo: pkg.Version,
		DownloadLocation: "NOASSERTION", LicenseDeclared: "NOASSERTION", LicenseConcluded: "NOASSERTION", CopyrightText: "NOASSERTION",
		Checksums:             []spdxChecksum{{"SHA256", d.Digest.Hex}},
		PrimaryPackagePurpose: "INSTALL",
		Comment:               fmt.Sprintf("package image %s for %s: %d files under /usr", d.Digest, platform.String(pkg.Platform), len(pkg.Files)),
	}, spdxPackage{
		Name: stage, SPDXID: "SPDXRef-Stage", DownloadLocation: "NOASSERTION",
		LicenseDeclared: "NOASSERTION", LicenseConcluded: "NOASSERTION", CopyrightText: "NOASSERTION",
		Checksums: []spdxChecksum{{"SHA256", stageDigest.Hex}}, PrimaryPackagePurpose: "CONTAINER",
		Comment: "the stage image that built the package: OCI image manifest " + stageDigest.String(),
	})
	doc.Relationships = append(doc.Relationships,
		spdxRelationship{"SPDXRef-DOCUMENT", "DESCRIBES", "SPDXRef-Package"},
		spdxRelationship{"SPDXRef-Stage", "BUILD_TOOL_OF", "SPDXRef-Package"})
	for _, src := range pkg.Sources {
		p := spdxPackage{
			Name: src.Name, SPDXID: "SPDXRef-Source-" + spdxIDUnsafe.ReplaceAllString(src.Name, "-"),
			DownloadLocation: "NOASSERTION", Checksums: []spdxChecksum{{"SHA256", src.SHA256}},
			LicenseDeclared: "NOASSERTION", LicenseConcluded: "NOASSERTION", CopyrightText: "NOASSERTION",
			PrimaryPackagePurpose: "SOURCE", SourceInfo: "origin " + src.Origin,
		}
		if strings.HasPrefix(src.Origin, "https://") || strings.HasPrefix(src.Origin, "http://") {
			p.DownloadLocation = src.Origin
		}
		if src.Licence != "" {
			p.LicenseDeclared = src.Licence
		}
		doc.Packages = append(doc.Packages, p)
		doc.Relationships = append(doc.Relationships, spdxRelationship{"SPDXRef-Package", "GENERATED_FROM", p.SPDXID})
	}
	return json.MarshalIndent(doc, "", "  ")
}

// writePackageSBOMs stores the SBOM of each package the stage image d records (those in the
// store), beside the package image as a referrer, as the stage's own is beside it.
func writePackageSBOMs(ctx context.Context, st *store.Store, s *Step, d v1.Descriptor, epoch time.Time) error {
	img, err := st.ImageByDigest(d)
	if err != nil {
		return err
	}
	installed, imgs, err := recordedPackages(ctx, st, s.Tag.String(), img, true)
	if err != nil {
		return err
	}
	for i, pi := range imgs {
		pkg, err := packages.Read(pi)
		if err != nil {
			return fmt.Errorf("package %s: %w", installed[i].Name, err)
		}
		pd, err := partial.Descriptor(pi)
		if err != nil {
			return err
		}
		sbom, err := PackageSBOM(pkg, *pd, s.Tag.String(), d.Digest, epoch)
		if err != nil {
			return err
		}
		if _, err := st.WriteReferrer(ctx, *pd, SPDXMediaType, SPDXMediaType, sbom, nil); err != nil {
			return fmt.Errorf("package %s: store its SBOM: %w", pkg.Name, err)
		}
	}
	return nil
}
