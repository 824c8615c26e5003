package images_test

import (
	"context"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/authn"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
	"github.com/serpent-os/serpent-oci/builder"
	"github.com/serpent-os/serpent-oci/builder/buildertest"
	"github.com/serpent-os/serpent-oci/images"
	"github.com/serpent-os/serpent-oci/oci/image"
	"github.com/serpent-os/serpent-oci/oci/platform"
	"github.com/serpent-os/serpent-oci/oci/registry"
	"github.com/serpent-os/serpent-oci/oci/registry/registrytest"
	"github.com/serpent-os/serpent-oci/oci/store"
	"github.com/serpent-os/serpent-oci/oci/testenv"
	"github.com/serpent-os/serpent-oci/stages"
)

var (
	amd64 = platform.MustParse("linux/amd64")
	arm64 = platform.MustParse("linux/arm64")
)

// spinDef is a definition with a step of every kind, each leaving a trace a command can see.
const spinDef = `description: every kind of step
from: BASE
platforms: [linux/amd64, linux/arm64]
steps:
  - copy: files/motd
    to: /etc/motd
    mode: "0600"
    owner: "1000:1001"
  - copy: files/tree
    to: /opt/tree
  - run: |
      uname -m > /etc/spin-machine
      cat /etc/motd > /etc/spin-saw-motd
  - env:
      SPIN_VAR: from-the-env-step
  - workdir: /opt/tree
  - entrypoint: [/bin/sh, -c]
  - cmd: ["echo default command"]
  - labels:
      org.example.spin: "yes"
`

type rig struct {
	t      *testing.T
	reg    *registrytest.Distribution // nil in a fake rig
	addr   string                     // the registry's host:port
	client *registry.Client
	dir    string // the definition's directory
	fake   bool   // runs are a buildertest.FakeExecutor's
}

// newRig is a rig with a real registry (docker-registry, with TLS and a password) and runc.
func newRig(t *testing.T) *rig {
	buildertest.RequireRunc(t)
	d := registrytest.StartDistribution(t)
	t.Setenv("DOCKER_CONFIG", t.TempDir())
	c := registry.New(registry.Options{Transport: d.Transport()})
	if _, err := c.Login(context.Background(), d.Addr, d.User, d.Password); err != nil {
		t.Fatal(err)
	}
	return newRigWith(t, d, d.Addr, c, false)
}

// newFakeRig is a rig with an in-memory registry and the fake executor: no root, runc or
// registry server.
func newFakeRig(t *testing.T) *rig {
	host := registrytest.InMemory(t, nil)
	return newRigWith(t, nil, host, registry.New(registry.Options{Keychain: authn.NewMultiKeychain()}), true)
}

func newRigWith(t *testing.T, d *registrytest.Distribution, addr string, c *registry.Client, fake bool) *rig {
	r := &rig{t: t, reg: d, addr: addr, client: c, dir: t.TempDir(), fake: fake}
	r.write("files/motd", "welcome to the spin\n")
	r.write("files/tree/a.txt", "a\n")
	r.write("files/tree/sub/b.txt", "b\n")
	return r
}

func (r *rig) write(rel, content string) {
	p := filepath.Join(r.dir, rel)
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		r.t.Fatal(err)
	}
	if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
		r.t.Fatal(err)
	}
}

func (r *rig) spin(def, from string) *images.Spin {
	r.t.Helper()
	file := filepath.Join(r.dir, "spin.yaml")
	r.write("spin.yaml", strings.Replace(def, "BASE", from, 1))
	s, err := images.Load(file)
	if err != nil {
		r.t.Fatal(err)
	}
	return s
}

func (r *rig) opts(st *store.Store) images.Options {
	r.t.Helper()
	if r.fake {
		return images.Options{Store: st, Runner: buildertest.NewFake(st), Registry: r.client}
	}
	runner, err := builder.NewRunner(st, builder.WithConsole(&strings.Builder{}))
	if err != nil {
		r.t.Fatal(err)
	}
	return images.Options{Store: st, Runner: runner, Registry: r.client}
}

func newStore(t *testing.T) *store.Store {
	t.Helper()
	st, err := store.Open(context.Background(), t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	return st
}

// pushBusybox pushes busybox images of both platforms, as one index, to ref.
func (r *rig) pushBusybox(ref string) {
	r.t.Helper()
	st := newStore(r.t)
	var imgs []v1.Image
	for _, p := range []v1.Platform{amd64, arm64} {
		img, _ := buildertest.Busybox(r.t, st, p)
		imgs = append(imgs, img)
	}
	dst, err := r.client.ParseReference(ref)
	if err != nil {
		r.t.Fatal(err)
	}
	if _, err := r.client.PushImages(context.Background(), imgs, nil, dst, registry.PushOptions{}); err != nil {
		r.t.Fatal(err)
	}
}

// inside runs a shell command in the image tagged ref of st and returns its output.
func inside(t *testing.T, st *store.Store, ref store.Ref, cmd string) string {
	t.Helper()
	img, _, err := st.Image(ref)
	if err != nil {
		t.Fatal(err)
	}
	runner, err := builder.NewRunner(st, builder.WithConsole(&strings.Builder{}))
	if err != nil {
		t.Fatal(err)
	}
	res, err := runner.Run(context.Background(), builder.RunOptions{Name: "check", Base: img, Platform: *ref.Platform, Process: builder.Process{Args: []string{"/bin/sh", "-c", cmd}}})
	if err != nil {
		t.Fatal(err)
	}
	out, err := os.ReadFile(res.Log)
	if err != nil {
		t.Fatal(err)
	}
	return string(out)
}

func TestSpinOnARegistryBase(t *testing.T) {
	ctx := context.Background()
	r := newRig(t)
	base := r.addr + "/serpent/base:1"
	r.pushBusybox(base)
	s := r.spin(spinDef, base)

	st := newStore(t)
	opts := r.opts(st)
	// gc waits while a spin builds: its steps' layers are not tagged until the end.
	var gcErr error
	gcTried := false
	opts.Events = func(images.Event) {
		if !gcTried {
			gcTried = true
			gctx, cancel := context.WithTimeout(ctx, 200*time.Millisecond)
			defer cancel()
			_, gcErr = st.GC(gctx)
		}
	}
	results, err := images.Build(ctx, s, opts)
	if err != nil {
		t.Fatal(err)
	}
	if !gcTried || !errors.Is(gcErr, context.DeadlineExceeded) {
		t.Errorf("gc during a spin build: %v, want it to wait", gcErr)
	}
	opts.Events = nil
	if len(results) != 2 {
		t.Fatalf("%d results", len(results))
	}
	for _, res := range results {
		p := res.Platform
		out := inside(t, st, res.Tag, `stat -c '%a %u:%g' /etc/motd; cat /etc/spin-machine /etc/spin-saw-motd /opt/tree/a.txt /opt/tree/sub/b.txt; echo "$SPIN_VAR"; pwd`)
		machine := map[string]string{"amd64": "x86_64", "arm64": "aarch64"}[p.Architecture]
		want := "600 1000:1001\n" + machine + "\nwelcome to the spin\na\nb\nfrom-the-env-step\n/opt/tree\n"
		if out != want {
			t.Errorf("%s: inside the spin:\n%s\nwant:\n%s", platform.String(p), out, want)
		}
		img, _, err := st.Image(res.Tag)
		if err != nil {
			t.Fatal(err)
		}
		m, _ := img.Manifest()
		cfg, _ := img.ConfigFile()
		if m.Annotations[ocispec.AnnotationBaseImageName] != base || m.Annotations[ocispec.AnnotationBaseImageDigest] != res.BaseDigest.String() {
			t.Errorf("%s: base annotations %v", platform.String(p), m.Annotations)
		}
		if strings.Join(cfg.Config.Entrypoint, " ") != "/bin/sh -c" || strings.Join(cfg.Config.Cmd, " ") != "echo default command" || cfg.Config.Labels["org.example.spin"] != "yes" {
			t.Errorf("%s: config %+v", platform.String(p), cfg.Config)
		}
		var spinHistory []string
		for _, h := range cfg.History {
			if strings.HasPrefix(h.CreatedBy, "serpent-oci spin spin, step ") {
				spinHistory = append(spinHistory, h.CreatedBy)
			}
		}
		if len(spinHistory) != 8 {
			t.Errorf("%s: %d history entries of spin steps, want 8: %q", platform.String(p), len(spinHistory), spinHistory)
		}
		if layers, _ := img.Layers(); len(layers) != 1+3 {
			t.Errorf("%s: %d layers, want the base's one and one per copy or run step", platform.String(p), len(layers))
		}
	}

	// Nothing changed: every step reused, the same images.
	again, err := images.Build(ctx, s, opts)
	if err != nil {
		t.Fatal(err)
	}
	for i, res := range again {
		if res.Ran != 0 || res.Reused != 3 || res.Descriptor.Digest != results[i].Descriptor.Digest {
			t.Errorf("%s rebuilt: ran %d, reused %d, %s (was %s)", platform.String(res.Platform), res.Ran, res.Reused, res.Descriptor.Digest, results[i].Descriptor.Digest)
		}
	}
	// A changed file in the second copy: that step and the run after it again, the first kept.
	r.write("files/tree/a.txt", "a, changed\n")
	s = r.spin(spinDef, base)
	third, err := images.Build(ctx, s, images.Options{Store: st, Runner: opts.Runner, Registry: r.client, Platforms: []v1.Platform{arm64}})
	if err != nil {
		t.Fatal(err)
	}
	if third[0].Ran != 2 || third[0].Reused != 1 {
		t.Errorf("after changing a copied file: ran %d, reused %d; want 2 and 1", third[0].Ran, third[0].Reused)
	}

	// The base tag moves: without --pull the recorded digest stays, with it the new one.
	oldBase := results[1].BaseDigest
	r.pushBusyboxWithExtra(base)
	kept, err := images.Build(ctx, s, images.Options{Store: st, Runner: opts.Runner, Registry: r.client, Platforms: []v1.Platform{arm64}})
	if err != nil {
		t.Fatal(err)
	}
	if kept[0].BaseDigest != oldBase || kept[0].Ran != 0 {
		t.Errorf("without --pull: base %s (was %s), ran %d", kept[0].BaseDigest, oldBase, kept[0].Ran)
	}
	pulled, err := images.Build(ctx, s, images.Options{Store: st, Runner: opts.Runner, Registry: r.client, Platforms: []v1.Platform{arm64}, Pull: true})
	if err != nil {
		t.Fatal(err)
	}
	if pulled[0].BaseDigest == oldBase || pulled[0].Ran != 3 {
		t.Errorf("with --pull: base %s (old %s), ran %d", pulled[0].BaseDigest, oldBase, pulled[0].Ran)
	}

	// Push the spin and pull it back, each platform as built.
	dst, _ := r.client.ParseReference(r.addr + "/serpent/spin:1")
	pushed, err := images.Push(ctx, opts, results, dst)
	if err != nil {
		t.Fatal(err)
	}
	// The base's layers are mounted from its repository: what goes over the wire is the
	// spin's own small layers and configs.
	if pushed.Uploaded > 64<<10 {
		t.Errorf("the spin's push uploaded %d bytes: the base layers were not mounted", pushed.Uploaded)
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

// pushBusyboxWithExtra pushes, to ref, busybox images with one more file than pushBusybox's.
func (r *rig) pushBusyboxWithExtra(ref string) {
	r.t.Helper()
	st := newStore(r.t)
	var imgs []v1.Image
	for _, p := range []v1.Platform{amd64, arm64} {
		dir := filepath.Join(r.t.TempDir(), "rootfs")
		buildertest.BusyboxRootfs(r.t, p, dir)
		if err := os.WriteFile(filepath.Join(dir, "etc", "extra"), []byte("new base\n"), 0o644); err != nil {
			r.t.Fatal(err)
		}
		tag := store.Ref{Name: "bb"}.WithPlatform(&p)
		if _, err := image.Import(context.Background(), st, dir, tag, image.ImportOptions{Platform: p}); err != nil {
			r.t.Fatal(err)
		}
		img, _, _ := st.Image(tag)
		imgs = append(imgs, img)
	}
	dst, _ := r.client.ParseReference(ref)
	if _, err := r.client.PushImages(context.Background(), imgs, nil, dst, registry.PushOptions{}); err != nil {
		r.t.Fatal(err)
	}
}

func TestSpinOnABaseSerpentOCIDidNotBuild(t *testing.T) {
	testenv.RequireTools(t, "umoci", "skopeo")
	ctx := context.Background()
	r := newRig(t)
	// umoci makes the image from a rootfs, skopeo copies it to the registry.
	rootfs := filepath.Join(t.TempDir(), "rootfs")
	buildertest.BusyboxRootfs(t, amd64, rootfs)
	layout := filepath.Join(t.TempDir(), "layout")
	ref := r.addr + "/foreign/busybox:umoci"
	for _, args := range [][]string{
		{"umoci", "init", "--layout", layout},
		{"umoci", "new", "--image", layout + ":bb"},
		{"umoci", "insert", "--image", layout + ":bb", rootfs, "/"},
		{"skopeo", "copy", "-q", "--dest-cert-dir", r.reg.CertDir, "--dest-creds", r.reg.User + ":" + r.reg.Password, "oci:" + layout + ":bb", "docker://" + ref},
	} {
		if out, err := exec.Command(args[0], args[1:]...).CombinedOutput(); err != nil {
			t.Fatalf("%v: %v\n%s", args, err, out)
		}
	}
	s := r.spin(spinDef, ref)
	st := newStore(t)
	results, err := images.Build(ctx, s, images.Options{Store: st, Runner: r.opts(st).Runner, Registry: r.client, Platforms: []v1.Platform{amd64}})
	if err != nil {
		t.Fatal(err)
	}
	out := inside(t, st, results[0].Tag, "cat /etc/spin-machine; echo $SPIN_VAR")
	if out != "x86_64\nfrom-the-env-step\n" {
		t.Errorf("inside the spin on umoci's image: %q", out)
	}
}

func TestSpinBaseProblemsStopBeforeAnything(t *testing.T) {
	ctx := context.Background()
	r := newFakeRig(t) // nothing runs: the fake executor says so
	base := r.addr + "/serpent/base:1"
	r.pushBusybox(base)
	for _, tc := range []struct {
		name, from string
		plats      []v1.Platform
		want       string
		is         error // the cause, seen through the definition error
	}{
		{"a base that does not exist", r.addr + "/serpent/nothing:1", nil, "spin.yaml:2: from: ", registry.ErrNotFound},
		{"a base without the platform", base, []v1.Platform{platform.MustParse("linux/riscv64")}, "no image for linux/riscv64", nil},
		{"a store tag the store lacks", "stage3", nil, "spin.yaml:2: from: stage3", store.ErrNotFound},
	} {
		t.Run(tc.name, func(t *testing.T) {
			st := newStore(t)
			s := r.spin(spinDef, tc.from)
			fake := buildertest.NewFake(st)
			_, err := images.Build(ctx, s, images.Options{Store: st, Runner: fake, Registry: r.client, Platforms: tc.plats})
			var se *stages.Error
			if !errors.As(err, &se) || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("error %v, want a definition error containing %q", err, tc.want)
			}
			if tc.is != nil && !errors.Is(err, tc.is) {
				t.Errorf("error %v does not wrap %v", err, tc.is)
			}
			if runs := fake.Runs(); len(runs) != 0 {
				t.Errorf("steps %v ran before the base problem was found", runs)
			}
			if tags, _ := st.Tags(); len(tags) != 0 {
				t.Errorf("tags after a failed spin: %v", tags)
			}
		})
	}
}

// TestSpinFromAStoreTagPinnedByDigest: from: NAME@sha256:DIGEST, with the digest of a store tag
// (an image's, or an index's for every platform), builds on the store's image, with no
// registry; a digest the tag does not have is an error that says so.
func TestSpinFromAStoreTagPinnedByDigest(t *testing.T) {
	buildertest.RequireRunc(t)
	ctx := context.Background()
	st := newStore(t)
	amdImg, amdDesc := buildertest.Busybox(t, st, amd64)
	armImg, _ := buildertest.Busybox(t, st, arm64)
	idx, err := image.Index([]v1.Image{amdImg, armImg}, nil)
	if err != nil {
		t.Fatal(err)
	}
	idxDesc, err := st.WriteIndex(ctx, idx, "bbindex")
	if err != nil {
		t.Fatal(err)
	}
	runner, err := builder.NewRunner(st, builder.WithConsole(&strings.Builder{}))
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	load := func(from string) *images.Spin {
		t.Helper()
		file := filepath.Join(dir, "pinned.yaml")
		if err := os.WriteFile(file, []byte("from: "+from+"\nsteps:\n  - run: echo pinned > /etc/pinned\n"), 0o644); err != nil {
			t.Fatal(err)
		}
		s, err := images.Load(file)
		if err != nil {
			t.Fatal(err)
		}
		return s
	}
	for _, tc := range []struct {
		from  string
		plats []v1.Platform
		want  string // an error, or "" for success
	}{
		{"busybox@" + amdDesc.Digest.String(), []v1.Platform{amd64}, ""},
		{"bbindex@" + idxDesc.Digest.String(), []v1.Platform{amd64, arm64}, ""},
		{"busybox@" + idxDesc.Digest.String(), []v1.Platform{amd64}, "the store's busybox is not " + idxDesc.Digest.String()},
		{"busybox@" + amdDesc.Digest.String(), []v1.Platform{arm64}, "is for linux/amd64, not linux/arm64"},
	} {
		res, err := images.Build(ctx, load(tc.from), images.Options{Store: st, Runner: runner, Platforms: tc.plats, Tag: "pinned"})
		if tc.want != "" {
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("from %s: %v, want an error with %q", tc.from, err, tc.want)
			}
			continue
		}
		if err != nil || len(res) != len(tc.plats) {
			t.Errorf("from %s: %v", tc.from, err)
			continue
		}
		for _, r := range res {
			if r.BaseDigest == idxDesc.Digest {
				t.Errorf("from %s for %s: the base is the index, not the platform's image", tc.from, platform.String(r.Platform))
			}
		}
	}
}
