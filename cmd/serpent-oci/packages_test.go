package main

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/serpent-os/serpent-oci/builder/build"
	"github.com/serpent-os/serpent-oci/oci/packages"
	"github.com/serpent-os/serpent-oci/oci/platform"
	"github.com/serpent-os/serpent-oci/oci/registry"
	"github.com/serpent-os/serpent-oci/oci/registry/registrytest"
	"github.com/serpent-os/serpent-oci/oci/store"
)

// packageRepo writes a repository of three packages (libc; tool, which declares libc; and
// other, which needs what nothing provides) for linux/arm64 into the store at dir, as a
// stage's build would tag it.
func packageRepo(t *testing.T, dir string) {
	t.Helper()
	ctx := context.Background()
	st := openStore(t, dir)
	arm64 := platform.MustParse("linux/arm64")
	var imgs []v1.Image
	for _, p := range []struct {
		name, file string
		depends    []string
	}{
		{"libc", "usr/lib/libc.so", nil},
		{"tool", "usr/bin/tool", []string{"libc"}},
		{"other", "usr/bin/other", []string{"binary(nothing)"}},
	} {
		tree := t.TempDir()
		if err := os.MkdirAll(filepath.Join(tree, filepath.Dir(p.file)), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(tree, p.file), []byte(p.name), 0o755); err != nil {
			t.Fatal(err)
		}
		img, _, err := packages.Make(ctx, st, tree, packages.Meta{Name: p.name, Version: "1.0", Platform: arm64, Depends: p.depends}, packages.Options{})
		if err != nil {
			t.Fatal(err)
		}
		imgs = append(imgs, img)
	}
	idx, err := packages.Index(imgs)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := st.WriteIndex(ctx, idx, build.RepositoryName("stage3")); err != nil {
		t.Fatal(err)
	}
}

func TestPackagesListResolveAssemble(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "store")
	packageRepo(t, dir)
	code, out, stderr := cli(t, "--store", dir, "packages", "list")
	if code != 0 {
		t.Fatalf("list: %d %s", code, stderr)
	}
	lines := strings.Split(strings.TrimSpace(out), "\n")
	if len(lines) != 4 || !strings.HasPrefix(lines[0], "NAME") || !strings.HasPrefix(lines[1], "libc ") || !strings.HasPrefix(strings.Join(strings.Fields(lines[3]), " "), "tool 1.0 linux/arm64 sha256:") {
		t.Errorf("list:\n%s", out)
	}
	code, out, stderr = cli(t, "--store", dir, "packages", "resolve", "--platform", "linux/arm64", "tool")
	if code != 0 || !strings.HasPrefix(out, "libc 1.0 sha256:") || !strings.Contains(out, "\ntool 1.0 sha256:") {
		t.Errorf("resolve tool: %d\n%s%s", code, out, stderr)
	}
	code, _, stderr = cli(t, "--store", dir, "packages", "resolve", "--platform", "linux/arm64", "other")
	if code != 1 || !strings.Contains(stderr, "resolve other for linux/arm64: package other needs binary(nothing): no package provides it") {
		t.Errorf("resolve other: %d %s", code, stderr)
	}
	code, _, stderr = cli(t, "--store", dir, "packages", "resolve", "tool")
	if platform.Host().Architecture != "arm64" && (code != 1 || !strings.Contains(stderr, "no package tool for linux/"+platform.Host().Architecture+" (it is built for linux/arm64)")) {
		t.Errorf("resolve for the host: %d %s", code, stderr)
	}
	code, out, stderr = cli(t, "--store", dir, "packages", "assemble", "--platform", "linux/arm64", "-t", "root", "tool")
	if code != 0 || !strings.Contains(out, "root@linux-arm64 sha256:") || !strings.HasSuffix(out, ": 2 packages\n") {
		t.Fatalf("assemble: %d\n%s%s", code, out, stderr)
	}
	st := openStore(t, dir)
	root, _, err := st.Image(store.Ref{Name: "root", Platform: ptr(platform.MustParse("linux/arm64"))})
	if err != nil {
		t.Fatal(err)
	}
	if layers, _ := root.Layers(); len(layers) != 3 {
		t.Errorf("root: %d layers, want the skeleton's and one per package", len(layers))
	}
	first := tagDigest(t, dir, "root@linux-arm64")
	if code, _, stderr := cli(t, "--store", dir, "packages", "assemble", "--platform", "linux/arm64", "-t", "root", "tool"); code != 0 || tagDigest(t, dir, "root@linux-arm64") != first {
		t.Errorf("assembled again: %d %s, digest %s then %s", code, stderr, first, tagDigest(t, dir, "root@linux-arm64"))
	}
	code, out, stderr = cli(t, "--store", dir, "packages", "compare", "stage3", "stage3/packages")
	if code != 0 || !strings.Contains(out, "tool for linux/arm64: identical\n") || !strings.HasSuffix(out, "3 identical, 0 differ, 0 in one repository only\n") {
		t.Errorf("compare a repository with itself: %d\n%s%s", code, out, stderr)
	}
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"packages", "compare", "stage3"}, "packages compare: want two repositories (or stages)"},
		{[]string{"packages", "compare", "stage3", "stage9"}, "repository stage9/packages: "},
		{[]string{"packages"}, "packages: want list, resolve NAME..., or assemble -t TAG NAME..."},
		{[]string{"packages", "assemble", "tool"}, "packages assemble: -t TAG: where to tag the root"},
		{[]string{"packages", "resolve"}, "packages resolve: name the packages"},
		{[]string{"packages", "install", "x"}, `packages: "install": want list, resolve, assemble or compare`},
		{[]string{"packages", "list", "--repo", "nothing"}, "repository nothing: "},
	} {
		code, _, stderr := cli(t, append([]string{"--store", dir}, tc.args...)...)
		if code == 0 || !strings.Contains(stderr, tc.want) {
			t.Errorf("%v: %d %s, want %q", tc.args, code, stderr, tc.want)
		}
	}
}

func ptr[T any](v T) *T { return &v }

// TestPackagesFromARegistry: a repository pushed to a registry is listed, resolved and
// assembled from there into a store that has nothing of it, fetching only the packages the
// resolution takes; the root is the one the store that made the packages assembles.
func TestPackagesFromARegistry(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "store")
	packageRepo(t, dir)
	host, blobGets := registrytest.InMemoryCountingBlobGets(t)
	repo := host + "/serpent/packages:1"
	insecure := []string{"--insecure-registry", host}
	// A package's SBOM goes with the repository, as a referrer of the package.
	st := openStore(t, dir)
	var tooldesc v1.Descriptor
	idx, err := st.Index(build.RepositoryName("stage3"))
	if err != nil {
		t.Fatal(err)
	}
	entries, err := packages.Entries(idx)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range entries {
		if e.Name == "tool" {
			tooldesc = e.Descriptor
		}
	}
	if _, err := st.WriteReferrer(context.Background(), tooldesc, build.SPDXMediaType, build.SPDXMediaType, []byte(`{"spdxVersion": "SPDX-2.3"}`), nil); err != nil {
		t.Fatal(err)
	}
	if code, _, stderr := cli(t, append([]string{"--store", dir, "push", "stage3/packages", repo}, insecure...)...); code != 0 {
		t.Fatalf("push the repository: %d %s", code, stderr)
	}
	client := registry.New(registry.Options{Insecure: []string{host}})
	pushed, err := client.ParseReference(repo)
	if err != nil {
		t.Fatal(err)
	}
	if refs, err := client.Referrers(context.Background(), pushed.Context().Digest(tooldesc.Digest.String()), build.SPDXMediaType); err != nil || len(refs) != 1 {
		t.Errorf("the tool package's SBOMs in the registry: %v %v", refs, err)
	}
	empty := filepath.Join(t.TempDir(), "empty")
	remote := append([]string{"--repo", repo, "--platform", "linux/arm64"}, insecure...)
	code, out, stderr := cli(t, append([]string{"--store", empty, "packages", "list"}, remote...)...)
	if code != 0 || len(strings.Split(strings.TrimSpace(out), "\n")) != 4 {
		t.Fatalf("list from the registry: %d\n%s%s", code, out, stderr)
	}
	if _, err := os.Stat(empty); !os.IsNotExist(err) {
		t.Errorf("list made the store: %v", err)
	}
	code, out, stderr = cli(t, append([]string{"--store", empty, "packages", "resolve", "tool"}, remote...)...)
	if code != 0 || !strings.HasPrefix(out, "libc 1.0 sha256:") || !strings.Contains(out, "\ntool 1.0 sha256:") {
		t.Fatalf("resolve from the registry: %d\n%s%s", code, out, stderr)
	}
	before := blobGets.Load()
	code, out, stderr = cli(t, append([]string{"--store", empty, "packages", "assemble", "-t", "root", "tool"}, remote...)...)
	if code != 0 {
		t.Fatalf("assemble from the registry: %d\n%s%s", code, out, stderr)
	}
	// libc's and tool's layers (and their configs), not other's.
	if n := blobGets.Load() - before; n != 4 {
		t.Errorf("assemble fetched %d blobs, want the 2 layers and 2 configs of libc and tool", n)
	}
	if code, out, stderr := cli(t, "--store", dir, "packages", "assemble", "--platform", "linux/arm64", "-t", "root", "tool"); code != 0 || tagDigest(t, empty, "root@linux-arm64") != tagDigest(t, dir, "root@linux-arm64") {
		t.Errorf("the root from the registry is %s, the store's %s (%d %s%s)", tagDigest(t, empty, "root@linux-arm64"), tagDigest(t, dir, "root@linux-arm64"), code, out, stderr)
	}
}
