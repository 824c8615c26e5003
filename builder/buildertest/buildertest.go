// Package buildertest makes the images the builder's tests run in: busybox for linux/amd64
// and linux/arm64, from Debian's busybox-static packages that `make deps` downloads.
package buildertest

import (
	"context"
	"os"
	"path/filepath"
	"testing"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/serpent-os/serpent-oci/oci/image"
	"github.com/serpent-os/serpent-oci/oci/platform"
	"github.com/serpent-os/serpent-oci/oci/store"
	"github.com/serpent-os/serpent-oci/oci/testenv"
)

// TestdataDir is where `make deps` keeps fixture packages.
func TestdataDir() string {
	if d := os.Getenv("SERPENT_OCI_TESTDATA"); d != "" {
		return d
	}
	return "/var/cache/serpent-oci/testdata"
}

// Applets are the busybox applets the test images link.
var Applets = []string{
	"sh", "ls", "cat", "echo", "mkdir", "rm", "rmdir", "uname", "touch", "mv", "cp", "sleep",
	"printf", "chmod", "ln", "find", "sed", "grep", "true", "false", "wget", "nc", "head", "test",
	"stat", "mknod", "id", "env", "dd", "tar", "sync",
}

// BusyboxRootfs writes a busybox root filesystem for p into dir: /bin/busybox, applet links,
// /etc with a motd and a directory tree to change, /usr/share/doc with some files.
func BusyboxRootfs(t testing.TB, p v1.Platform, dir string) {
	t.Helper()
	b := busyboxBinary(t, p.Architecture)
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	for _, d := range []string{"bin", "etc/app/conf.d", "usr/share/doc/busybox", "var/empty"} {
		must(os.MkdirAll(filepath.Join(dir, d), 0o755))
	}
	must(os.WriteFile(filepath.Join(dir, "bin", "busybox"), b, 0o755))
	for _, a := range Applets {
		must(os.Symlink("busybox", filepath.Join(dir, "bin", a)))
	}
	must(os.WriteFile(filepath.Join(dir, "etc", "motd"), []byte("hello from busybox\n"), 0o644))
	must(os.WriteFile(filepath.Join(dir, "etc", "app", "conf.d", "a.conf"), []byte("a=1\n"), 0o644))
	must(os.WriteFile(filepath.Join(dir, "etc", "app", "conf.d", "b.conf"), []byte("b=2\n"), 0o644))
	must(os.WriteFile(filepath.Join(dir, "etc", "app", "main.conf"), []byte("main\n"), 0o644))
	must(os.WriteFile(filepath.Join(dir, "usr", "share", "doc", "busybox", "README"), []byte("busybox-static from Debian\n"), 0o644))
}

// Busybox imports a busybox image for p into st, tagged busybox@p, and returns it.
func Busybox(t testing.TB, st *store.Store, p v1.Platform) (v1.Image, v1.Descriptor) {
	t.Helper()
	dir := filepath.Join(t.TempDir(), "rootfs")
	BusyboxRootfs(t, p, dir)
	ref := store.Ref{Name: "busybox"}.WithPlatform(&p)
	d, err := image.Import(context.Background(), st, dir, ref, image.ImportOptions{Platform: p})
	if err != nil {
		t.Fatal(err)
	}
	img, _, err := st.Image(ref)
	if err != nil {
		t.Fatal(err)
	}
	return img, d
}

// Platforms are the two platforms the bootstrap targets: the host's own (amd64 here) and arm64
// under qemu.
var Platforms = []v1.Platform{platform.MustParse("linux/amd64"), platform.MustParse("linux/arm64")}

// RequireRunc requires what running containers needs: root, runc, overlayfs.
func RequireRunc(t testing.TB) {
	t.Helper()
	testenv.RequireRoot(t)
	testenv.RequireTools(t, "runc")
}
