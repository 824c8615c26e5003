package builder_test

import (
	"context"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/serpent-os/serpent-oci/builder"
	"github.com/serpent-os/serpent-oci/builder/rootfs"
	"github.com/serpent-os/serpent-oci/builder/snapshot"
	"github.com/serpent-os/serpent-oci/oci/image"
	"github.com/serpent-os/serpent-oci/oci/layer"
	"github.com/serpent-os/serpent-oci/oci/platform"
	"github.com/serpent-os/serpent-oci/oci/store"
)

var benchTree = flag.String("bench.tree", "/usr/share", "directory the capture benchmark uses as its base image (at least 500 MB wanted)")

// BenchmarkCaptureOneFileChange measures what capturing a one-file change costs on a large base:
// the overlay path (the upper directory is the change) against a full re-walk of the tree (the
// copy fallback) and `umoci repack` of the same change, all in one run, as ratios. It also
// checks that a second run on the same base extracts nothing.
func BenchmarkCaptureOneFileChange(b *testing.B) {
	ctx := context.Background()
	st, err := store.Open(ctx, filepath.Join(b.TempDir(), "store"))
	if err != nil {
		b.Fatal(err)
	}
	p := platform.Host()
	if _, err := image.Import(ctx, st, *benchTree, store.Ref{Name: "base"}, image.ImportOptions{Platform: p}); err != nil {
		b.Fatal(err)
	}
	base, _, err := st.Image(store.Ref{Name: "base"}.WithPlatform(&p))
	if err != nil {
		b.Fatal(err)
	}
	m, _ := base.Manifest()
	baseSize := m.Layers[0].Size
	treeBytes := duBytes(b, *benchTree)

	overlay, err := builder.OverlayProvider(st)
	if err != nil {
		b.Fatal(err)
	}
	var capOverlay, capCopy, prepFirst, prepSecond time.Duration
	var secondExtracted int64 = -1
	for b.Loop() {
		start := time.Now()
		d1, _ := capture(b, st, overlay, base, &capOverlay)
		prepFirst = time.Since(start) - capOverlay
		start = time.Now()
		d2, second := capture(b, st, overlay, base, &capOverlay)
		prepSecond = time.Since(start) - capOverlay
		secondExtracted = second.Bytes
		d3, _ := capture(b, st, rootfs.Copy{}, base, &capCopy)
		if d1 != d2 || d1 != d3 {
			b.Fatalf("the same change captured as %s, %s and %s", d1, d2, d3)
		}
	}
	b.StopTimer()

	umociTook := umociRepack(b, st, base)
	fmt.Printf("\ncapture of a one-file change on a base of %d MB (%s; %d MB compressed)\n", treeBytes>>20, *benchTree, baseSize>>20)
	fmt.Printf("  %-26s %8.3fs\n", "overlay capture", capOverlay.Seconds())
	fmt.Printf("  %-26s %8.3fs  %6.1fx overlay's time\n", "full re-walk (copy path)", capCopy.Seconds(), capCopy.Seconds()/capOverlay.Seconds())
	if umociTook > 0 {
		fmt.Printf("  %-26s %8.3fs  %6.1fx overlay's time\n", "umoci repack", umociTook.Seconds(), umociTook.Seconds()/capOverlay.Seconds())
		b.ReportMetric(umociTook.Seconds()/capOverlay.Seconds(), "x-umoci-repack")
	}
	fmt.Printf("  first run: snapshot extraction %.2fs; second run: %.3fs, %d bytes extracted\n", prepFirst.Seconds(), prepSecond.Seconds(), secondExtracted)
	b.ReportMetric(capCopy.Seconds()/capOverlay.Seconds(), "x-full-walk")
	b.ReportMetric(float64(secondExtracted), "second-run-extracted-bytes")
}

// capture prepares a workspace on base with provider, writes one file, and captures the change
// as a layer; the time of the capture alone goes to took.
func capture(b *testing.B, st *store.Store, provider rootfs.Provider, base v1.Image, took *time.Duration) (v1.Hash, snapshot.Stats) {
	ctx := context.Background()
	dir, err := st.TempDir("bench")
	if err != nil {
		b.Fatal(err)
	}
	ws, err := provider.Prepare(ctx, base, filepath.Join(dir, "fs"))
	if err != nil {
		b.Fatal(err)
	}
	defer func() { ws.Close(); os.RemoveAll(dir) }()
	if err := os.WriteFile(filepath.Join(ws.Root(), "changed-file"), []byte("one change\n"), 0o644); err != nil {
		b.Fatal(err)
	}
	start := time.Now()
	changes, err := ws.Changes(ctx)
	if err != nil {
		b.Fatal(err)
	}
	l, err := image.WriteLayer(ctx, st, changes, layer.WriteOptions{Format: layer.OverlayUpper})
	if err != nil {
		b.Fatal(err)
	}
	*took = time.Since(start)
	d, _ := l.Digest()
	return d, rootfs.SnapshotStats(ws)
}

// umociRepack times `umoci repack` of the same one-file change (the unpack is not timed).
func umociRepack(b *testing.B, st *store.Store, base v1.Image) time.Duration {
	if _, err := exec.LookPath("umoci"); err != nil {
		fmt.Println("  umoci not installed: no umoci figure")
		return 0
	}
	dir := b.TempDir()
	layout := filepath.Join(dir, "layout")
	f, err := os.Create(filepath.Join(dir, "base.tar"))
	if err != nil {
		b.Fatal(err)
	}
	if err := image.Export(context.Background(), base, "base", image.OCIArchive, f); err != nil {
		b.Fatal(err)
	}
	f.Close()
	sh := func(script string) {
		cmd := exec.Command("sh", "-c", script)
		cmd.Env = append(os.Environ(), "DIR="+dir, "LAYOUT="+layout)
		if out, err := cmd.CombinedOutput(); err != nil {
			b.Fatalf("%s: %v\n%s", script, err, out)
		}
	}
	sh(`mkdir -p "$LAYOUT" && tar -xf "$DIR/base.tar" -C "$LAYOUT" && umoci unpack --image "$LAYOUT:base" "$DIR/bundle" && echo "one change" > "$DIR/bundle/rootfs/changed-file"`)
	start := time.Now()
	sh(`umoci repack --image "$LAYOUT:changed" "$DIR/bundle"`)
	return time.Since(start)
}

func duBytes(b *testing.B, root string) int64 {
	var n int64
	err := filepath.Walk(root, func(_ string, fi os.FileInfo, err error) error {
		if err == nil && fi.Mode().IsRegular() {
			n += fi.Size()
		}
		return err
	})
	if err != nil {
		b.Fatal(err)
	}
	return n
}
