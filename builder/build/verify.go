package build

import (
	"context"
	"fmt"
	"io"
	"maps"
	"os"
	"slices"
	"strings"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/serpent-os/serpent-oci/oci/layer"
	"github.com/serpent-os/serpent-oci/oci/platform"
	"github.com/serpent-os/serpent-oci/oci/store"
)

// Verification is a stage rebuilt and compared with the image the store has for it.
type Verification struct {
	Step        *Step
	Want, Got   v1.Descriptor // the store's image, the rebuild
	Differences []layer.Difference
	// Metadata lists what differs outside the layers: config, annotations.
	Metadata []string
	// SameLayers: every layer is the same blob, only the config or manifest differs.
	SameLayers bool
	// Packages, of a host-packages stage (the seed), are the Debian packages whose versions
	// differ between the two images: what explains the difference, when the archive moved.
	Packages []PackageChange
}

// PackageChange is a package installed in one image at Want and in the other at Got ("" where
// it is not installed).
type PackageChange struct{ Name, Want, Got string }

func (c PackageChange) String() string {
	switch {
	case c.Want == "":
		return c.Name + " " + c.Got + " (only in the other)"
	case c.Got == "":
		return c.Name + " " + c.Want + " (only in this one)"
	}
	return c.Name + " " + c.Want + " -> " + c.Got
}

// packageChanges lists the packages whose version (or architecture) differ between two
// AnnotationInstalled values, by name.
func packageChanges(want, got string) []PackageChange {
	version := func(ps []DebianPackage) map[string]string {
		m := map[string]string{}
		for _, p := range ps {
			m[p.Name] = p.Version
			if p.Arch != "" && p.Arch != "all" {
				m[p.Name] += " (" + p.Arch + ")"
			}
		}
		return m
	}
	w, g := version(parseInstalled(want)), version(parseInstalled(got))
	names := slices.Sorted(maps.Keys(w))
	for n := range g {
		if _, ok := w[n]; !ok {
			names = append(names, n)
		}
	}
	slices.Sort(names)
	var out []PackageChange
	for _, n := range names {
		if w[n] != g[n] {
			out = append(out, PackageChange{Name: n, Want: w[n], Got: g[n]})
		}
	}
	return out
}

// Reproducible reports whether the rebuild is the same image.
func (v Verification) Reproducible() bool { return v.Want.Digest == v.Got.Digest }

// Verify rebuilds target for every platform of opts in a scratch store and compares each
// rebuild with the image the store has (which must be up to date with its recipe: plan would
// reuse it). Without deep, the rebuild runs on the store's own base image; with deep, every
// stage of the chain is rebuilt, each on the rebuild before it. The scratch store is removed
// afterwards. A difference is not an error: it is in the result, listed by path.
func Verify(ctx context.Context, opts Options, target string, deep bool) ([]Verification, error) {
	g, err := Plan(ctx, opts.PlanOptions, target)
	if err != nil {
		return nil, err
	}
	planned := g.Steps()
	byVertex := map[*Vertex]*Step{}
	for i := range planned {
		byVertex[planned[i].Vertex] = &planned[i]
	}
	for i := range planned {
		s := &planned[i]
		if !deep && s.Name() != target {
			continue
		}
		switch {
		case s.Action == Resolve:
			return nil, fmt.Errorf("verify --deep: %s for %s is not in the store, only resolved from a cache (%s): build %s without --deep, or pull it", s.Name(), platform.String(s.Target.Platform), s.Reason, target)
		case s.Action != Reuse:
			return nil, fmt.Errorf("verify: %s for %s is not built from its current recipe (%s): build it first", s.Name(), platform.String(s.Target.Platform), s.Reason)
		}
		if b := byVertex[s.BaseVertex()]; !deep && b != nil && b.Action == Resolve {
			// The rebuild runs on it: fetch it from where it was resolved.
			if err := b.needImage(ctx, opts.PlanOptions); err != nil {
				return nil, err
			}
			s.BaseImage = b.Cached
		}
	}
	dir, err := opts.Store.TempDir("verify")
	if err != nil {
		return nil, err
	}
	defer os.RemoveAll(dir)
	scratch, err := store.Open(ctx, dir)
	if err != nil {
		return nil, err
	}
	runner, err := opts.Runner.On(scratch) // the same options: provider, binfmt_misc, console
	if err != nil {
		return nil, err
	}
	sopts := opts
	sopts.Store, sopts.Runner, sopts.CacheTo = scratch, runner, nil
	sopts.PlanOptions.Store = scratch
	var rebuild []Step // the verification's own decisions: rebuild each stage it checks
	for _, s := range planned {
		if deep || s.Name() == target {
			s.Action, s.Reason = Build, "verify --rebuild"
			rebuild = append(rebuild, s)
		}
	}
	paths, err := fetchSources(ctx, opts.Sources, rebuild)
	if err != nil {
		return nil, err
	}
	var out []Verification
	got := map[*Vertex]v1.Descriptor{} // with deep: each stage's rebuild, for the stages on it
	for _, s := range rebuild {
		r := s // what runs: with deep, on the rebuild of its base
		if prev, ok := got[r.BaseVertex()]; deep && ok {
			img, err := scratch.ImageByDigest(prev)
			if err != nil {
				return out, err
			}
			r.BaseImage, r.BaseDigest = img, prev.Digest
			if err := r.onPackages(ctx, sopts.PlanOptions); err != nil {
				return out, err
			}
			r.Key = stepKey(&r, opts.Epoch)
		}
		res, err := runStep(ctx, sopts, &r, paths)
		if err != nil {
			return out, err
		}
		v := Verification{Step: &s, Want: *s.Existing, Got: res.Descriptor}
		if !v.Reproducible() {
			if err := compare(opts.Store, scratch, &v); err != nil {
				return out, err
			}
		}
		out = append(out, v)
		got[s.Vertex] = res.Descriptor
	}
	return out, nil
}

// Compare compares target's images (with deep, every stage of its chain) in the store of
// opts with those tagged alike in other: two builds made apart, as `make repro` does.
func Compare(ctx context.Context, opts PlanOptions, target string, deep bool, other *store.Store) ([]Verification, error) {
	g, err := Plan(ctx, opts, target)
	if err != nil {
		return nil, err
	}
	var out []Verification
	for _, s := range g.Steps() {
		if !deep && s.Name() != target {
			continue
		}
		if s.Existing == nil {
			return out, fmt.Errorf("compare: the store has no %s", s.Tag)
		}
		d, err := other.Resolve(s.Tag)
		if err != nil {
			return out, fmt.Errorf("compare: %s: %w", other.Dir(), err)
		}
		v := Verification{Step: &s, Want: *s.Existing, Got: d}
		if !v.Reproducible() {
			if err := compare(opts.Store, other, &v); err != nil {
				return out, err
			}
		}
		out = append(out, v)
	}
	return out, nil
}

// compare fills v with what differs between the store's image and the rebuild: the layers
// the stage made (those after its base's), entry by entry, then config and annotations.
func compare(st, scratch *store.Store, v *Verification) error {
	want, err := st.ImageByDigest(v.Want)
	if err != nil {
		return err
	}
	got, err := scratch.ImageByDigest(v.Got)
	if err != nil {
		return err
	}
	wl, err := want.Layers()
	if err != nil {
		return err
	}
	gl, err := got.Layers()
	if err != nil {
		return err
	}
	if len(wl) != len(gl) {
		v.Metadata = append(v.Metadata, fmt.Sprintf("%d layers, rebuilt %d", len(wl), len(gl)))
	}
	sameLayers := len(wl) == len(gl)
	for i := 0; i < len(wl) && i < len(gl); i++ {
		dw, _ := wl[i].Digest()
		dg, _ := gl[i].Digest()
		if dw == dg {
			continue
		}
		sameLayers = false
		diffs, err := diffLayers(wl[i], gl[i])
		if err != nil {
			return fmt.Errorf("compare layer %d: %w", i, err)
		}
		if len(diffs) == 0 {
			v.Metadata = append(v.Metadata, fmt.Sprintf("layer %d: same entries, other bytes (order or compression)", i))
		}
		v.Differences = append(v.Differences, diffs...)
	}
	v.SameLayers = sameLayers
	wm, _ := want.Manifest()
	gm, _ := got.Manifest()
	keys := maps.Clone(wm.Annotations)
	if keys == nil {
		keys = map[string]string{}
	}
	maps.Copy(keys, gm.Annotations)
	for _, k := range slices.Sorted(maps.Keys(keys)) {
		if wm.Annotations[k] != gm.Annotations[k] {
			v.Metadata = append(v.Metadata, "annotation "+k)
		}
	}
	if wi, gi := wm.Annotations[AnnotationInstalled], gm.Annotations[AnnotationInstalled]; wi != gi {
		v.Packages = packageChanges(wi, gi)
	}
	wc, _ := want.RawConfigFile()
	gc, _ := got.RawConfigFile()
	if string(wc) != string(gc) {
		v.Metadata = append(v.Metadata, "image config")
	}
	return nil
}

func diffLayers(a, b v1.Layer) ([]layer.Difference, error) {
	ra, err := a.Uncompressed()
	if err != nil {
		return nil, err
	}
	defer ra.Close()
	rb, err := b.Uncompressed()
	if err != nil {
		return nil, err
	}
	defer rb.Close()
	return layer.Diff(ra, rb)
}

// Report prints a verification in lines: the stage, whether it is reproducible, and what
// differs.
func (v Verification) Report(w io.Writer) {
	name := v.Step.Name() + " for " + platform.String(v.Step.Target.Platform)
	if v.Step.Accelerated() {
		// The rebuild ran with an accelerator: the question is whether it made the emulated
		// build's image (issue 17), and the answer names what it ran with.
		accel := "accelerated by " + v.Step.AcceleratorInput.Name()
		if v.Reproducible() {
			fmt.Fprintf(w, "%s: reproducible, %s: the accelerated rebuild is the store's image, %s\n", name, accel, v.Got.Digest)
			return
		}
		fmt.Fprintf(w, "%s: NOT reproducible, %s: the store's image is %s, the accelerated rebuild %s\n", name, accel, v.Want.Digest, v.Got.Digest)
	} else if v.Reproducible() {
		fmt.Fprintf(w, "%s: reproducible: both builds are %s\n", name, v.Got.Digest)
		return
	} else {
		fmt.Fprintf(w, "%s: NOT reproducible: one build is %s, the other %s\n", name, v.Want.Digest, v.Got.Digest)
	}
	if len(v.Packages) > 0 {
		// The archive moved between the two builds: that is the difference to read first.
		fmt.Fprintf(w, "  %d Debian packages differ (the archive served other versions):\n", len(v.Packages))
		for _, c := range v.Packages {
			fmt.Fprintf(w, "    %s\n", c)
		}
	}
	for _, d := range v.Differences {
		fmt.Fprintf(w, "  %s\n", d)
	}
	switch {
	case v.SameLayers:
		fmt.Fprintf(w, "  every layer is identical; what differs: %s\n", strings.Join(v.Metadata, "; "))
	case len(v.Metadata) > 0:
		fmt.Fprintf(w, "  also differs: %s\n", strings.Join(v.Metadata, "; "))
	}
}
