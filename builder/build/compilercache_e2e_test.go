package build_test

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/serpent-os/serpent-oci/builder"
	"github.com/serpent-os/serpent-oci/builder/build"
	"github.com/serpent-os/serpent-oci/builder/buildertest"
	"github.com/serpent-os/serpent-oci/builder/compilercache"
	"github.com/serpent-os/serpent-oci/builder/compilercache/redistest"
	"github.com/serpent-os/serpent-oci/oci/image"
	"github.com/serpent-os/serpent-oci/oci/platform"
	"github.com/serpent-os/serpent-oci/oci/store"
	"github.com/serpent-os/serpent-oci/oci/testenv"
	"github.com/serpent-os/serpent-oci/stages"
)

// standInCompiler is a C compiler for ccache to wrap: -E prints the source, -c writes an
// "object" of it. ccache treats it as gcc (CCACHE_COMPILERTYPE).
const standInCompiler = `#!/bin/sh
out= src= mode=
while [ $# -gt 0 ]; do
	case "$1" in
	-E) mode=E ;;
	-c) mode=c ;;
	-o) out=$2; shift ;;
	-*) ;;
	*) src=$1 ;;
	esac
	shift
done
case $mode in
E) cat "$src" ;;
c) { echo "object of"; cat "$src"; } > "$out" ;;
*) exit 2 ;;
esac
`

// compileRecipe compiles a C file through ccache, with its directory a cache mount, puts the
// object in the image and prints ccache's counters (in the log, not the image).
const compileRecipe = `description: One compile through ccache.
from: image:ccbox
runs-on: host
output: layer
platforms: [linux/amd64]
cache: [/var/cache/ccache]
run: |
  export CCACHE_DIR=/var/cache/ccache CCACHE_COMPILERTYPE=gcc CCACHE_NOHASHDIR=1
  mkdir -p /work /usr/lib/objects && cd /work
  echo 'int answer(void) { return 42; }' > answer.c
  ccache /usr/bin/cc -c answer.c -o /usr/lib/objects/answer.o
  rm -rf /work
  ccache --print-stats | grep -E '^(remote_storage_hit|remote_storage_miss|cache_miss)[[:space:]]' | sed 's/^/counter /'
`

// ccboxRootfs writes the test's base: busybox, the host's programs tools (ccache, distcc)
// with the libraries they load (found by ldd), and the stand-in compiler.
func ccboxRootfs(t *testing.T, dir string, tools ...string) {
	t.Helper()
	buildertest.BusyboxRootfs(t, platform.MustParse("linux/amd64"), dir)
	files := map[string]string{}
	for _, tool := range tools {
		p, err := exec.LookPath(tool)
		if err != nil {
			t.Fatal(err)
		}
		out, err := exec.Command("ldd", p).Output()
		if err != nil {
			t.Fatalf("ldd %s: %v", p, err)
		}
		files[p] = "/usr/bin/" + tool
		for _, m := range regexp.MustCompile(`(?m)(/\S+) \(0x`).FindAllStringSubmatch(string(out), -1) {
			files[m[1]] = m[1]
		}
	}
	for src, dst := range files {
		b, err := os.ReadFile(src)
		if err != nil {
			t.Fatal(err)
		}
		p := filepath.Join(dir, dst)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, b, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.WriteFile(filepath.Join(dir, "usr/bin/cc"), []byte(standInCompiler), 0o755); err != nil {
		t.Fatal(err)
	}
	// runc keeps a mount point's mode for the tmpfs on it: /tmp as images have it.
	if err := os.MkdirAll(filepath.Join(dir, "tmp"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(filepath.Join(dir, "tmp"), 0o1777|os.ModeSticky); err != nil {
		t.Fatal(err)
	}
}

var amd64 = platform.MustParse("linux/amd64")

// oneRecipeSet is a recipe set of the test set's targets and one recipe, compile.yaml.
func oneRecipeSet(t *testing.T, recipe string) *stages.Set {
	t.Helper()
	dir := t.TempDir()
	targets, err := os.ReadFile(filepath.Join(buildertest.RepoRoot(), "stages", "testdata", "busybox", stages.TargetsFile))
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, stages.TargetsFile), targets, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "compile.yaml"), []byte(recipe), 0o644); err != nil {
		t.Fatal(err)
	}
	set, err := stages.Load(os.DirFS(dir))
	if err != nil {
		t.Fatal(err)
	}
	return set
}

// ccboxStore is a store of its own (a machine's) with rootfs imported as ccbox@linux-amd64,
// and a runner on it.
func ccboxStore(t *testing.T, rootfs, name string) (*store.Store, builder.Executor) {
	t.Helper()
	ctx := context.Background()
	st, err := store.Open(ctx, filepath.Join(t.TempDir(), name))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := image.Import(ctx, st, rootfs, store.Ref{Name: "ccbox"}.WithPlatform(&amd64), image.ImportOptions{Platform: amd64}); err != nil {
		t.Fatal(err)
	}
	r, err := builder.NewRunner(st, builder.WithConsole(&strings.Builder{}))
	if err != nil {
		t.Fatal(err)
	}
	return st, r
}

// Real runc, Debian's ccache and redis-server: three stores stand for three machines. The
// first compiles cold and fills the server; the second, read-only, compiles warm from it (a
// remote hit, no compile) and adds nothing; the third's server is gone and it compiles
// locally. All three images are the same bytes.
func TestCompilerCacheSharedBetweenStores(t *testing.T) {
	buildertest.RequireRunc(t)
	testenv.RequireTools(t, "ccache", "ldd", "redis-server")
	if platform.Host().Architecture != "amd64" {
		t.Skip("the test's base is the host's amd64 ccache")
	}
	ctx := context.Background()
	sock := redistest.Start(t)
	set := oneRecipeSet(t, compileRecipe)
	rootfs := filepath.Join(t.TempDir(), "rootfs")
	ccboxRootfs(t, rootfs, "ccache")

	buildIn := func(name string, remote *compilercache.Remote) (v1.Hash, string) {
		t.Helper()
		st, runner := ccboxStore(t, rootfs, name)
		rep, err := build.Run(ctx, build.Options{
			PlanOptions: build.PlanOptions{Store: st, Set: set, Platforms: []v1.Platform{amd64}},
			Runner:      runner, CompilerCache: remote,
		}, "compile")
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		log, err := os.ReadFile(rep.Steps[0].Log)
		if err != nil {
			t.Fatal(err)
		}
		var counters []string
		for _, m := range regexp.MustCompile(`counter (\S+)\s+(\d+)`).FindAllStringSubmatch(string(log), -1) {
			counters = append(counters, m[1]+"="+m[2])
		}
		return rep.Steps[0].Descriptor.Digest, strings.Join(counters, " ")
	}
	server := &compilercache.Remote{Network: "unix", Address: sock}
	keys := func() string {
		out, err := exec.Command("redis-cli", "-s", sock, "DBSIZE").Output()
		if err != nil {
			t.Fatal(err)
		}
		return strings.TrimSpace(string(out))
	}

	first, counted := buildIn("first", server)
	if counted != "cache_miss=1 remote_storage_hit=0 remote_storage_miss=1" {
		t.Errorf("first machine: %s, want a compile and a remote miss", counted)
	}
	filled := keys()
	if filled == "0" {
		t.Fatal("the first build put nothing in the server")
	}
	readOnly := *server
	readOnly.ReadOnly = true
	second, counted := buildIn("second", &readOnly)
	if counted != "cache_miss=0 remote_storage_hit=1 remote_storage_miss=0" {
		t.Errorf("second machine, read-only: %s, want a remote hit and no compile", counted)
	}
	if got := keys(); got != filled {
		t.Errorf("the read-only build changed the server: %s keys, was %s", got, filled)
	}
	gone := &compilercache.Remote{Network: "unix", Address: filepath.Join(t.TempDir(), "gone.sock")}
	third, counted := buildIn("third", gone)
	if counted != "cache_miss=1 remote_storage_hit=0 remote_storage_miss=0" {
		t.Errorf("third machine, no server: %s, want a local compile", counted)
	}
	if first != second || second != third {
		t.Errorf("the images differ: %s (cold), %s (remote hit), %s (no server)", first, second, third)
	}
}
