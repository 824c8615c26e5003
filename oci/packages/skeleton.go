package packages

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/serpent-os/serpent-oci/oci/image"
	"github.com/serpent-os/serpent-oci/oci/layer"
	"github.com/serpent-os/serpent-oci/oci/store"
)

// skeletonFiles are the few files a root needs that no package holds (a package holds /usr
// only): who root is, and the loopback host.
var skeletonFiles = map[string]string{
	"etc/passwd": "root:x:0:0:root:/root:/bin/sh\n",
	"etc/group":  "root:x:0:\n",
	"etc/hosts":  "127.0.0.1 localhost\n::1 localhost\n",
}

// Skeleton is the image a root assembled from packages starts on, for platform p: the
// usrmerge layout (/bin, /sbin and /lib links into /usr), the directories a process expects
// (/etc, /tmp and /var/tmp world-writable and sticky, /dev, /proc, /sys, /run, /root, /home)
// and skeletonFiles, as moss makes a root's skeleton before it links packages in. Its layer
// is stored in st; the same epoch gives the same image.
func Skeleton(ctx context.Context, st *store.Store, p v1.Platform, epoch time.Time) (v1.Image, error) {
	dir, err := st.TempDir("skeleton")
	if err != nil {
		return nil, err
	}
	defer os.RemoveAll(dir)
	for _, d := range []string{"usr/bin", "usr/sbin", "usr/lib", "etc", "dev", "proc", "sys", "run", "root", "home", "var"} {
		if err := os.MkdirAll(filepath.Join(dir, d), 0o755); err != nil {
			return nil, err
		}
	}
	for _, d := range []string{"tmp", "var/tmp"} {
		if err := os.Mkdir(filepath.Join(dir, d), 0o755); err != nil {
			return nil, err
		}
		if err := os.Chmod(filepath.Join(dir, d), 0o1777); err != nil { // past the umask
			return nil, err
		}
	}
	for _, l := range []string{"bin", "sbin", "lib"} {
		if err := os.Symlink("usr/"+l, filepath.Join(dir, l)); err != nil {
			return nil, err
		}
	}
	for name, content := range skeletonFiles {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(content), 0o644); err != nil {
			return nil, err
		}
	}
	wo := layer.WriteOptions{SourceDateEpoch: epoch}
	l, err := image.WriteLayer(ctx, st, dir, wo)
	if err != nil {
		return nil, fmt.Errorf("skeleton: %w", err)
	}
	return image.Append(nil, p, l, image.AppendOptions{Layer: wo, CreatedBy: "serpent-oci skeleton (usrmerge layout)"})
}

// AssembleRoot is the root of pkgs (in Resolve's order) for platform p: Assemble on the
// Skeleton, both at epoch, the skeleton's layer stored in st.
func AssembleRoot(ctx context.Context, st *store.Store, pkgs []v1.Image, p v1.Platform, epoch time.Time) (v1.Image, error) {
	skel, err := Skeleton(ctx, st, p, epoch)
	if err != nil {
		return nil, err
	}
	return Assemble(skel, pkgs, p, epoch)
}
