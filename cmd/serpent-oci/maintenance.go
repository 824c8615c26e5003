package main

import (
	"context"
	"fmt"
	"runtime/debug"
	"text/tabwriter"

	"github.com/serpent-os/serpent-oci/builder/build"

	"github.com/serpent-os/serpent-oci/oci/platform"
	"github.com/spf13/pflag"
)

// version is set at link time (-ldflags "-X main.version=..."); otherwise the module's.
var version = ""

func tagCommand() *command {
	var plat platform.List
	return &command{
		name:    "tag",
		args:    "SOURCE TARGET",
		summary: "Give an image (or index) another tag",
		long: `TARGET takes the platforms of SOURCE: every platform SOURCE has (or an index tagged
SOURCE, as it is), or those --platform names; an existing TARGET for a platform is replaced.`,
		example: `serpent-oci tag stage3 serpent/stage3:2026.11
serpent-oci tag stage3 --platform linux/arm64 stage3-arm64`,
		flags: func(fs *pflag.FlagSet) {
			fs.Var(&plat, "platform", "which platforms of SOURCE, when it has several (comma-separated)")
		},
		run: func(ctx context.Context, e *env, args []string) error {
			if len(args) != 2 {
				return usagef("tag: want SOURCE and TARGET, got %d arguments", len(args))
			}
			dst, err := refArg(args[1], nil)
			if err != nil {
				return err
			}
			if dst.Platform != nil {
				return usagef("tag: TARGET %s takes SOURCE's platforms: give it as a name", args[1])
			}
			st, err := e.openStore(ctx)
			if err != nil {
				return err
			}
			t, err := selectTag(st, args[0], plat)
			if err != nil {
				return err
			}
			if t.Index != nil {
				if err := st.SetTag(ctx, dst, t.IndexDesc); err != nil {
					return err
				}
				fmt.Fprintf(e.stdout, "%s %s\n", dst, t.IndexDesc.Digest)
				return nil
			}
			for i, d := range t.Descs {
				to := dst.WithPlatform(t.Refs[i].Platform)
				if err := st.SetTag(ctx, to, d); err != nil {
					return err
				}
				fmt.Fprintf(e.stdout, "%s %s\n", to, d.Digest)
			}
			return nil
		},
	}
}

func untagCommand() *command {
	var plat platform.List
	return &command{
		name:    "untag",
		args:    "TAG",
		summary: "Remove a tag (its blobs stay until gc)",
		long:    `Without a platform, the tag is removed for every platform it has.`,
		example: `serpent-oci untag stage3 --platform linux/amd64
serpent-oci untag old-experiment && serpent-oci gc`,
		flags: func(fs *pflag.FlagSet) {
			fs.Var(&plat, "platform", "remove only this platform's image")
		},
		run: func(ctx context.Context, e *env, args []string) error {
			if len(args) != 1 {
				return usagef("untag: want one TAG, got %d arguments", len(args))
			}
			ref, err := refArg(args[0], plat)
			if err != nil {
				return err
			}
			st, err := e.openStore(ctx)
			if err != nil {
				return err
			}
			removed, err := st.Untag(ctx, ref)
			if err != nil {
				return err
			}
			for _, r := range removed {
				fmt.Fprintf(e.stdout, "untagged %s\n", r)
			}
			return nil
		},
	}
}

func gcCommand() *command {
	return &command{
		name:    "gc",
		summary: "Remove blobs no tag reaches, and leftovers of interrupted writes",
		long: `gc waits for running writers and holds new ones back while it runs. It refuses a store
whose manifests do not parse (run fsck).`,
		example: `serpent-oci gc`,
		run: func(ctx context.Context, e *env, args []string) error {
			if len(args) != 0 {
				return usagef("gc takes no arguments")
			}
			st, err := e.openStore(ctx)
			if err != nil {
				return err
			}
			res, err := st.GC(ctx)
			if err != nil {
				return err
			}
			fmt.Fprintf(e.stdout, "removed %d blobs, %d snapshots and %d temporary files, freed %s\n", res.Blobs, res.Derived, res.TempFiles, humanBytes(res.Bytes))
			return nil
		},
	}
}

func fsckCommand() *command {
	return &command{
		name:    "fsck",
		summary: "Check every blob's digest and every descriptor the tags reach",
		long:    `Exits 1 and lists each problem (the file, or the chain from a tag to the fault) if any.`,
		example: `serpent-oci fsck`,
		run: func(ctx context.Context, e *env, args []string) error {
			if len(args) != 0 {
				return usagef("fsck takes no arguments")
			}
			st, err := e.readStore(ctx)
			if err != nil {
				return err
			}
			res, err := st.Fsck(ctx)
			if err != nil {
				return err
			}
			for _, p := range res.Problems {
				fmt.Fprintln(e.stdout, p)
			}
			fmt.Fprintf(e.stdout, "checked %d blobs (%s) and %d descriptors: %d problems\n", res.Blobs, humanBytes(res.Bytes), res.Descriptors, len(res.Problems))
			if len(res.Problems) > 0 {
				return fmt.Errorf("store %s has %d problems", st.Dir(), len(res.Problems))
			}
			return nil
		},
	}
}

func versionCommand() *command {
	return &command{
		name:    "version",
		noStore: true,
		summary: "Print serpent-oci's version",
		example: `serpent-oci version`,
		run: func(ctx context.Context, e *env, args []string) error {
			fmt.Fprintf(e.stdout, "serpent-oci %s\n", versionString())
			return nil
		},
	}
}

func versionString() string {
	if version != "" {
		return version
	}
	if bi, ok := debug.ReadBuildInfo(); ok && bi.Main.Version != "" && bi.Main.Version != "(devel)" {
		return bi.Main.Version
	}
	return "dev"
}

func cacheCommand() *command {
	return &command{
		name:    "cache",
		args:    "list|prune [STAGE]",
		summary: "List or remove the stages' cache directories (a recipe's cache:, such as ccache's)",
		long: `A recipe's cache: directories persist from one build of the stage to the next, per stage
and platform pair, so that an interrupted long build resumes warm. They never enter an image
or a cache key: removing them changes how long the next build takes, not what it builds.
prune without STAGE removes every stage's.`,
		example: `serpent-oci cache list
serpent-oci cache prune llvm`,
		run: func(ctx context.Context, e *env, args []string) error {
			if len(args) < 1 || len(args) > 2 || (args[0] != "list" && args[0] != "prune") || (args[0] == "list" && len(args) != 1) {
				return usagef("cache: want list, or prune [STAGE]")
			}
			st, err := e.openStore(ctx)
			if err != nil {
				return err
			}
			if args[0] == "list" {
				all, err := build.CacheMounts(st)
				if err != nil {
					return err
				}
				tw := tabwriter.NewWriter(e.stdout, 0, 4, 2, ' ', 0)
				fmt.Fprintln(tw, "STAGE\tPLATFORMS\tSIZE\tDIRECTORY")
				for _, c := range all {
					fmt.Fprintf(tw, "%s\t%s\t%s\t%s\n", c.Stage, c.Platforms, humanBytes(c.Bytes), c.Dir)
				}
				return tw.Flush()
			}
			stage := ""
			if len(args) == 2 {
				stage = args[1]
			}
			removed, err := build.PruneCacheMounts(st, stage)
			var freed int64
			for _, c := range removed {
				freed += c.Bytes
			}
			fmt.Fprintf(e.stdout, "removed %d cache directories, freed %s\n", len(removed), humanBytes(freed))
			return err
		},
	}
}
