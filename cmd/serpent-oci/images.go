package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"maps"
	"slices"
	"strings"
	"text/tabwriter"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/serpent-os/serpent-oci/builder/build"
	"github.com/serpent-os/serpent-oci/oci/atomicfile"
	"github.com/serpent-os/serpent-oci/oci/image"
	"github.com/serpent-os/serpent-oci/oci/layer"
	"github.com/serpent-os/serpent-oci/oci/platform"
	"github.com/serpent-os/serpent-oci/oci/store"
	"github.com/spf13/pflag"
)

// storePath is --store, else the default store directory.
func (e *env) storePath() (string, error) {
	if e.storeDir != "" {
		return e.storeDir, nil
	}
	return store.DefaultDir()
}

func (e *env) openStore(ctx context.Context) (*store.Store, error) {
	dir, err := e.storePath()
	if err != nil {
		return nil, err
	}
	return store.Open(ctx, dir)
}

// readStore opens the store for a command that only reads it: it must exist, and nothing is
// written into it.
func (e *env) readStore(ctx context.Context) (*store.Store, error) {
	dir, err := e.storePath()
	if err != nil {
		return nil, err
	}
	return store.OpenExisting(ctx, dir)
}

// image opens the store for reading and finds the image ref names: for a name of several
// platforms, the host's, as run and pull take it (podman's rule; --platform to choose).
func (e *env) image(ctx context.Context, ref store.Ref) (*store.Store, v1.Image, v1.Descriptor, error) {
	st, err := e.readStore(ctx)
	if err != nil {
		return nil, nil, v1.Descriptor{}, err
	}
	img, d, err := st.ImageFor(ref, platform.Host())
	return st, img, d, err
}

// refArg resolves a TAG argument and an optional --platform into a store ref.
func refArg(arg string, plat platform.List) (store.Ref, error) {
	ref, err := store.ParseRef(arg)
	if err != nil {
		return ref, usageError{err: err}
	}
	switch len(plat) {
	case 0:
	case 1:
		if ref.Platform != nil && !platform.Equal(*ref.Platform, plat[0]) {
			return ref, usagef("%s names platform %s but --platform says %s", arg, platform.String(*ref.Platform), platform.String(plat[0]))
		}
		ref = ref.WithPlatform(&plat[0])
	default:
		return ref, usagef("--platform: give one platform here, not %d", len(plat))
	}
	return ref, nil
}

func importCommand() *command {
	var (
		tag, compression string
		plat             platform.List
		epoch            epochFlag
	)
	return &command{
		name:    "import",
		args:    "DIR|ROOTFS.tar[.gz|.zst|.xz]",
		summary: "Make a one-layer image from a directory or a rootfs tarball",
		long: `The layer is deterministic: entries sorted, mtimes clamped to the source date epoch,
numeric owners, hardlinks, device nodes and xattrs kept. The same tree imported twice, from
anywhere, at any time, gives the same image digest.`,
		example: `serpent-oci import ./rootfs --tag busybox --platform linux/arm64
serpent-oci import debian-rootfs.tar.xz --tag debian --platform amd64 --compression zstd`,
		flags: func(fs *pflag.FlagSet) {
			fs.StringVarP(&tag, "tag", "t", "", "tag for the new image (required)")
			fs.Var(&plat, "platform", "platform of the image's binaries, os/arch[/variant] (default: the host's)")
			fs.StringVar(&compression, "compression", "gzip", "layer compression: gzip, zstd or none")
			addEpochFlag(fs, &epoch, "mtimes are clamped to this time")
		},
		run: func(ctx context.Context, e *env, args []string) error {
			if len(args) != 1 {
				return usagef("import: want one DIR or tarball, got %d arguments", len(args))
			}
			if tag == "" {
				return usagef("import: --tag is required")
			}
			plat = platform.OrHost(plat)
			ref, err := refArg(tag, plat)
			if err != nil {
				return err
			}
			c, err := layer.ParseCompression(compression)
			if err != nil {
				return usageError{err: err}
			}
			sde, err := epoch.Time()
			if err != nil {
				return err
			}
			st, err := e.openStore(ctx)
			if err != nil {
				return err
			}
			d, err := image.Import(ctx, st, args[0], ref, image.ImportOptions{
				Platform: *ref.Platform,
				Layer:    layer.WriteOptions{Compression: c, SourceDateEpoch: sde},
			})
			if err != nil {
				return err
			}
			fmt.Fprintf(e.stdout, "%s %s\n", ref, d.Digest)
			return nil
		},
	}
}

func exportCommand() *command {
	var (
		plat           platform.List
		output, format string
	)
	return &command{
		name:    "export",
		args:    "TAG",
		summary: "Write an image as a rootfs tarball or an OCI archive",
		long: `rootfs (the default) is the image's filesystem with every layer applied, one tar stream.
oci-archive is an OCI image layout in a tar file, which skopeo and podman load: of a tag with
several platforms (or an index), one archive holding an index of them; a rootfs of such a tag
is the host's platform's unless --platform names another. The output appears only
when complete: an interrupted export leaves no partial file.`,
		example: `serpent-oci export stage3 --platform linux/arm64 -o stage3-arm64.tar
serpent-oci export stage3@linux/amd64 --format oci-archive -o stage3.oci.tar`,
		flags: func(fs *pflag.FlagSet) {
			fs.Var(&plat, "platform", "which platforms' images, when the tag has several (a rootfs takes one; an oci-archive takes several, as an index)")
			fs.StringVarP(&output, "output", "o", "", "file to write, - for standard output (required)")
			fs.StringVar(&format, "format", "rootfs", "rootfs or oci-archive")
		},
		run: func(ctx context.Context, e *env, args []string) error {
			if len(args) != 1 {
				return usagef("export: want one TAG, got %d arguments", len(args))
			}
			if output == "" {
				return usagef("export: --output is required (- for standard output)")
			}
			f, err := image.ParseExportFormat(format)
			if err != nil {
				return usageError{err: err}
			}
			st, err := e.readStore(ctx)
			if err != nil {
				return err
			}
			t, err := selectTag(st, args[0], plat)
			if err != nil {
				return err
			}
			if f == image.Rootfs && len(plat) == 0 && len(t.Images) > 1 {
				// One rootfs of a name of several platforms: the host's, when the name has
				// it, as run and inspect read such a name.
				if host, err := selectTag(st, args[0], platform.List{platform.Host()}); err == nil {
					t = host
				}
			}
			imgs, err := t.AllImages(st)
			if err != nil {
				return err
			}
			name := strings.SplitN(args[0], "@", 2)[0]
			if f == image.Rootfs && len(imgs) != 1 {
				var plats []string
				for _, img := range imgs {
					if cfg, err := img.ConfigFile(); err == nil {
						plats = append(plats, platform.String(*cfg.Platform()))
					}
				}
				return usagef("export %s as a rootfs: it has %d platforms (%s): name one with --platform, or export them all with --format oci-archive",
					args[0], len(imgs), strings.Join(plats, ", "))
			}
			switch {
			case output != "-":
				if err := image.ExportFile(ctx, imgs, name, f, output); err != nil {
					return err
				}
			case f == image.OCIArchive:
				return image.ExportArchive(ctx, imgs, name, e.stdout)
			default:
				return image.Export(ctx, imgs[0], name, f, e.stdout)
			}
			if t.Index != nil {
				fmt.Fprintf(e.stdout, "%s %s → %s\n", name, t.IndexDesc.Digest, output)
			}
			for i := range t.Images {
				fmt.Fprintf(e.stdout, "%s %s → %s\n", t.Refs[i], t.Descs[i].Digest, output)
			}
			return nil
		},
	}
}

// imageRow is one tag of the store as images lists it.
type imageRow struct {
	Tag       string `json:"tag"` // as index.json holds it
	Name      string `json:"name"`
	Platform  string `json:"platform,omitempty"` // "" for an index, or an image whose config has none
	Digest    string `json:"digest"`
	MediaType string `json:"media_type"`
	Size      int64  `json:"size,omitempty"` // compressed layers and config, of an image
	Created   string `json:"created,omitempty"`
}

func imagesCommand() *command {
	var (
		quiet  bool
		format string
	)
	return &command{
		name:    "images",
		summary: "List the images in the store",
		long: `One line per tag: the tag in the spelling index.json holds (NAME@OS-ARCH, which skopeo and
umoci take, and every command here), its platform ("(index)" for a multi-platform index),
manifest digest, size (compressed layers and config) and creation time. -q prints the tags
alone. --format json prints an
array of objects with the keys tag, name, platform, digest, media_type, size and created.`,
		example: `serpent-oci images
serpent-oci --store /srv/serpent images -q
serpent-oci images --format json | jq -r '.[] | select(.platform == "linux/arm64") | .tag'`,
		flags: func(fs *pflag.FlagSet) {
			fs.BoolVarP(&quiet, "quiet", "q", false, "print tags only")
			fs.StringVar(&format, "format", "table", "table or json")
		},
		run: func(ctx context.Context, e *env, args []string) error {
			if len(args) != 0 {
				return usagef("images takes no arguments")
			}
			if format != "table" && format != "json" {
				return usagef("images: --format %q: want table or json", format)
			}
			// A store that does not exist yet (a fresh machine) holds no images, as podman's
			// does: the listing is empty, and nothing is created.
			dir, err := e.storePath()
			if err != nil {
				return err
			}
			st, missing, err := store.OpenOrEmpty(ctx, dir)
			if err != nil {
				return err
			}
			var tags []store.Tag
			if missing {
				// On stderr, for a mistyped --store: stdout stays the (empty) listing.
				fmt.Fprintf(e.stderr, "serpent-oci: store %s does not exist yet: no images\n", dir)
			} else {
				if tags, err = st.Tags(); err != nil {
					return err
				}
			}
			if quiet {
				for _, t := range tags {
					fmt.Fprintln(e.stdout, t.Ref)
				}
				return nil
			}
			rows := make([]imageRow, 0, len(tags))
			for _, t := range tags {
				row := imageRow{Tag: t.Ref.String(), Name: t.Ref.Name, Digest: t.Descriptor.Digest.String(), MediaType: string(t.Descriptor.MediaType)}
				if p := t.Platform(); p != nil {
					row.Platform = platform.String(*p)
				}
				if img, err := st.ImageByDigest(t.Descriptor); err == nil && !t.Descriptor.MediaType.IsIndex() {
					if n, err := image.Size(img); err == nil {
						row.Size = n
					}
					if cfg, err := img.ConfigFile(); err == nil {
						row.Created = cfg.Created.UTC().Format(time.RFC3339)
					}
				}
				rows = append(rows, row)
			}
			if format == "json" {
				enc := json.NewEncoder(e.stdout)
				enc.SetIndent("", "  ")
				return enc.Encode(rows)
			}
			tw := tabwriter.NewWriter(e.stdout, 0, 4, 2, ' ', 0)
			fmt.Fprintln(tw, "TAG\tPLATFORM\tDIGEST\tSIZE\tCREATED")
			for i, r := range rows {
				plat, size, created := r.Platform, "-", "-"
				switch {
				case tags[i].Descriptor.MediaType.IsIndex():
					plat = "(index)"
				case plat == "":
					plat = "(none)" // an image whose config names no platform
				}
				if r.Size > 0 {
					size = humanBytes(r.Size)
				}
				if r.Created != "" {
					created = r.Created
				}
				fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\n", r.Tag, plat, shortDigest(tags[i].Descriptor.Digest), size, created)
			}
			return tw.Flush()
		},
	}
}

func shortDigest(h v1.Hash) string {
	if len(h.Hex) < 12 {
		return h.String()
	}
	return h.Algorithm + ":" + h.Hex[:12]
}

func humanBytes(n int64) string {
	const unit = 1024
	if n < unit {
		return fmt.Sprintf("%d B", n)
	}
	div, exp := int64(unit), 0
	for m := n / unit; m >= unit; m /= unit {
		div *= unit
		exp++
	}
	return fmt.Sprintf("%.1f %ciB", float64(n)/float64(div), "KMGTPE"[exp])
}

func inspectCommand() *command {
	var (
		plat   platform.List
		format string
	)
	return &command{
		name:    "inspect",
		args:    "TAG",
		summary: "Show an image's manifest, config, history and annotations",
		example: `serpent-oci inspect stage3 --platform linux/arm64
serpent-oci inspect busybox@linux/amd64 --format json | jq .config.history`,
		flags: func(fs *pflag.FlagSet) {
			fs.Var(&plat, "platform", "which platform's image, when the tag has several")
			fs.StringVar(&format, "format", "text", "text or json")
		},
		run: func(ctx context.Context, e *env, args []string) error {
			if len(args) != 1 {
				return usagef("inspect: want one TAG, got %d arguments", len(args))
			}
			if format != "text" && format != "json" {
				return usagef("inspect: --format %q: want text or json", format)
			}
			ref, err := refArg(args[0], plat)
			if err != nil {
				return err
			}
			st, img, d, err := e.image(ctx, ref)
			if err != nil {
				return err
			}
			m, err := img.Manifest()
			if err != nil {
				return err
			}
			cfg, err := img.ConfigFile()
			if err != nil {
				return err
			}
			if format == "json" {
				enc := json.NewEncoder(e.stdout)
				enc.SetIndent("", "  ")
				return enc.Encode(struct {
					Tag        string         `json:"tag"`
					Descriptor v1.Descriptor  `json:"descriptor"`
					Manifest   *v1.Manifest   `json:"manifest"`
					Config     *v1.ConfigFile `json:"config"`
				}{ref.WithPlatform(d.Platform).String(), d, m, cfg})
			}
			referrers, err := st.Referrers(d.Digest, "")
			if err != nil {
				return err
			}
			return printInspect(e, ref.WithPlatform(d.Platform), d, m, cfg, referrers)
		},
	}
}

func printInspect(e *env, ref store.Ref, d v1.Descriptor, m *v1.Manifest, cfg *v1.ConfigFile, referrers []v1.Descriptor) error {
	// minwidth 13: "Media type:" and its padding, so that the blocks the annotations part
	// (each aligned on its own) line up.
	tw := tabwriter.NewWriter(e.stdout, 13, 4, 2, ' ', 0)
	fmt.Fprintf(tw, "Tag:\t%s\n", ref)
	fmt.Fprintf(tw, "Digest:\t%s\n", d.Digest)
	fmt.Fprintf(tw, "Media type:\t%s\n", d.MediaType)
	fmt.Fprintf(tw, "Platform:\t%s/%s%s\n", cfg.OS, cfg.Architecture, prefixed("/", cfg.Variant))
	fmt.Fprintf(tw, "Created:\t%s\n", cfg.Created.UTC().Format(time.RFC3339))
	fmt.Fprintf(tw, "Config:\t%s\n", m.Config.Digest)
	if len(cfg.Config.Env) > 0 {
		fmt.Fprintf(tw, "Env:\t%s\n", strings.Join(cfg.Config.Env, " "))
	}
	if len(cfg.Config.Entrypoint) > 0 {
		fmt.Fprintf(tw, "Entrypoint:\t%q\n", cfg.Config.Entrypoint)
	}
	if len(cfg.Config.Cmd) > 0 {
		fmt.Fprintf(tw, "Cmd:\t%q\n", cfg.Config.Cmd)
	}
	if cfg.Config.WorkingDir != "" {
		fmt.Fprintf(tw, "Working dir:\t%s\n", cfg.Config.WorkingDir)
	}
	printMap(tw, "Labels", cfg.Config.Labels)
	// Annotations that hold JSON (sources, components, spin steps) are shown indented after
	// the table rather than as one long line in it.
	plain, structured := map[string]string{}, map[string]string{}
	for k, v := range m.Annotations {
		var buf bytes.Buffer
		if (strings.HasPrefix(v, "[") || strings.HasPrefix(v, "{")) && json.Indent(&buf, []byte(v), "    ", "  ") == nil {
			plain[k], structured[k] = "(below)", buf.String()
		} else {
			plain[k] = v
		}
	}
	printMap(tw, "Annotations", plain)
	for _, k := range slices.Sorted(maps.Keys(structured)) {
		fmt.Fprintf(tw, "  %s:\n    %s\n", k, structured[k])
	}
	// The annotation keys are a column of their own: what follows is not aligned on them.
	if err := tw.Flush(); err != nil {
		return err
	}
	for _, r := range referrers {
		made := ""
		if a := r.Annotations[build.AnnotationAccelerator]; a != "" {
			// An SBOM of an accelerated build: the image is the emulated build's manifest.
			made = " (of a build accelerated by " + a + ")"
		}
		fmt.Fprintf(tw, "Referrer:\t%s %s%s\n", r.ArtifactType, r.Digest, made)
	}
	var total int64
	fmt.Fprintf(tw, "Layers:\t%d\n", len(m.Layers))
	for i, l := range m.Layers {
		total += l.Size
		fmt.Fprintf(tw, "  %d\t%s\t%s\t%s\n", i, l.Digest, humanBytes(l.Size), l.MediaType)
	}
	fmt.Fprintf(tw, "Size:\t%s (layers and config)\n", humanBytes(total+m.Config.Size))
	fmt.Fprintf(tw, "History:\t%d\n", len(cfg.History))
	for _, h := range cfg.History {
		what := h.CreatedBy
		if h.Comment != "" {
			what += " (" + h.Comment + ")"
		}
		if h.EmptyLayer {
			what += " [no layer]"
		}
		// Not a column of the table: a timestamp is wider than its keys and would push every
		// value right.
		fmt.Fprintf(tw, "  %s  %s\n", h.Created.UTC().Format(time.RFC3339), what)
	}
	return tw.Flush()
}

func printMap(tw *tabwriter.Writer, title string, m map[string]string) {
	if len(m) == 0 {
		return
	}
	fmt.Fprintf(tw, "%s:\n", title)
	for _, k := range slices.Sorted(maps.Keys(m)) {
		fmt.Fprintf(tw, "  %s\t%s\n", k, m[k])
	}
}

func prefixed(p, s string) string {
	if s == "" {
		return ""
	}
	return p + s
}

func sbomCommand() *command {
	var plat platform.List
	return &command{
		name:    "sbom",
		args:    "TAG",
		summary: "Print a stage image's SBOM (SPDX 2.3 JSON)",
		long: `Every stage image gets an SPDX 2.3 document: the image, its base and every source its recipe
names, with checksums, origins and licences. It is stored beside the image as an OCI referrer
(an artifact whose subject is the image) and pushed with it.`,
		example: `serpent-oci sbom stage3 --platform linux/arm64 | jq '.packages[].name'`,
		flags: func(fs *pflag.FlagSet) {
			fs.Var(&plat, "platform", "which platform of TAG, when it has several")
		},
		run: func(ctx context.Context, e *env, args []string) error {
			if len(args) != 1 {
				return usagef("sbom: want one TAG, got %d arguments", len(args))
			}
			return printReferrer(ctx, e, args[0], plat, build.SPDXMediaType, "no SBOM in the store: images made by `build` have one")
		},
	}
}

func seedLockCommand() *command {
	var (
		plat   platform.List
		output string
	)
	return &command{
		name:    "seed-lock",
		args:    "[TAG]",
		summary: "Print the lock of a seed image: its Debian packages, versions and .deb sha256s",
		long: `A seed (a from: host-packages stage, made with mmdebstrap from the machine's apt sources)
gets a lock when it is made: every package installed, at its version, with the sha256 of the
.deb the archive served, stored beside the image as an OCI referrer. Given back to build, plan
or verify with --seed-lock FILE, it pins the seed: a seed of other versions is made again with
exactly the locked versions, and a version the archive no longer serves is named. TAG is seed
by default (seed-full for the full profile).`,
		example: `serpent-oci seed-lock -o seed.lock
serpent-oci build stage3 --seed-lock seed.lock`,
		flags: func(fs *pflag.FlagSet) {
			fs.Var(&plat, "platform", "which platform of TAG, when it has several (a seed is the host's)")
			fs.StringVarP(&output, "output", "o", "", "write the lock to this file (default: standard output)")
		},
		run: func(ctx context.Context, e *env, args []string) error {
			if len(args) > 1 {
				return usagef("seed-lock: want at most one TAG, got %d arguments", len(args))
			}
			tag := "seed"
			if len(args) == 1 {
				tag = args[0]
			}
			missing := "no seed lock in the store: seeds made by build from this version on have one (build --rebuild seed makes it again)"
			if output == "" {
				return printReferrer(ctx, e, tag, plat, build.SeedLockMediaType, missing)
			}
			var b bytes.Buffer
			out := *e
			out.stdout = &b
			if err := printReferrer(ctx, &out, tag, plat, build.SeedLockMediaType, missing); err != nil {
				return err
			}
			return atomicfile.Write(output, func(w io.Writer) error { _, err := w.Write(b.Bytes()); return err })
		},
	}
}

// printReferrer prints the data of the newest artifact of artifactType that the store holds
// about the image TAG names (missing says why there may be none).
func printReferrer(ctx context.Context, e *env, tag string, plat platform.List, artifactType, missing string) error {
	ref, err := refArg(tag, plat)
	if err != nil {
		return err
	}
	st, _, d, err := e.image(ctx, ref)
	if err != nil {
		return err
	}
	refs, err := st.Referrers(d.Digest, artifactType)
	if err != nil {
		return err
	}
	if len(refs) == 0 {
		return fmt.Errorf("%s (%s) has %s", ref, d.Digest, missing)
	}
	data, err := st.ReferrerData(refs[len(refs)-1])
	if err != nil {
		return err
	}
	_, err = e.stdout.Write(append(bytes.TrimRight(data, "\n"), '\n'))
	return err
}
