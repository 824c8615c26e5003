package images_test

import (
	"archive/tar"
	"context"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/serpent-os/serpent-oci/builder/buildertest"
	"github.com/serpent-os/serpent-oci/images"
	"github.com/serpent-os/serpent-oci/oci/platform"
)

// fakeSpinDef has a step of every kind, as spinDef, with the copies owned by whoever runs the
// test (only root may give a file to another owner).
var fakeSpinDef = strings.NewReplacer(
	`"1000:1001"`, fmt.Sprintf(`"%d:%d"`, os.Getuid(), os.Getgid()),
	"to: /opt/tree\n", fmt.Sprintf("to: /opt/tree\n    owner: \"%d:%d\"\n", os.Getuid(), os.Getgid()),
).Replace(spinDef)

// layerEntries are a layer's entries as "path mode uid:gid [content]", in layer order.
func layerEntries(t *testing.T, l v1.Layer) []string {
	t.Helper()
	rc, err := l.Uncompressed()
	if err != nil {
		t.Fatal(err)
	}
	defer rc.Close()
	var out []string
	tr := tar.NewReader(rc)
	for {
		h, err := tr.Next()
		if err == io.EOF {
			return out
		}
		if err != nil {
			t.Fatal(err)
		}
		e := fmt.Sprintf("%s %o %d:%d", h.Name, h.Mode&0o7777, h.Uid, h.Gid)
		if h.Typeflag == tar.TypeReg {
			b, _ := io.ReadAll(tr)
			e += " " + strings.TrimSpace(string(b))
		}
		out = append(out, e)
	}
}

// The spin's whole life with the fake executor: each step's layer, the config, reuse, a
// changed file, push and pull back.
func TestSpinWithoutRoot(t *testing.T) {
	ctx := context.Background()
	r := newFakeRig(t)
	base := r.addr + "/serpent/base:1"
	r.pushBusybox(base)
	s := r.spin(fakeSpinDef, base)
	st := newStore(t)
	fake := buildertest.NewFake(st)
	opts := r.opts(st)
	opts.Runner = fake
	results, err := images.Build(ctx, s, opts)
	if err != nil {
		t.Fatal(err)
	}
	if len(results) != 2 {
		t.Fatalf("%d results", len(results))
	}
	if got, want := fake.Runs(), []string{"spin-1", "spin-2", "spin-3", "spin-1", "spin-2", "spin-3"}; !slices.Equal(got, want) {
		t.Errorf("runs %v, want %v", got, want)
	}
	owner := fmt.Sprintf("%d:%d", os.Getuid(), os.Getgid())
	for _, res := range results {
		p := platform.String(res.Platform)
		img, d, err := st.Image(res.Tag)
		if err != nil {
			t.Fatal(err)
		}
		if d.Digest != res.Descriptor.Digest || res.Ran != 3 || res.Reused != 0 {
			t.Errorf("%s: tagged %s, result %+v", p, d.Digest, res)
		}
		layers, err := img.Layers()
		if err != nil || len(layers) != 4 {
			t.Fatalf("%s: %d layers (%v), want the base's and one per copy or run step", p, len(layers), err)
		}
		// The copies' layers hold the files as the definition says (mode, owner, the tree
		// under its destination), and nothing else of the base.
		if got, want := layerEntries(t, layers[1]), []string{"etc/ 755 0:0", "etc/motd 600 " + owner + " welcome to the spin"}; !slices.Equal(got[1:], want[1:]) {
			t.Errorf("%s: first copy's layer %q, want %q", p, got, want)
		}
		got := strings.Join(layerEntries(t, layers[2]), "\n")
		for _, want := range []string{"opt/tree/a.txt 644 " + owner + " a", "opt/tree/sub/b.txt 644 " + owner + " b"} {
			if !strings.Contains(got, want) {
				t.Errorf("%s: second copy's layer lacks %q:\n%s", p, want, got)
			}
		}
		if got := strings.Join(layerEntries(t, layers[3]), "\n"); !strings.Contains(got, "fake-run/spin-3 644 ") {
			t.Errorf("%s: the run step's layer:\n%s", p, got)
		}
		cfg, err := img.ConfigFile()
		if err != nil {
			t.Fatal(err)
		}
		if cfg.Architecture != res.Platform.Architecture || cfg.Config.WorkingDir != "/opt/tree" ||
			!slices.Contains(cfg.Config.Env, "SPIN_VAR=from-the-env-step") || strings.Join(cfg.Config.Entrypoint, " ") != "/bin/sh -c" ||
			strings.Join(cfg.Config.Cmd, " ") != "echo default command" || cfg.Config.Labels["org.example.spin"] != "yes" {
			t.Errorf("%s: config %+v", p, cfg.Config)
		}
		m, _ := img.Manifest()
		if m.Annotations[images.AnnotationSpin] != "spin" || m.Annotations[images.AnnotationSteps] == "" {
			t.Errorf("%s: annotations %v", p, m.Annotations)
		}
	}

	// Nothing changed: every step reused, the same images, nothing run.
	again, err := images.Build(ctx, s, opts)
	if err != nil {
		t.Fatal(err)
	}
	for i, res := range again {
		if res.Ran != 0 || res.Reused != 3 || res.Descriptor.Digest != results[i].Descriptor.Digest {
			t.Errorf("%s rebuilt: ran %d, reused %d, %s (was %s)", platform.String(res.Platform), res.Ran, res.Reused, res.Descriptor.Digest, results[i].Descriptor.Digest)
		}
	}
	if n := len(fake.Runs()); n != 6 {
		t.Errorf("%d runs after a build that changed nothing, want the first build's 6", n)
	}
	// A changed file in the second copy: that step and the run after it again, the first kept.
	r.write("files/tree/a.txt", "a, changed\n")
	s = r.spin(fakeSpinDef, base)
	third, err := images.Build(ctx, s, images.Options{Store: st, Runner: fake, Registry: r.client, Platforms: []v1.Platform{arm64}})
	if err != nil {
		t.Fatal(err)
	}
	if third[0].Ran != 2 || third[0].Reused != 1 || third[0].Descriptor.Digest == results[1].Descriptor.Digest {
		t.Errorf("after changing a copied file: ran %d, reused %d, %s; want 2, 1 and another image", third[0].Ran, third[0].Reused, third[0].Descriptor.Digest)
	}

	// Push the spin and pull it back, each platform as built; the base's layers are mounted.
	dst, err := r.client.ParseReference(r.addr + "/serpent/spin:1")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := images.Push(ctx, opts, results, dst); err != nil {
		t.Fatal(err)
	}
	back := newStore(t)
	for _, res := range results {
		d, err := r.client.Pull(ctx, back, dst, res.Platform, "spin")
		if err != nil {
			t.Fatal(err)
		}
		if d.Digest != res.Descriptor.Digest {
			t.Errorf("%s: pulled %s, pushed %s", platform.String(res.Platform), d.Digest, res.Descriptor.Digest)
		}
	}
}

// A copy step's source may not lead out of the spin's directory through a symlink: refused
// when the definition is loaded, and when the symlink appears only after (the copy reads the
// directory as a root).
func TestSpinCopyStaysInItsDirectoryWithoutRoot(t *testing.T) {
	ctx := context.Background()
	r := newFakeRig(t)
	base := r.addr + "/serpent/base:1"
	r.pushBusybox(base)
	outside := t.TempDir()
	if err := os.WriteFile(filepath.Join(outside, "secret"), []byte("secret\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	r.write("files/escape/secret", "harmless\n")
	def := fmt.Sprintf("from: %s\nplatforms: [linux/arm64]\nsteps:\n  - copy: files/escape/secret\n    to: /etc/secret\n    owner: \"%d:%d\"\n", base, os.Getuid(), os.Getgid())
	r.write("spin.yaml", def)
	file := filepath.Join(r.dir, "spin.yaml")
	s, err := images.Load(file)
	if err != nil {
		t.Fatal(err)
	}
	escape := filepath.Join(r.dir, "files", "escape")
	if err := os.RemoveAll(escape); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(outside, escape); err != nil {
		t.Fatal(err)
	}
	if _, err := images.Load(file); err == nil || !strings.Contains(err.Error(), file+":4: steps[0].copy: files/escape/secret: a symlink on the way leads out of the spin's directory") {
		t.Errorf("load with the symlink: %v", err)
	}
	st := newStore(t)
	if _, err := images.Build(ctx, s, r.opts(st)); err == nil || !strings.Contains(err.Error(), "spin spin for linux/arm64: step 1 ("+file+":4, copy)") ||
		!strings.Contains(err.Error(), "a symlink on the way leads out of the spin's directory") {
		t.Fatalf("a copy through a symlink that appeared after loading: %v", err)
	}
	if tags, _ := st.Tags(); len(tags) != 0 {
		t.Errorf("tags after the refused copy: %v", tags)
	}
}
