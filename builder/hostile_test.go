package builder_test

import (
	"context"
	"fmt"
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
	o.Output.Capture, o.Output.Dir = builder.CaptureDir, "/build/out"
	c := builder.Commit{Platform: platform.MustParse("linux/arm64"), Tag: &store.Ref{Name: "captured"}}
	_, err := builder.RunAndCommit(context.Background(), e.runner(t), o, c)
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
	o.Process.Mounts = []builder.Mount{{Source: volume, Destination: "/a/b/c"}}
	o.Output.Capture = builder.CaptureLayer
	if _, err := builder.RunAndCommit(context.Background(), e.runner(t), o, builder.Commit{Tag: &store.Ref{Name: "planted"}}); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(victim, "c")); err != nil {
		t.Fatalf("the mount-point cleanup removed a host directory through a planted symlink: %v", err)
	}
}

// TestContainerIsHardened: by default a stage's process cannot gain privileges, runs under a
// seccomp filter, lacks NET_RAW, cannot make a user namespace or mount anything, and has its
// limits; under qemu for a foreign platform as natively.
func TestContainerIsHardened(t *testing.T) {
	e := setup(t)
	script := `grep -E '^(NoNewPrivs|Seccomp|CapBnd):' /proc/self/status
echo "nofile $(ulimit -n)"
if unshare -U -r -m true 2>/dev/null; then echo "unshare: allowed"; else echo "unshare: refused"; fi
mkdir -p /mnt/t
if mount -t tmpfs none /mnt/t 2>/dev/null; then echo "mount: allowed"; else echo "mount: refused"; fi`
	for _, p := range buildertest.Platforms {
		t.Run(platform.String(p), func(t *testing.T) {
			res, err := e.runner(t).Run(context.Background(), e.opts(p, script))
			if err != nil {
				t.Fatalf("%v\n%s", err, e.console)
			}
			b, err := os.ReadFile(res.Log)
			if err != nil {
				t.Fatal(err)
			}
			log := string(b)
			nofile := fmt.Sprintf("nofile %d", runc.DefaultLimits().Files)
			for _, want := range []string{"NoNewPrivs:\t1", "Seccomp:\t2", nofile, "unshare: refused", "mount: refused"} {
				if !strings.Contains(log, want) {
					t.Errorf("the container's log lacks %q:\n%s", want, log)
				}
			}
			var capBnd uint64
			for _, line := range strings.Split(log, "\n") {
				if hex, ok := strings.CutPrefix(line, "CapBnd:\t"); ok {
					if _, err := fmt.Sscanf(hex, "%x", &capBnd); err != nil {
						t.Fatal(err)
					}
				}
			}
			const capNetRaw, capSysAdmin, capMknod = 13, 21, 27
			if capBnd == 0 || capBnd&(1<<capNetRaw) != 0 || capBnd&(1<<capSysAdmin) != 0 || capBnd&(1<<capMknod) == 0 {
				t.Errorf("bounding set %#x: want MKNOD, and neither NET_RAW nor SYS_ADMIN", capBnd)
			}
		})
	}
}

// TestRecoverRemovesEmptyRuncState: a run killed while runc made its container can leave a
// state directory without state.json (runc then complains about it on every list); Recover
// removes it.
func TestRecoverRemovesEmptyRuncState(t *testing.T) {
	e := setup(t)
	r := e.runner(t)
	stale := filepath.Join(e.st.Dir(), ".serpent", "runc", builder.ContainerPrefix+"deadbeef0000")
	if err := os.MkdirAll(stale, 0o700); err != nil {
		t.Fatal(err)
	}
	rt := &runc.Runtime{StateDir: filepath.Join(e.st.Dir(), ".serpent", "runc")}
	rec, err := r.Recover(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(stale); !os.IsNotExist(err) {
		t.Fatalf("Recover left %s: %v (recovered %+v)", stale, err, rec)
	}
	if _, err := rt.List(context.Background()); err != nil {
		t.Fatalf("runc list after Recover: %v", err)
	}
}
