package build

import (
	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/serpent-os/serpent-oci/builder/baseimage"
	"github.com/serpent-os/serpent-oci/oci/store"
	"github.com/serpent-os/serpent-oci/stages"
)

// A plan is a graph: a vertex per image the build needs (one stage for one target platform),
// with its inputs as edges to the vertices that make them or to images found as they are, and
// beside each vertex the decision of what to do with it (reuse, pull, resolve, build). Plan
// makes the graph and every decision it can; neither changes afterwards. A build keeps what it
// makes beside the graph, by vertex, and decides a vertex whose base it rebuilds once that
// base is made (its key is the base's digest's), never before and never twice.

// Vertex is one image of a plan: a stage for one target platform, and its inputs. A stage's
// other inputs (its sources and cache mounts) are its recipe's.
type Vertex struct {
	Recipe       *stages.Recipe
	Target       stages.Target // the target platform and its variables
	RunsOn       v1.Platform   // the platform the stage's container runs on
	Output       v1.Platform   // the platform of the image it makes
	Tag          store.Ref     // where the image is tagged
	RecipeDigest string
	// BaseInput is the image the stage runs on: made by another vertex, or found as it is
	// (in the store or a registry); neither for a stage made from host packages. A stage on
	// packages:STAGE runs on the root assembled from its base vertex's packages.
	BaseInput Input
	// AcceleratorInput, when set, is the accelerator mounted read-only at AcceleratorDir into
	// the stage's run when it is built (PlanOptions.Accelerator): found in the store or a
	// registry, or made by a vertex of the plan before this one (BuildAccelerator).
	AcceleratorInput *Input
}

// Name is the stage's name.
func (v *Vertex) Name() string { return v.Recipe.Name }

// BaseVertex is the vertex that makes the stage's base image, nil when the base is an image found
// as it is or host packages.
func (v *Vertex) BaseVertex() *Vertex { return v.BaseInput.Vertex }

// Input is an edge of the graph: an image a vertex takes, made by another vertex of the plan
// (Vertex) or found as it is (Found).
type Input struct {
	Vertex *Vertex
	Found  *baseimage.Found
}

// Name says which image the input is, for people: the tag its vertex makes, or the name it
// was found by.
func (in *Input) Name() string {
	switch {
	case in == nil:
		return ""
	case in.Vertex != nil:
		return in.Vertex.Tag.String()
	case in.Found != nil:
		return in.Found.Name
	}
	return ""
}

// Decision is what a build does with a vertex, and what that decision was made on.
type Decision struct {
	Action Action
	Reason string
	Key    string // "" while the base is still to be built

	Base       string   // how the base is named, for people
	BaseImage  v1.Image // the base, when it is known (an image, or a stage reused)
	BaseDigest v1.Hash  // zero while the base stage is still to be built
	// basePackages, for a stage on packages:STAGE, are the package images its base root
	// was assembled from.
	basePackages []v1.Image

	Existing     *v1.Descriptor // what the tag points at now, if anything
	Cached       v1.Image       // with Pull: the image in the cache, read lazily
	CachedRef    name.Reference // with Pull and Resolve: where
	CachedDigest v1.Hash        // with Pull and Resolve: its manifest's digest
	// Download is, with Pull, the bytes its pull fetches: the manifest, and the config and
	// layers the store lacks.
	Download int64
}

// Step is a vertex with its decision: a line of `plan`, and what a build runs. Steps are
// values: a build's copy of one is its own, the plan's stays as it was.
type Step struct {
	*Vertex
	Decision
	// accelerator is the accelerator image the step mounts when it is built: the one found
	// (AcceleratorInput.Found), or the one its vertex made, once made.
	accelerator *baseimage.Found
}

// Accelerated says whether the step runs with an accelerator: it has one and is built. A
// step reused, pulled or resolved runs nothing, and its SBOM names no accelerator.
func (s *Step) Accelerated() bool { return s.AcceleratorInput != nil && s.Action == Build }

// Accelerator is the accelerator the step is built with, nil while the vertex that makes it
// is still to run (or when it has none).
func (s *Step) Accelerator() *baseimage.Found { return s.accelerator }

// Graph is a plan: its vertices in build order (every vertex after its inputs) and the
// decision for each.
type Graph struct {
	vertices  []*Vertex
	decisions map[*Vertex]Decision
}

// Steps lists the plan's vertices in build order with their decisions, as copies.
func (g *Graph) Steps() []Step {
	out := make([]Step, 0, len(g.vertices))
	for _, v := range g.vertices {
		out = append(out, g.step(v))
	}
	return out
}

func (g *Graph) step(v *Vertex) Step {
	s := Step{Vertex: v, Decision: g.decisions[v]}
	if in := v.AcceleratorInput; in != nil {
		s.accelerator = in.Found
	}
	return s
}
