package images_test

import (
	"context"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/serpent-os/serpent-oci/builder/buildertest"
	"github.com/serpent-os/serpent-oci/images"
	"github.com/serpent-os/serpent-oci/oci/packages"
	"github.com/serpent-os/serpent-oci/oci/registry"
	"github.com/serpent-os/serpent-oci/oci/store"
)

// packageRepo makes package images of the trees (name → path → content; a "depends" path
// names what the package depends on, comma-separated) for amd64 and tags their index as repo
// in st.
func packageRepo(t *testing.T, st *store.Store, repo string, pkgs map[string]map[string]string) v1.ImageIndex {
	t.Helper()
	var imgs []v1.Image
	for _, name := range slices.Sorted(maps.Keys(pkgs)) {
		dir := t.TempDir()
		var depends []string
		for p, content := range pkgs[name] {
			if p == "depends" {
				depends = strings.Split(content, ",")
				continue
			}
			f := filepath.Join(dir, p)
			if err := os.MkdirAll(filepath.Dir(f), 0o755); err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(f, []byte(content), 0o644); err != nil {
				t.Fatal(err)
			}
		}
		img, _, err := packages.Make(context.Background(), st, dir, packages.Meta{Name: name, Version: "1", Platform: amd64, Depends: depends}, packages.Options{})
		if err != nil {
			t.Fatal(err)
		}
		imgs = append(imgs, img)
	}
	idx, err := packages.Index(imgs)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := st.WriteIndex(context.Background(), idx, repo); err != nil {
		t.Fatal(err)
	}
	return idx
}

func historyOf(t *testing.T, img v1.Image) []string {
	t.Helper()
	cfg, err := img.ConfigFile()
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, h := range cfg.History {
		out = append(out, h.CreatedBy)
	}
	return out
}

// TestSpinPackagesWithoutRoot: a packages step stacks what it names from a repository with
// what they depend on, one layer each (the package's own blob), and records them; a spin on
// that spin stacks only what it lacks; a name nothing provides and two packages holding one
// path are errors naming them; a repository in a registry is read lazily (a package the
// resolution leaves out is never fetched).
func TestSpinPackagesWithoutRoot(t *testing.T) {
	ctx := context.Background()
	r := newFakeRig(t)
	st := newStore(t)
	buildertest.Busybox(t, st, amd64)
	repo := packageRepo(t, st, "repo/packages", map[string]map[string]string{
		"lib":   {"usr/lib/lib.txt": "the library"},
		"tool":  {"usr/bin/tool": "the tool", "depends": "lib"},
		"other": {"usr/share/other/big": strings.Repeat("x", 1<<20)},
		"clash": {"usr/bin/tool": "another tool"},
	})
	def := "from: busybox\nplatforms: [linux/amd64]\nsteps:\n  - packages: [tool]\n    from: repo/packages\n  - run: echo after\n"
	opts := r.opts(st)
	results, err := images.Build(ctx, r.spin(def, ""), opts)
	if err != nil {
		t.Fatal(err)
	}
	img, _, err := st.Image(results[0].Tag)
	if err != nil {
		t.Fatal(err)
	}
	layers, _ := img.Layers()
	if len(layers) != 4 {
		t.Fatalf("%d layers, want busybox's, lib's, tool's and the run's", len(layers))
	}
	for i, name := range []string{"lib", "tool"} {
		pkgImg, err := repo.Image(mustEntry(t, repo, name).Descriptor.Digest)
		if err != nil {
			t.Fatal(err)
		}
		pl, _ := pkgImg.Layers()
		want, _ := pl[0].Digest()
		if got, _ := layers[1+i].Digest(); got != want {
			t.Errorf("layer %d is %s, want %s's own blob %s", 1+i, got, name, want)
		}
	}
	if h := historyOf(t, img); !slices.Contains(h, "serpent-oci package lib 1") || !slices.Contains(h, "serpent-oci package tool 1") {
		t.Errorf("history: %q", h)
	}
	m, _ := img.Manifest()
	if a := m.Annotations[packages.AnnotationPackages]; !strings.Contains(a, `"name":"lib"`) || !strings.Contains(a, `"name":"tool"`) || strings.Contains(a, "other") {
		t.Errorf("the spin's packages annotation: %s", a)
	}

	// Built again: the same packages, so the same key, and the run after is reused.
	again, err := images.Build(ctx, r.spin(def, ""), opts)
	if err != nil || again[0].Descriptor.Digest != results[0].Descriptor.Digest || again[0].Ran != 0 {
		t.Fatalf("rebuild: %v, %+v (first %s)", err, again, results[0].Descriptor.Digest)
	}

	// A spin on the spin: tool and lib are there, only other is stacked.
	onTop := "name: on-top\nfrom: spin\nplatforms: [linux/amd64]\nsteps:\n  - packages: [tool, other]\n    from: repo/packages\n"
	res2, err := images.Build(ctx, r.spin(onTop, ""), opts)
	if err != nil {
		t.Fatal(err)
	}
	img2, _, _ := st.Image(res2[0].Tag)
	if l2, _ := img2.Layers(); len(l2) != 5 {
		t.Errorf("the spin on the spin has %d layers, want the 4 below and other's", len(l2))
	}

	for _, c := range []struct{ name, def, want string }{
		{"a name nothing provides", "from: busybox\nplatforms: [linux/amd64]\nsteps:\n  - packages: [nothing]\n    from: repo/packages\n",
			"step 1 (" + filepath.Join(r.dir, "spin.yaml") + ":4, packages): repository repo/packages for linux/amd64: "},
		{"two packages holding one path", "from: busybox\nplatforms: [linux/amd64]\nsteps:\n  - packages: [tool, clash]\n    from: repo/packages\n",
			"paths held by two packages: /usr/bin/tool (packages "},
		{"a repository the store lacks", "from: busybox\nplatforms: [linux/amd64]\nsteps:\n  - packages: [tool]\n    from: nowhere/packages\n",
			"repository nowhere/packages: "},
	} {
		t.Run(c.name, func(t *testing.T) {
			_, err := images.Build(ctx, r.spin(c.def, ""), opts)
			if err == nil || !strings.Contains(err.Error(), c.want) {
				t.Fatalf("error %v, want %q", err, c.want)
			}
		})
	}

	// From a registry, into a store that has none of the packages: only tool and lib come.
	ref := r.addr + "/serpent/packages:1"
	rref, err := r.client.ParseReference(ref)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := r.client.Push(ctx, repo, rref, registryPushOptions(st)); err != nil {
		t.Fatal(err)
	}
	fresh := newStore(t)
	buildertest.Busybox(t, fresh, amd64)
	remoteDef := "from: busybox\nplatforms: [linux/amd64]\nsteps:\n  - packages: [tool]\n    from: " + ref + "\n"
	fo := r.opts(fresh)
	if _, err := images.Build(ctx, r.spin(remoteDef, ""), fo); err != nil {
		t.Fatal(err)
	}
	otherImg, _ := repo.Image(mustEntry(t, repo, "other").Descriptor.Digest)
	ol, _ := otherImg.Layers()
	od, _ := ol[0].Digest()
	if fresh.HasBlob(od) {
		t.Errorf("the store fetched other's layer, which the resolution left out")
	}
	toolImg, _ := repo.Image(mustEntry(t, repo, "tool").Descriptor.Digest)
	tl, _ := toolImg.Layers()
	if td, _ := tl[0].Digest(); !fresh.HasBlob(td) {
		t.Errorf("the store lacks tool's layer after stacking it")
	}
}

func mustEntry(t *testing.T, idx v1.ImageIndex, name string) packages.Entry {
	t.Helper()
	es, err := packages.Entries(idx)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range es {
		if e.Name == name {
			return e
		}
	}
	t.Fatalf("no package %s", name)
	return packages.Entry{}
}

func registryPushOptions(st *store.Store) registry.PushOptions {
	return registry.PushOptions{Store: st}
}
