package builder_test

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/serpent-os/serpent-oci/builder"
	"github.com/serpent-os/serpent-oci/builder/buildertest"
	"github.com/serpent-os/serpent-oci/builder/runc"
	"github.com/serpent-os/serpent-oci/oci/platform"
	"github.com/serpent-os/serpent-oci/oci/store"
)

// TestCaptureRefusesASymlinkedPath: a run that replaces a parent of its output directory with
// a symlink to a host directory gets an error, not that host directory as its image.
func TestCaptureRefusesASymlinkedPath(t *testing.T) {
	e := setup(t)
	host := t.TempDir()
	if err := os.MkdirAll(filepath.Join(host, "out"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(host, "out", "secret"), []byte("host only"), 0o600); err != nil {
		t.Fatal(err)
	}
	o := e.opts(buildertest.Platforms[0], "mkdir -p /build/out && echo mine > /build/out/f && rm -rf /build && ln -s "+host+" /build")
	o.Capture, o.CaptureDir, o.DirPlat = builder.CaptureDir, "/build/out", platform.MustParse("linux/arm64")
	o.Tag = &store.Ref{Name: "captured"}
	_, err := e.runner(t).Run(context.Background(), o)
	if err == nil || !strings.Contains(err.Error(), "refusing to capture /build/out: /build is a symlink to "+host) {
		t.Fatalf("capture through a planted symlink: %v", err)
	}
	if tags, _ := e.st.Tags(); len(tags) != len(buildertest.Platforms) {
		t.Errorf("a refused capture tagged something: %v", tags)
	}
}

// TestMountPointCleanupFollowsNothingThePlanted: after a run with a volume at /a/b/c, a
// container that moved /a/b away and planted /a/b -> HOSTDIR must not make the cleanup of
// the mount point remove HOSTDIR/c.
func TestMountPointCleanupFollowsNothingPlanted(t *testing.T) {
	e := setup(t)
	volume, victim := t.TempDir(), t.TempDir()
	if err := os.Mkdir(filepath.Join(victim, "c"), 0o755); err != nil {
		t.Fatal(err)
	}
	o := e.opts(buildertest.Platforms[0], "mv /a/b /a/moved && ln -s "+victim+" /a/b && echo planted")
	o.Mounts = []runc.Mount{{Source: volume, Destination: "/a/b/c"}}
	o.Capture, o.Tag = builder.CaptureLayer, &store.Ref{Name: "planted"}
	if _, err := e.runner(t).Run(context.Background(), o); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(victim, "c")); err != nil {
		t.Fatalf("the mount-point cleanup removed a host directory through a planted symlink: %v", err)
	}
}
