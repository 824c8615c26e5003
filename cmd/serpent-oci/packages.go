package main

import (
	"context"
	"fmt"
	"io"
	"strings"
	"text/tabwriter"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/serpent-os/serpent-oci/builder/build"
	"github.com/serpent-os/serpent-oci/oci/layer"
	"github.com/serpent-os/serpent-oci/oci/packages"
	"github.com/serpent-os/serpent-oci/oci/platform"
	"github.com/serpent-os/serpent-oci/oci/store"
	"github.com/spf13/pflag"
)

func packagesCommand() *command {
	var (
		repo  string
		plat  string
		tag   string
		epoch epochFlag
		rf    registryFlags
	)
	return &command{
		name:    "packages",
		args:    "list | resolve NAME... | assemble -t TAG NAME... | compare STAGE-A STAGE-B",
		summary: "List a stage's packages, resolve or assemble a root from them, or compare two stages' packages",
		long: `A stage whose recipe says output: {rootfs: DIR, packages: DIR} makes, beside its image, one
package per component: an image of the component's files (all under /usr), tagged
STAGE/pkg/NAME@PLATFORM, and the stage's repository, an index of them tagged STAGE/packages
(--repo). Each package says what its ELF files provide and need (soname(libc.so(x86_64)),
interpreter(/usr/lib/ld-musl-x86_64.so.1), binary(make)) and what it declares it depends on.

list prints the repository's packages. resolve prints the packages NAME... need for
--platform, in the order a root stacks them, or every requirement nothing meets. assemble
makes that root: a skeleton (the usrmerge links, /etc's passwd, group and hosts, /tmp) and one
layer per package, each the package's own blob, tagged TAG@PLATFORM; the same packages give
the same image. compare takes two repositories (a stage name means its STAGE/packages) and
says of every package whether its files are bit-identical in both, and if not, what differs
(a rebootstrap against what it rebuilt: packages compare stage3 stage4).`,
		example: `serpent-oci packages list
serpent-oci packages resolve make
serpent-oci packages assemble -t stage4-root tcc make busybox
serpent-oci run stage4-root -- make --version
serpent-oci packages compare stage3 stage4
serpent-oci packages list --repo registry.example/serpent/packages:2026.12`,
		flags: func(fs *pflag.FlagSet) {
			fs.StringVar(&repo, "repo", build.RepositoryName("stage3"), "the repository: a store tag of a package index, or a registry reference (REGISTRY/REPO:TAG, read lazily: only the packages resolve or assemble need are fetched)")
			rf.register(fs)
			fs.StringVar(&plat, "platform", "", "the platform to resolve and assemble for (default: the host's)")
			fs.StringVarP(&tag, "tag", "t", "", "assemble: the tag of the root")
			addEpochFlag(fs, &epoch, "assemble: the root's time")
		},
		run: func(ctx context.Context, e *env, args []string) error {
			if len(args) == 0 {
				return usagef("packages: want list, resolve NAME..., or assemble -t TAG NAME...")
			}
			verb, names := args[0], args[1:]
			if verb == "compare" {
				if len(names) != 2 {
					return usagef("packages compare: want two repositories (or stages)")
				}
				st, err := e.readStore(ctx)
				if err != nil {
					return err
				}
				return compareRepositories(e, st, names[0], names[1])
			}
			switch {
			case verb == "list" && len(names) != 0:
				return usagef("packages list takes no names")
			case verb == "resolve" || verb == "assemble":
				if len(names) == 0 {
					return usagef("packages %s: name the packages", verb)
				}
				if verb == "assemble" && tag == "" {
					return usagef("packages assemble: -t TAG: where to tag the root")
				}
			case verb != "list":
				return usagef("packages: %q: want list, resolve, assemble or compare", verb)
			}
			p := platform.Host()
			if plat != "" {
				var err error
				if p, err = platform.Parse(plat); err != nil {
					return usagef("packages: --platform: %v", err)
				}
			}
			// A registry's repository needs no store to list or resolve: one that does not
			// exist is read as empty.
			st, err := e.storeAsItIs(ctx, io.Discard)
			if verb == "assemble" {
				st, err = e.openStore(ctx)
			}
			if err != nil {
				return err
			}
			idx, err := packages.OpenRepository(ctx, st, rf.client(e.stderr), repo)
			if err != nil {
				return err
			}
			entries, err := packages.Entries(idx)
			if err != nil {
				return fmt.Errorf("repository %s: %w", repo, err)
			}
			if verb == "list" {
				tw := tabwriter.NewWriter(e.stdout, 0, 4, 2, ' ', 0)
				fmt.Fprintln(tw, "NAME\tVERSION\tPLATFORM\tDIGEST\tDEPENDS\tNEEDS")
				for _, en := range entries {
					fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\n", en.Name, en.Version, platform.String(en.Platform), shortDigest(en.Descriptor.Digest),
						orDash(strings.Join(en.Depends, ",")), orDash(strings.Join(en.Needs, ",")))
				}
				return tw.Flush()
			}
			resolved, err := packages.Resolve(entries, names, p)
			if err != nil {
				return err
			}
			if verb == "resolve" {
				for _, en := range resolved {
					fmt.Fprintf(e.stdout, "%s %s %s\n", en.Name, en.Version, en.Descriptor.Digest)
				}
				return nil
			}
			t, err := epoch.Time()
			if err != nil {
				return err
			}
			ref := store.Ref{Name: tag}.WithPlatform(&p)
			return assembleRoot(ctx, e, st, idx, resolved, ref, layer.Epoch(t))
		},
	}
}

// assembleRoot stacks the resolved packages on a skeleton and tags the root ref, holding the
// store until it is tagged.
func assembleRoot(ctx context.Context, e *env, st *store.Store, idx v1.ImageIndex, resolved []packages.Entry, ref store.Ref, epoch time.Time) error {
	release, err := st.Hold(ctx)
	if err != nil {
		return err
	}
	defer release()
	imgs := make([]v1.Image, 0, len(resolved))
	for _, en := range resolved {
		img, err := idx.Image(en.Descriptor.Digest)
		if err != nil {
			return fmt.Errorf("package %s: %w", en.Name, err)
		}
		imgs = append(imgs, img)
	}
	root, err := packages.AssembleRoot(ctx, st, imgs, *ref.Platform, epoch)
	if err != nil {
		return err
	}
	d, err := st.WriteImage(ctx, root, ref)
	if err != nil {
		return err
	}
	fmt.Fprintf(e.stdout, "%s %s: %d packages\n", ref, d.Digest, len(resolved))
	return nil
}

func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

// compareRepositories prints packages.Compare of two repositories (a name without a slash is
// a stage's: STAGE/packages) and a summary.
func compareRepositories(e *env, st *store.Store, a, b string) error {
	var idx [2]v1.ImageIndex
	for i, name := range []string{a, b} {
		if !strings.Contains(name, "/") {
			name = build.RepositoryName(name)
		}
		x, err := st.Index(name)
		if err != nil {
			return fmt.Errorf("repository %s: %w", name, err)
		}
		idx[i] = x
	}
	cs, err := packages.Compare(idx[0], idx[1])
	if err != nil {
		return err
	}
	same, differ, alone := 0, 0, 0
	for _, c := range cs {
		fmt.Fprintln(e.stdout, c)
		switch {
		case c.A == (v1.Hash{}) || c.B == (v1.Hash{}):
			alone++
		case c.Identical():
			same++
		default:
			differ++
		}
	}
	fmt.Fprintf(e.stdout, "%d identical, %d differ, %d in one repository only\n", same, differ, alone)
	return nil
}
