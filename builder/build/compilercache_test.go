package build_test

import (
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/serpent-os/serpent-oci/builder"
	"github.com/serpent-os/serpent-oci/builder/build"
	"github.com/serpent-os/serpent-oci/builder/compilercache"
)

// withoutCompilerCache is o without what --compiler-cache adds to a run: the socket's mount
// and CCACHE_REMOTE_STORAGE.
func withoutCompilerCache(o builder.RunOptions) builder.RunOptions {
	o.Process.Mounts = slices.DeleteFunc(slices.Clone(o.Process.Mounts), func(m builder.Mount) bool { return m.Destination == compilercache.SocketInStage })
	o.Process.Env = slices.DeleteFunc(slices.Clone(o.Process.Env), func(e string) bool {
		return strings.HasPrefix(e, "CCACHE_REMOTE_STORAGE=") || e == "CCACHE_RESHARE=true"
	})
	return o
}

// --compiler-cache gives a stage with a cache mount the socket of a proxy to the server and
// the environment ccache reads, for the build's life; a stage without one gets neither. It
// is in no key: a store built without it is reused with it, and a stage built with it makes
// what it makes without it (when what it compiles does not depend on it, as the fake says).
func TestCompilerCacheWithoutRoot(t *testing.T) {
	f, fake := newFakeFixture(t)
	edit(t, filepath.Join(f.set, "target-native.yaml"), "script: target-native.sh", "script: target-native.sh\ncache: [/var/cache/ccache]")
	fake.DependsOn = withoutCompilerCache
	runs := map[string]builder.RunOptions{}
	var socketThere bool
	fake.Fail = func(o builder.RunOptions) error {
		runs[o.Name] = o
		for _, m := range o.Process.Mounts {
			if m.Destination == compilercache.SocketInStage {
				fi, err := os.Stat(m.Source)
				socketThere = err == nil && fi.Mode()&os.ModeSocket != 0
			}
		}
		return nil
	}
	cold, err := f.build(t, "target-native")
	if err != nil {
		t.Fatal(err)
	}
	remote := &compilercache.Remote{Network: "unix", Address: filepath.Join(t.TempDir(), "redis.sock")}
	withRemote := func(o *build.Options) { o.CompilerCache = remote }
	rep, err := f.build(t, "target-native", withRemote)
	if err != nil {
		t.Fatal(err)
	}
	if got := actions(rep); got != "host-tools:reused target-root:reused target-native:reused" {
		t.Errorf("with --compiler-cache on a store built without it: %s, want everything reused", got)
	}

	clear(runs)
	rebuild := func(o *build.Options) { o.Rebuild = []string{"target-root"} }
	if rep, err = f.build(t, "target-native", withRemote, rebuild, func(o *build.Options) { o.NoCache = true }); err != nil {
		t.Fatal(err)
	}
	native, root := runs["target-native"], runs["target-root"]
	if want := "CCACHE_REMOTE_STORAGE=redis+unix:" + compilercache.SocketInStage; !slices.Contains(native.Process.Env, want) {
		t.Errorf("target-native's environment lacks %s: %q", want, native.Process.Env)
	}
	if !socketThere {
		t.Error("target-native's run had no socket at its mount's source")
	}
	if slices.ContainsFunc(root.Process.Env, func(e string) bool { return strings.HasPrefix(e, "CCACHE_REMOTE_STORAGE=") }) {
		t.Errorf("target-root has no cache mount but got the compiler cache: %q", root.Process.Env)
	}
	for i, s := range rep.Steps {
		if s.Descriptor.Digest != cold.Steps[i].Descriptor.Digest {
			t.Errorf("%s built with --compiler-cache is %s, without %s", s.Step.Name(), s.Descriptor.Digest, cold.Steps[i].Descriptor.Digest)
		}
	}
	for _, m := range native.Process.Mounts {
		if _, err := os.Stat(m.Source); m.Destination == compilercache.SocketInStage && err == nil {
			t.Errorf("the build left its socket %s", m.Source)
		}
	}

	readOnly := *remote
	readOnly.ReadOnly = true
	if _, err := f.build(t, "target-native", func(o *build.Options) { o.CompilerCache, o.Rebuild = &readOnly, []string{"target-native"} }); err != nil {
		t.Fatal(err)
	}
	if want := "CCACHE_REMOTE_STORAGE=redis+unix:" + compilercache.SocketInStage + "|read-only=true"; !slices.Contains(runs["target-native"].Process.Env, want) {
		t.Errorf("a read-only remote: %q, want %s", runs["target-native"].Process.Env, want)
	}
}
