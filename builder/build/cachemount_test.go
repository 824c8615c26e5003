package build_test

import (
	"archive/tar"
	"compress/gzip"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/serpent-os/serpent-oci/builder/build"
)

// TestCacheDirectoriesPersistOutsideTheImage: a recipe's cache: directory keeps what a build
// wrote there for the next build of the stage, is never captured, and is not in the key.
func TestCacheDirectoriesPersistOutsideTheImage(t *testing.T) {
	f := newFixture(t)
	if _, err := f.build(t, "target-native"); err != nil {
		t.Fatal(err)
	}
	// Adding a cache directory changes nothing that is built: the stage is reused.
	recipe := filepath.Join(f.set, "target-native.yaml")
	edit(t, recipe, "script: target-native.sh", "cache: [/var/cache/work]\nscript: target-native.sh")
	rep, err := f.build(t, "target-native")
	if err != nil {
		t.Fatal(err)
	}
	if got := actions(rep); got != "host-tools:reused target-root:reused target-native:reused" {
		t.Fatalf("after adding a cache directory: %s, want everything reused", got)
	}
	first := rep.Steps[2].Descriptor.Digest

	// The script counts its runs in the cache; what it writes into the image does not depend
	// on it, so every rebuild gives the same digest.
	edit(t, filepath.Join(f.set, "target-native.sh"), "cat \"$GREETING_FILE\"",
		"cat \"$GREETING_FILE\"\necho run >> /var/cache/work/runs\necho \"runs so far: $(wc -l < /var/cache/work/runs)\"")
	var digests []string
	for i := range 3 {
		rep, err := f.build(t, "target-native", func(o *build.Options) { o.Rebuild = []string{"target-native"} })
		if err != nil {
			t.Fatal(err)
		}
		log, err := os.ReadFile(rep.Steps[2].Log)
		if err != nil {
			t.Fatal(err)
		}
		if want := "runs so far: " + string(rune('1'+i)); !strings.Contains(string(log), want) {
			t.Errorf("build %d: the log lacks %q: the cache did not persist\n%s", i+1, want, log)
		}
		digests = append(digests, rep.Steps[2].Descriptor.Digest.String())
		img, _, err := f.st.Image(rep.Steps[2].Step.Tag)
		if err != nil {
			t.Fatal(err)
		}
		layers, _ := img.Layers()
		for _, p := range layerPaths(t, layers[len(layers)-1]) {
			if strings.HasPrefix(p, "var/cache") {
				t.Errorf("build %d: the stage's layer holds %s", i+1, p)
			}
		}
	}
	if digests[0] != digests[1] || digests[1] != digests[2] {
		t.Errorf("a warm cache changed the image: %v", digests)
	}
	if digests[0] == first.String() {
		t.Errorf("the script changed but the image did not")
	}
	// Kept per stage and platform pair, below the store's private directory.
	runs := filepath.Join(f.st.Dir(), ".serpent", build.CacheMountsDir, "target-native", "linux-arm64-on-linux-arm64", "var_cache_work", "runs")
	if b, err := os.ReadFile(runs); err != nil || strings.Count(string(b), "run\n") != 3 {
		t.Errorf("%s: %q, %v; want three runs", runs, b, err)
	}
	listed, err := build.CacheMounts(f.st)
	if err != nil || len(listed) != 1 || listed[0].Stage != "target-native" || listed[0].Bytes != 12 {
		t.Fatalf("CacheMounts: %+v, %v; want target-native's, 12 bytes", listed, err)
	}
	if removed, err := build.PruneCacheMounts(f.st, "target-native"); err != nil || len(removed) != 1 {
		t.Fatalf("PruneCacheMounts: %+v, %v", removed, err)
	}
	if _, err := os.Stat(runs); !os.IsNotExist(err) {
		t.Errorf("after prune, %s: %v", runs, err)
	}
}

func layerPaths(t *testing.T, l interface{ Compressed() (io.ReadCloser, error) }) []string {
	t.Helper()
	rc, err := l.Compressed()
	if err != nil {
		t.Fatal(err)
	}
	defer rc.Close()
	zr, err := gzip.NewReader(rc)
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	tr := tar.NewReader(zr)
	for {
		h, err := tr.Next()
		if err == io.EOF {
			return out
		}
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, strings.TrimPrefix(h.Name, "./"))
	}
}
