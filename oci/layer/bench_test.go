package layer

import (
	"context"
	"flag"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/serpent-os/serpent-oci/oci/testenv"
)

var (
	benchTree   = flag.String("bench.tree", "/usr/share", "directory BenchmarkLayerWrite writes as a layer (at least 300 MB)")
	benchRounds = flag.Int("bench.rounds", 3, "BenchmarkLayerExtract: rounds of ours and pigz|tar, interleaved; their medians are compared")
)

// BenchmarkLayerWrite writes one tree as a gzip layer with serpent-oci's writer and, in the
// same run on the same tree, with `tar --sort=name | gzip`, `tar --sort=name | pigz` and
// `umoci insert`; each peer's time is reported as a ratio to ours (above 1: we are faster).
func BenchmarkLayerWrite(b *testing.B) {
	tree := *benchTree
	size := treeSize(b, tree)
	if size < 300<<20 {
		b.Fatalf("%s holds %d MB; the benchmark wants at least 300 MB (-bench.tree)", tree, size>>20)
	}
	out := b.TempDir()
	// Warm the page cache so that no contender pays for the first read.
	run(b, "sh", "-c", fmt.Sprintf("tar -cf - -C %q . > /dev/null", tree))

	var ours time.Duration
	var layerBytes int64
	for b.Loop() {
		start := time.Now()
		layerBytes = writeGzipLayer(b, tree, filepath.Join(out, "ours.tar.gz"))
		ours = time.Since(start)
	}

	peers := []struct{ name, script string }{
		{"tar|gzip", `tar --sort=name -cf - -C "$TREE" . | gzip -c > "$OUT/peer.tar.gz"`},
		{"tar|pigz", `tar --sort=name -cf - -C "$TREE" . | pigz -c > "$OUT/peer.tar.gz"`},
		{"umoci insert", `rm -rf "$OUT/umoci" && umoci init --layout "$OUT/umoci" && umoci new --image "$OUT/umoci:b" && umoci insert --image "$OUT/umoci:b" "$TREE" /bench`},
	}
	b.StopTimer()
	fmt.Printf("\nlayer write of %s (%d MB, %d MB as gzip by us)\n", tree, size>>20, layerBytes>>20)
	fmt.Printf("  %-14s %8.2fs\n", "serpent-oci", ours.Seconds())
	for _, p := range peers {
		start := time.Now()
		cmd := exec.Command("sh", "-c", p.script)
		cmd.Env = append(os.Environ(), "TREE="+tree, "OUT="+out)
		if msg, err := cmd.CombinedOutput(); err != nil {
			fmt.Printf("  %-14s failed: %v %s\n", p.name, err, msg)
			continue
		}
		took := time.Since(start)
		ratio := took.Seconds() / ours.Seconds()
		sizeNote := ""
		if fi, err := os.Stat(filepath.Join(out, "peer.tar.gz")); err == nil && p.name != "umoci insert" {
			sizeNote = fmt.Sprintf(" (%d MB)", fi.Size()>>20)
		}
		fmt.Printf("  %-14s %8.2fs  %5.2fx serpent-oci's time%s\n", p.name, took.Seconds(), ratio, sizeNote)
		b.ReportMetric(ratio, "x-"+metricName(p.name))
	}
	b.ReportMetric(float64(size)/ours.Seconds()/(1<<20), "MB/s")
}

func metricName(s string) string {
	out := []byte(s)
	for i, c := range out {
		if c == ' ' || c == '|' {
			out[i] = '-'
		}
	}
	return string(out)
}

func treeSize(b *testing.B, root string) int64 {
	var n int64
	err := filepath.WalkDir(root, func(_ string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.Type().IsRegular() {
			if fi, err := d.Info(); err == nil {
				n += fi.Size()
			}
		}
		return nil
	})
	if err != nil {
		b.Fatal(err)
	}
	return n
}

func run(b *testing.B, name string, args ...string) {
	if out, err := exec.Command(name, args...).CombinedOutput(); err != nil {
		b.Fatalf("%s: %v\n%s", name, err, out)
	}
}

// BenchmarkLayerExtract extracts the gzip layer of one tree with serpent-oci's applier
// (pgzip decoding on every core) and, in the same run from the same file, with
// `pigz -dc | tar -x` and umoci's unpack of the image made from the tree; each peer's time is
// reported as a ratio to ours (above 1: we are faster).
func BenchmarkLayerExtract(b *testing.B) {
	tree := *benchTree
	size := treeSize(b, tree)
	if size < 300<<20 {
		b.Fatalf("%s holds %d MB; the benchmark wants at least 300 MB (-bench.tree)", tree, size>>20)
	}
	out := b.TempDir()
	layerFile := filepath.Join(out, "layer.tar.gz")
	writeGzipLayer(b, tree, layerFile)
	// umoci's peer unpacks an image holding the same tree.
	run(b, "sh", "-c", fmt.Sprintf(`umoci init --layout %[1]q/umoci && umoci new --image %[1]q/umoci:b && umoci insert --image %[1]q/umoci:b %[2]q / >/dev/null`, out, tree))
	run(b, "sh", "-c", fmt.Sprintf("cat %q > /dev/null", layerFile)) // page cache warm for everyone

	// Each timing starts with the disk quiet (sync): the writeback of what the one before
	// wrote (umoci's layout, the last extraction) is nobody's cost. Ours and pigz|tar take
	// turns, round by round; umoci, four times slower, runs once.
	shell := func(script string) time.Duration {
		run(b, "sync")
		start := time.Now()
		cmd := exec.Command("sh", "-c", script)
		cmd.Env = append(os.Environ(), "LAYER="+layerFile, "OUT="+out)
		if msg, err := cmd.CombinedOutput(); err != nil {
			b.Fatalf("%s: %v %s", script, err, msg)
		}
		return time.Since(start)
	}
	var ours, tar []time.Duration
	for b.Loop() {
		for range *benchRounds {
			dst := filepath.Join(out, "ours")
			os.RemoveAll(dst)
			run(b, "sync")
			start := time.Now()
			lf, err := os.Open(layerFile)
			if err != nil {
				b.Fatal(err)
			}
			rc, err := Decompress(lf)
			if err != nil {
				b.Fatal(err)
			}
			if err := Extract(context.Background(), dst, rc, Dir); err != nil {
				b.Fatal(err)
			}
			rc.Close()
			ours = append(ours, time.Since(start))
			tar = append(tar, shell(`rm -rf "$OUT/peer" && mkdir "$OUT/peer" && pigz -dc "$LAYER" | tar -x -C "$OUT/peer"`))
		}
	}
	b.StopTimer()
	umoci := shell(`rm -rf "$OUT/bundle" && umoci unpack --image "$OUT/umoci:b" "$OUT/bundle" >/dev/null`)
	our := testenv.Median(ours).Seconds()
	fmt.Printf("\nlayer extract of %s (%d MB), medians of %d rounds\n", tree, size>>20, len(ours))
	fmt.Printf("  %-16s %8.2fs          (rounds: %s)\n", "serpent-oci", our, seconds(ours))
	for _, p := range []struct {
		name string
		took float64
		runs []time.Duration
	}{
		{"pigz -dc|tar -x", testenv.Median(tar).Seconds(), tar},
		{"umoci unpack", umoci.Seconds(), []time.Duration{umoci}},
	} {
		fmt.Printf("  %-16s %8.2fs  %5.2fx serpent-oci's time   (rounds: %s)\n", p.name, p.took, p.took/our, seconds(p.runs))
		b.ReportMetric(p.took/our, "x-"+metricName(p.name))
	}
	b.ReportMetric(float64(size)/our/(1<<20), "MB/s")
}

// seconds lists ds as "4.20s 3.90s".
func seconds(ds []time.Duration) string {
	parts := make([]string, len(ds))
	for i, d := range ds {
		parts[i] = fmt.Sprintf("%.2fs", d.Seconds())
	}
	return strings.Join(parts, " ")
}

// writeGzipLayer writes tree as a gzip layer into the file path and returns its size.
func writeGzipLayer(b *testing.B, tree, path string) int64 {
	f, err := os.Create(path)
	if err != nil {
		b.Fatal(err)
	}
	if _, err := Write(context.Background(), tree, f, WriteOptions{Compression: Gzip}); err != nil {
		b.Fatal(err)
	}
	if err := f.Close(); err != nil {
		b.Fatal(err)
	}
	fi, err := os.Stat(path)
	if err != nil {
		b.Fatal(err)
	}
	return fi.Size()
}
