// Package build turns a recipe set into images: it plans the stages a target needs for each
// platform, computes each stage's cache key, reuses what the store holds under the same key,
// fetches and checks every source before any container starts, and runs the rest in order.
package build

import (
	"crypto/sha256"
	"fmt"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/serpent-os/serpent-oci/builder/cachekey"
	"github.com/serpent-os/serpent-oci/oci/platform"
	"github.com/serpent-os/serpent-oci/stages"
)

// FormatVersion is part of every cache key. Bump it whenever the builder would produce other
// bytes from the same inputs (the layer writer, the compression, the image config, the way a
// stage is run), so that old cached stages are not taken for new ones.
const FormatVersion = "serpent-oci/stage/2"

// Annotations on every stage image, from which a later plan tells why a stage must be rebuilt.
const (
	AnnotationKey          = "os.serpent.oci.cache-key"
	AnnotationRecipeDigest = "os.serpent.oci.recipe-digest"
	AnnotationStage        = "os.serpent.oci.stage"
	AnnotationTarget       = "os.serpent.oci.target"
)

// recipeMeaning is what of a recipe can change a stage's output: its fields as parsed (so a
// comment or a reformatting changes nothing) with sources by name, file and digest but not by
// origin (a mirror or a new URL serves the same bytes), and its files by content.
type recipeMeaning struct {
	Name     string            `json:"name"`
	From     stages.From       `json:"from"`
	RunsOn   stages.RunsOn     `json:"runs_on"`
	Output   stages.Output     `json:"output"`
	Sources  []keySource       `json:"sources"`
	Script   string            `json:"script"`
	Run      string            `json:"run"`
	Env      map[string]string `json:"env"`
	Network  bool              `json:"network"`
	Files    map[string]string `json:"files"` // path → sha256
	Annotate map[string]string `json:"annotate,omitempty"`
	Packages []string          `json:"packages,omitempty"`
}

type keySource struct {
	Name   string `json:"name"`
	File   string `json:"file"`
	SHA256 string `json:"sha256"`
	// Version is in the script's environment (SERPENT_VERSION_NAME), so it is an input.
	Version string `json:"version,omitempty"`
}

// RecipeDigest is the digest of a recipe's meaning (see recipeMeaning).
func RecipeDigest(r *stages.Recipe) string {
	m := recipeMeaning{
		Name: r.Name, From: r.From, RunsOn: r.RunsOn, Output: r.Output,
		Script: r.Script, Run: r.Run, Env: r.Env, Network: r.Network, Files: map[string]string{}, Annotate: r.Annotate,
		Packages: r.Packages,
	}
	for _, s := range r.Sources {
		m.Sources = append(m.Sources, keySource{Name: s.Name, File: s.File, SHA256: s.SHA256, Version: s.Version})
	}
	for p, b := range r.Files {
		m.Files[p] = fmt.Sprintf("%x", sha256.Sum256(b))
	}
	return cachekey.Of(m)
}

// keyInputs is everything a stage's output depends on.
type keyInputs struct {
	Format string            `json:"format"`
	Recipe string            `json:"recipe"`
	Base   string            `json:"base"`
	Target string            `json:"target"`
	Vars   map[string]string `json:"target_vars"`
	RunsOn string            `json:"runs_on"`
	Epoch  int64             `json:"source_date_epoch"`
}

// Key is a stage's cache key: recipe meaning, base image digest (which chains keys through the
// graph), target platform and its variables, the platform it runs on, the source date epoch
// and the builder's format version. Nothing else: not the time, the paths, the host name.
func Key(recipeDigest string, base v1.Hash, target stages.Target, runsOn v1.Platform, epoch time.Time) string {
	vars := map[string]string{}
	for k, v := range target.Vars {
		vars[k] = v
	}
	return cachekey.Of(keyInputs{
		Format: FormatVersion, Recipe: recipeDigest, Base: base.String(),
		Target: platform.String(target.Platform), Vars: vars,
		RunsOn: platform.String(runsOn), Epoch: epoch.Unix(),
	})
}
