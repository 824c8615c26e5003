package packages_test

import (
	"context"
	"encoding/json"
	"flag"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/serpent-os/serpent-oci/oci/packages"
	"github.com/serpent-os/serpent-oci/oci/platform"
	"github.com/serpent-os/serpent-oci/oci/store"
	"github.com/serpent-os/serpent-oci/oci/testenv"
)

var update = flag.Bool("update", false, "rewrite the golden files")

var (
	amd64 = platform.MustParse("linux/amd64")
	arm64 = platform.MustParse("linux/arm64")
)

func newStore(t *testing.T) *store.Store {
	t.Helper()
	st, err := store.Open(context.Background(), t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	return st
}

// tree writes files (path -> content; content "->TARGET" makes a symlink) under a new
// directory and returns it.
func tree(t *testing.T, files map[string]string) string {
	t.Helper()
	dir := t.TempDir()
	for p, c := range files {
		full := filepath.Join(dir, p)
		if err := os.MkdirAll(filepath.Dir(full), 0o755); err != nil {
			t.Fatal(err)
		}
		var err error
		if target, ok := strings.CutPrefix(c, "->"); ok {
			err = os.Symlink(target, full)
		} else {
			err = os.WriteFile(full, []byte(c), 0o755)
		}
		if err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

// cc compiles C with gcc into dir/out.
func cc(t *testing.T, dir, out, src string, args ...string) {
	t.Helper()
	c := filepath.Join(t.TempDir(), "src.c")
	if err := os.WriteFile(c, []byte(src), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.MkdirAll(filepath.Dir(filepath.Join(dir, out)), 0o755); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command("gcc", append([]string{"-o", filepath.Join(dir, out), c}, args...)...)
	if b, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("gcc %s: %v\n%s", out, err, b)
	}
}

// elfTrees are three packages' trees made by gcc: a C library standing for libc (its soname
// and the loader's name), a library on it, and a program on both.
func elfTrees(t *testing.T) (libc, greet, hello string) {
	t.Helper()
	testenv.RequireTools(t, "gcc")
	libc = t.TempDir()
	cc(t, libc, "usr/lib/libc.so.6", "int puts(const char *s) { return 0; }\n", "-shared", "-fPIC", "-nostdlib", "-Wl,-soname,libc.so.6")
	// A library without DT_SONAME, as musl's libc.so is: it provides its file name.
	cc(t, libc, "usr/lib/libplain.so", "int plain(void) { return 1; }\n", "-shared", "-fPIC", "-nostdlib")
	if err := os.MkdirAll(filepath.Join(libc, "usr/lib64"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink("../lib/libc.so.6", filepath.Join(libc, "usr/lib64/ld-linux-x86-64.so.2")); err != nil {
		t.Fatal(err)
	}
	greet = t.TempDir()
	cc(t, greet, "usr/lib/libgreet.so.1", "#include <stdio.h>\nvoid greet(void) { puts(\"hello\"); }\n", "-shared", "-fPIC", "-Wl,-soname,libgreet.so.1")
	if err := os.Symlink("libgreet.so.1", filepath.Join(greet, "usr/lib/libgreet.so")); err != nil {
		t.Fatal(err)
	}
	hello = t.TempDir()
	cc(t, hello, "usr/bin/hello", "void greet(void);\nint main(void) { greet(); return 0; }\n", "-L"+filepath.Join(greet, "usr/lib"), "-lgreet")
	return libc, greet, hello
}

func makePackage(t *testing.T, st *store.Store, dir string, m packages.Meta) (v1.Image, packages.Package) {
	t.Helper()
	if m.Platform.OS == "" {
		m.Platform = amd64
	}
	img, pkg, err := packages.Make(context.Background(), st, dir, m, packages.Options{})
	if err != nil {
		t.Fatal(err)
	}
	return img, pkg
}

func TestMakeReadsWhatTheFilesProvideAndNeed(t *testing.T) {
	if platform.Host().Architecture != "amd64" {
		t.Skip("the ELF files are built by the host's gcc, and the names below are x86_64's")
	}
	st := newStore(t)
	libcDir, greetDir, helloDir := elfTrees(t)
	src := []packages.Source{{Name: "greet", SHA256: strings.Repeat("ab", 32), Origin: "test", Licence: "MIT"}}
	_, libc := makePackage(t, st, libcDir, packages.Meta{Name: "libc", Version: "1"})
	_, greet := makePackage(t, st, greetDir, packages.Meta{Name: "greet", Version: "1.0", Sources: src})
	helloImg, hello := makePackage(t, st, helloDir, packages.Meta{Name: "hello", Version: "2", Depends: []string{"greet", "greet"}})
	for _, tc := range []struct {
		pkg                    packages.Package
		provides, needs, files []string
	}{
		{libc, []string{"interpreter(/usr/lib64/ld-linux-x86-64.so.2)", "soname(libc.so.6(x86_64))", "soname(libplain.so(x86_64))"}, nil,
			[]string{"/usr/lib/libc.so.6", "/usr/lib/libplain.so", "/usr/lib64/ld-linux-x86-64.so.2"}},
		{greet, []string{"soname(libgreet.so.1(x86_64))"}, []string{"soname(libc.so.6(x86_64))"},
			[]string{"/usr/lib/libgreet.so", "/usr/lib/libgreet.so.1"}},
		{hello, []string{"binary(hello)"}, []string{"interpreter(/usr/lib64/ld-linux-x86-64.so.2)", "soname(libc.so.6(x86_64))", "soname(libgreet.so.1(x86_64))"},
			[]string{"/usr/bin/hello"}},
	} {
		if !slices.Equal(tc.pkg.Provides, tc.provides) || !slices.Equal(tc.pkg.Needs, tc.needs) || !slices.Equal(tc.pkg.Files, tc.files) {
			t.Errorf("%s:\n provides %q, want %q\n needs %q, want %q\n files %q, want %q", tc.pkg.Name, tc.pkg.Provides, tc.provides, tc.pkg.Needs, tc.needs, tc.pkg.Files, tc.files)
		}
	}
	if !slices.Equal(hello.Depends, []string{"greet"}) {
		t.Errorf("hello's depends %q, want [greet] once", hello.Depends)
	}
	// What the image says is what Make returned.
	back, err := packages.Read(helloImg)
	if err != nil {
		t.Fatal(err)
	}
	if back.String() != "hello 2 for linux/amd64" || !slices.Equal(back.Needs, hello.Needs) || !slices.Equal(back.Files, hello.Files) {
		t.Errorf("read back %+v, made %+v", back, hello)
	}
	m, _ := helloImg.Manifest()
	golden(t, "hello.annotations.json", m.Annotations)
}

// golden compares v, as indented JSON, with testdata/NAME (rewritten with -update).
func golden(t *testing.T, name string, v any) {
	t.Helper()
	got, err := json.MarshalIndent(v, "", "  ")
	if err != nil {
		t.Fatal(err)
	}
	got = append(got, '\n')
	path := filepath.Join("testdata", name)
	if *update {
		if err := os.WriteFile(path, got, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if string(got) != string(want) {
		t.Errorf("%s differs (go test -update rewrites it):\n%s", path, got)
	}
}

func TestMakeRefusesWhatIsNoPackage(t *testing.T) {
	st := newStore(t)
	elf := "\x7fELF\x02\x01\x01\x00garbage"
	for _, tc := range []struct {
		name  string
		files map[string]string
		meta  packages.Meta
		want  string
	}{
		{"a file outside /usr", map[string]string{"usr/bin/x": "x", "etc/x.conf": "x"}, packages.Meta{Name: "x", Version: "1"},
			"package x: /etc (a directory) is outside /usr: a package holds /usr only"},
		{"a symlink at the top", map[string]string{"bin": "->usr/bin"}, packages.Meta{Name: "x", Version: "1"},
			"package x: /bin (a symlink) is outside /usr"},
		{"a broken ELF file", map[string]string{"usr/lib/libx.so": elf}, packages.Meta{Name: "x", Version: "1"},
			"package x: /usr/lib/libx.so: malformed ELF file"},
		{"no version", map[string]string{"usr/bin/x": "x"}, packages.Meta{Name: "x"}, "package x: no version"},
		{"a name that is no tag", map[string]string{"usr/bin/x": "x"}, packages.Meta{Name: "../x", Version: "1"}, `package name "../x": want`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, _, err := packages.Make(context.Background(), st, tree(t, tc.files), tc.meta, packages.Options{})
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("error %v, want one containing %q", err, tc.want)
			}
		})
	}
}

// Every truncation of a real ELF file is read or refused, never a panic.
func TestTruncatedELFIsRefused(t *testing.T) {
	_, greetDir, _ := elfTrees(t)
	b, err := os.ReadFile(filepath.Join(greetDir, "usr/lib/libgreet.so.1"))
	if err != nil {
		t.Fatal(err)
	}
	st := newStore(t)
	refused := 0
	for n := 4; n < len(b); n += 1 + n/16 {
		dir := tree(t, map[string]string{"usr/lib/libgreet.so.1": string(b[:n])})
		if _, _, err := packages.Make(context.Background(), st, dir, packages.Meta{Name: "greet", Version: "1", Platform: amd64}, packages.Options{}); err != nil {
			if !strings.Contains(err.Error(), "/usr/lib/libgreet.so.1: malformed ELF file") {
				t.Fatalf("truncated to %d bytes: %v", n, err)
			}
			refused++
		}
	}
	if refused == 0 {
		t.Error("no truncation was refused")
	}
}

// entry is a repository entry written by hand, for resolution alone.
func entry(name string, p v1.Platform, provides, needs, depends []string) packages.Entry {
	return packages.Entry{Package: packages.Package{
		Meta:     packages.Meta{Name: name, Version: "1", Platform: p, Depends: depends},
		Contents: packages.Contents{Provides: provides, Needs: needs},
	}}
}

func TestResolve(t *testing.T) {
	so := func(n string) string { return "soname(" + n + "(x86_64))" }
	repo := []packages.Entry{
		entry("musl", amd64, []string{so("libc.so"), "interpreter(/usr/lib/ld-musl-x86_64.so.1)"}, nil, nil),
		entry("zlib", amd64, []string{so("libz.so.1")}, []string{so("libc.so")}, nil),
		entry("xz", amd64, []string{so("liblzma.so.5"), "binary(xz)"}, []string{so("libc.so")}, nil),
		entry("file", amd64, []string{"binary(file)"}, []string{so("libc.so"), so("libz.so.1"), so("liblzma.so.5"), "interpreter(/usr/lib/ld-musl-x86_64.so.1)"}, nil),
		entry("make", amd64, []string{"binary(make)"}, []string{so("libc.so")}, []string{"busybox"}),
		entry("busybox", amd64, []string{"binary(sh)", "binary(awk)"}, nil, nil),
		entry("gawk", amd64, []string{"binary(awk)"}, []string{so("libc.so")}, nil),
		entry("awk-user", amd64, nil, nil, []string{"binary(awk)"}),
		entry("a", amd64, nil, nil, []string{"b"}),
		entry("b", amd64, nil, nil, []string{"a"}),
		entry("only-arm", arm64, nil, nil, nil),
		entry("broken", amd64, nil, []string{so("libmissing.so.1")}, nil),
	}
	for _, tc := range []struct {
		names []string
		want  string // the order, or the error
	}{
		{[]string{"file"}, "musl xz zlib file"},
		{[]string{"zlib", "musl"}, "musl zlib"},
		{[]string{"make"}, "busybox musl make"},
		// busybox is chosen already: it provides awk, so no ambiguity.
		{[]string{"make", "awk-user"}, "busybox awk-user musl make"},
		{[]string{"awk-user"}, "resolve awk-user for linux/amd64: package awk-user needs binary(awk): provided by busybox and gawk: name the one to use"},
		{[]string{"b"}, "a b"}, // a cycle, broken by name
		{[]string{"only-arm"}, "resolve only-arm for linux/amd64: asked for only-arm: no package only-arm for linux/amd64 (it is built for linux/arm64)"},
		{[]string{"broken", "nothing"}, "resolve broken, nothing for linux/amd64: asked for nothing: no package provides it; package broken needs soname(libmissing.so.1(x86_64)): no package provides it"},
	} {
		got, err := packages.Resolve(repo, tc.names, amd64)
		var s string
		if err != nil {
			s = err.Error()
		} else {
			var names []string
			for _, e := range got {
				names = append(names, e.Name)
			}
			s = strings.Join(names, " ")
		}
		if s != tc.want {
			t.Errorf("resolve %v:\n got %s\nwant %s", tc.names, s, tc.want)
		}
	}
}

func TestRepositoryAndAssembly(t *testing.T) {
	if platform.Host().Architecture != "amd64" {
		t.Skip("the ELF files are built by the host's gcc, and the names are x86_64's")
	}
	st := newStore(t)
	libcDir, greetDir, helloDir := elfTrees(t)
	libcImg, _ := makePackage(t, st, libcDir, packages.Meta{Name: "libc", Version: "1"})
	greetImg, _ := makePackage(t, st, greetDir, packages.Meta{Name: "greet", Version: "1.0"})
	helloImg, _ := makePackage(t, st, helloDir, packages.Meta{Name: "hello", Version: "2"})
	other := tree(t, map[string]string{"usr/bin/hello": "not the same hello"})
	armImg, _ := makePackage(t, st, other, packages.Meta{Name: "hello", Version: "2", Platform: arm64})

	idx, err := packages.Index([]v1.Image{helloImg, armImg, libcImg, greetImg})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := st.WriteIndex(context.Background(), idx, "repo"); err != nil {
		t.Fatal(err)
	}
	stored, err := st.Index("repo")
	if err != nil {
		t.Fatal(err)
	}
	entries, err := packages.Entries(stored)
	if err != nil {
		t.Fatal(err)
	}
	var listed []string
	for _, e := range entries {
		listed = append(listed, e.String())
		if e.Files != nil || e.Sources != nil {
			t.Errorf("%s: the index entry carries files or sources", e)
		}
	}
	if want := []string{"greet 1.0 for linux/amd64", "hello 2 for linux/amd64", "hello 2 for linux/arm64", "libc 1 for linux/amd64"}; !slices.Equal(listed, want) {
		t.Errorf("repository lists %q, want %q", listed, want)
	}
	if _, err := packages.Index([]v1.Image{helloImg, helloImg}); err == nil || !strings.Contains(err.Error(), "two packages hello for linux/amd64") {
		t.Errorf("a repository of one package twice: %v", err)
	}
	if _, err := packages.Entries(empty.Index); err == nil || !strings.Contains(err.Error(), "not a package repository") {
		t.Errorf("entries of an empty index: %v", err)
	}

	resolved, err := packages.Resolve(entries, []string{"hello"}, amd64)
	if err != nil {
		t.Fatal(err)
	}
	var imgs []v1.Image
	for _, e := range resolved {
		img, err := stored.Image(e.Descriptor.Digest)
		if err != nil {
			t.Fatal(err)
		}
		imgs = append(imgs, img)
	}
	epoch := time.Date(2024, 1, 2, 0, 0, 0, 0, time.UTC)
	root, err := packages.Assemble(nil, imgs, amd64, epoch)
	if err != nil {
		t.Fatal(err)
	}
	m, _ := root.Manifest()
	var inst []packages.Installed
	if err := json.Unmarshal([]byte(m.Annotations[packages.AnnotationPackages]), &inst); err != nil {
		t.Fatal(err)
	}
	var order []string
	for _, i := range inst {
		order = append(order, i.Name+" "+i.Version)
	}
	if want := []string{"libc 1", "greet 1.0", "hello 2"}; !slices.Equal(order, want) {
		t.Errorf("root's packages %q, want %q", order, want)
	}
	layers, _ := root.Layers()
	for i, img := range imgs {
		pl, _ := img.Layers()
		a, _ := pl[0].Digest()
		b, _ := layers[i].Digest()
		if a != b {
			t.Errorf("layer %d is %s, package %s's is %s: a root shares its packages' blobs", i, b, order[i], a)
		}
	}
	again, err := packages.Assemble(nil, imgs, amd64, epoch)
	if err != nil {
		t.Fatal(err)
	}
	if d1, d2 := digest(t, root), digest(t, again); d1 != d2 {
		t.Errorf("one set assembled twice: %s and %s", d1, d2)
	}
	if _, err := st.WriteImage(context.Background(), root, store.Ref{Name: "root"}.WithPlatform(&amd64)); err != nil {
		t.Fatal(err)
	}

	// A second hello for the same platform holds the same path: both are named.
	dup, _ := makePackage(t, st, tree(t, map[string]string{"usr/bin/hello": "another"}), packages.Meta{Name: "hello-fork", Version: "1"})
	if _, err := packages.Assemble(nil, append(slices.Clone(imgs), dup), amd64, epoch); err == nil ||
		!strings.Contains(err.Error(), "paths held by two packages: /usr/bin/hello (packages hello and hello-fork)") {
		t.Errorf("two packages holding /usr/bin/hello: %v", err)
	}
	if _, err := packages.Assemble(nil, []v1.Image{armImg}, amd64, epoch); err == nil || !strings.Contains(err.Error(), "package hello is for linux/arm64") {
		t.Errorf("an arm64 package in an amd64 root: %v", err)
	}
	twoLayers, err := mutate.AppendLayers(helloImg, layersOf(t, greetImg)...)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := packages.Assemble(nil, []v1.Image{twoLayers}, amd64, epoch); err == nil || !strings.Contains(err.Error(), "package hello has 2 layers") {
		t.Errorf("a package of two layers: %v", err)
	}
}

func layersOf(t *testing.T, img v1.Image) []v1.Layer {
	t.Helper()
	l, err := img.Layers()
	if err != nil {
		t.Fatal(err)
	}
	return l
}

func digest(t *testing.T, img v1.Image) v1.Hash {
	t.Helper()
	d, err := img.Digest()
	if err != nil {
		t.Fatal(err)
	}
	return d
}

func TestCompareRepositories(t *testing.T) {
	st := newStore(t)
	mk := func(name, content string) v1.Image {
		img, _ := makePackage(t, st, tree(t, map[string]string{"usr/share/" + name: content}), packages.Meta{Name: name, Version: "1"})
		return img
	}
	a, err := packages.Index([]v1.Image{mk("same", "x"), mk("changed", "old"), mk("gone", "g")})
	if err != nil {
		t.Fatal(err)
	}
	b, err := packages.Index([]v1.Image{mk("same", "x"), mk("changed", "new"), mk("added", "a")})
	if err != nil {
		t.Fatal(err)
	}
	cs, err := packages.Compare(a, b)
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, c := range cs {
		got = append(got, c.String())
	}
	want := []string{
		"added for linux/amd64: only in the second repository",
		"changed for linux/amd64: differs: usr/share/changed: content (line 1: \"old\"/\"new\")",
		"gone for linux/amd64: only in the first repository",
		"same for linux/amd64: identical",
	}
	if !slices.Equal(got, want) {
		t.Errorf("compare:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
}
