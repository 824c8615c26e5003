package main

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"maps"
	"path"
	"slices"
	"strings"

	"github.com/containerd/log"
	"github.com/google/go-containerregistry/pkg/name"
	"github.com/serpent-os/serpent-oci/builder/build"
	"github.com/serpent-os/serpent-oci/oci/image"
	"github.com/serpent-os/serpent-oci/oci/platform"
	"github.com/serpent-os/serpent-oci/oci/registry"
	"github.com/serpent-os/serpent-oci/oci/store"
	"github.com/spf13/pflag"
)

// registryFlags are the flags of every command that talks to a registry.
type registryFlags struct {
	insecure []string
}

func (r *registryFlags) register(fs *pflag.FlagSet) {
	fs.StringArrayVar(&r.insecure, "insecure-registry", nil, "registry HOST[:PORT] to reach over plain HTTP or unverified TLS (repeatable; loopback needs none)")
}

func (r *registryFlags) client(progress io.Writer) *registry.Client {
	return registry.New(registry.Options{Insecure: r.insecure, Progress: progress})
}

// cacheFlags are --cache-from and --cache-to.
type cacheFlags struct {
	from []string
	to   string
}

func (c *cacheFlags) register(fs *pflag.FlagSet) {
	fs.StringArrayVar(&c.from, "cache-from", nil, "repository (REGISTRY/REPO, or buildx's type=registry,ref=REGISTRY/REPO) to pull stages from by cache key before building them (repeatable)")
}

// caches parses the values of --cache-from or --cache-to (flag): each a repository, or
// buildx's spelling of one, type=registry,ref=REPOSITORY[,mode=max]. Any other form is an
// error naming the flag and the part at fault, before anything is built: a cache a build
// cannot use must not turn into a cold build with a warning.
func caches(client *registry.Client, flag string, specs []string) ([]*registry.Cache, error) {
	var out []*registry.Cache
	for _, s := range specs {
		repo, err := cacheRepository(s)
		if err != nil {
			return nil, usagef("--%s %s: %v", flag, s, err)
		}
		r, err := client.ParseRepository(repo)
		if err != nil {
			return nil, usagef("--%s %s: %v", flag, s, err)
		}
		out = append(out, &registry.Cache{Client: client, Repo: r})
	}
	return out, nil
}

// cacheRepository is the repository a cache flag's value names: the value itself, or the ref
// of buildx's type=registry,ref=R[,mode=max] form.
func cacheRepository(spec string) (string, error) {
	if !strings.Contains(spec, "=") {
		return spec, nil
	}
	fields := map[string]string{}
	for _, kv := range strings.Split(spec, ",") {
		k, v, ok := strings.Cut(kv, "=")
		if !ok || k == "" {
			return "", fmt.Errorf("%q is not KEY=VALUE", kv)
		}
		if _, dup := fields[k]; dup {
			return "", fmt.Errorf("%s given twice", k)
		}
		fields[k] = v
	}
	if t, ok := fields["type"]; ok && t != "registry" {
		return "", fmt.Errorf("type=%s: serpent-oci's cache is a registry repository (type=registry)", t)
	}
	for _, k := range slices.Sorted(maps.Keys(fields)) {
		v := fields[k]
		switch k {
		case "type", "ref":
		case "mode":
			if v != "max" {
				return "", fmt.Errorf("mode=%s: serpent-oci caches every stage (mode=max), never the target alone", v)
			}
		default:
			return "", fmt.Errorf("%s: unknown key (type=registry,ref=REPOSITORY[,mode=max] is what serpent-oci takes)", k)
		}
	}
	if fields["type"] == "" {
		return "", fmt.Errorf("no type: want type=registry,ref=REPOSITORY")
	}
	ref := fields["ref"]
	if ref == "" {
		return "", fmt.Errorf("no ref: want type=registry,ref=REPOSITORY")
	}
	// buildx's ref names a tag (app:buildcache); serpent-oci's cache tags are the stages' keys.
	if strings.Contains(ref, "@") {
		return "", fmt.Errorf("ref=%s names a digest: give the repository alone", ref)
	}
	if i := strings.LastIndex(ref, ":"); i > strings.LastIndex(ref, "/") {
		return "", fmt.Errorf("ref=%s names a tag: give the repository alone (%s); its tags are the stages' cache keys", ref, ref[:i])
	}
	return ref, nil
}

func pushCommand() *command {
	var (
		plat platform.List
		rf   registryFlags
	)
	return &command{
		name:    "push",
		args:    "TAG REF",
		summary: "Push an image from the store to a registry",
		long: `TAG is a store tag. With one platform (TAG@PLATFORM, or --platform P, or a tag that has one)
its image is pushed as it is; a tag with several platforms (or --platform P,Q) goes out as one
multi-platform index whose entries carry each image's platform. Blobs the registry has are not
uploaded again; the manifest goes last, so an interrupted push leaves REF as it was.
Credentials come from the Docker config (serpent-oci login, docker login, credential helpers).`,
		example: `serpent-oci push stage3 registry.example/serpent/stage3:2026.11
serpent-oci push stage3 --platform linux/arm64 registry.example/serpent/stage3:arm64`,
		flags: func(fs *pflag.FlagSet) {
			fs.Var(&plat, "platform", "platforms of TAG to push, comma-separated (default: all it has)")
			rf.register(fs)
		},
		run: func(ctx context.Context, e *env, args []string) error {
			if len(args) != 2 {
				return usagef("push: want TAG and REF, got %d arguments", len(args))
			}
			client := rf.client(e.stderr)
			ref, err := client.ParseReference(args[1])
			if err != nil {
				return usageError{err: err}
			}
			st, err := e.openStore(ctx)
			if err != nil {
				return err
			}
			sel, err := selectTag(st, args[0], plat)
			if err != nil {
				return err
			}
			what, err := sel.Pushable()
			if err != nil {
				return err
			}
			p, err := client.Push(ctx, what, ref, registry.PushOptions{Store: st})
			if err != nil {
				return err
			}
			// The images' SBOMs (and any other artifact about them) go with them.
			subjects, err := sel.Subjects()
			if err != nil {
				return err
			}
			if err := client.PushStoredReferrers(ctx, st, subjects, "", ref.Context()); err != nil {
				return err
			}
			fmt.Fprintf(e.stdout, "%s@%s\n", ref.Context(), p.Descriptor.Digest)
			fmt.Fprintf(e.stderr, "pushed %s: %s uploaded\n", ref, humanBytes(p.Uploaded))
			return nil
		},
	}
}

// selectTag is what a TAG argument (NAME or NAME@PLATFORM) and --platform name in st
// (image.Select): a platform in the argument or a single --platform picks one image.
func selectTag(st *store.Store, arg string, plat platform.List) (image.Selection, error) {
	ref, err := store.ParseRef(arg)
	if err != nil {
		return image.Selection{}, usageError{err: err}
	}
	if ref.Platform != nil || len(plat) == 1 {
		if ref, err = refArg(arg, plat[:min(len(plat), 1)]); err != nil {
			return image.Selection{}, err
		}
		plat = nil
	}
	return image.Select(st, ref, plat)
}

func pullCommand() *command {
	var (
		plat platform.List
		tag  string
		rf   registryFlags
	)
	return &command{
		name:    "pull",
		args:    "REF",
		summary: "Pull an image from a registry into the store",
		long: `REF is REGISTRY/REPO[:TAG][@DIGEST]. From a multi-platform index the image of each platform
asked is pulled (default: this machine's); a plain image must be for the platform asked. Each
is tagged NAME@PLATFORM in the store, NAME being --tag or the last part of the repository.
Blobs the store has are not fetched again; broken transfers are retried; the tag is set last.
The image's SBOMs (its referrers in the registry) are stored with it.`,
		example: `serpent-oci pull registry.example/serpent/stage3:2026.11 --platform linux/arm64
serpent-oci pull registry.example/serpent/stage3:2026.11 --platform linux/amd64,linux/arm64 --tag base`,
		flags: func(fs *pflag.FlagSet) {
			fs.Var(&plat, "platform", "platforms to pull, comma-separated (default: the host's)")
			fs.StringVar(&tag, "tag", "", "store tag name (default: the repository's last part)")
			rf.register(fs)
		},
		run: func(ctx context.Context, e *env, args []string) error {
			if len(args) != 1 {
				return usagef("pull: want one REF, got %d arguments", len(args))
			}
			client := rf.client(e.stderr)
			ref, err := client.ParseReference(args[0])
			if err != nil {
				return usageError{err: err}
			}
			if tag == "" {
				tag = path.Base(ref.Context().RepositoryStr())
			}
			if _, err := store.ParseRef(tag); err != nil {
				return usagef("pull: --tag: %v", err)
			}
			plat = platform.OrHost(plat)
			st, err := e.openStore(ctx)
			if err != nil {
				return err
			}
			for _, p := range plat {
				d, err := client.Pull(ctx, st, ref, p, tag)
				if err != nil {
					return err
				}
				// The image's SBOMs come with it: they say how it was made (an accelerated
				// build's, issue 17, is not taken for an emulated one's).
				if _, err := client.PullReferrers(ctx, st, ref.Context(), d, build.SPDXMediaType); err != nil {
					log.G(ctx).WithError(err).WithField("image", d.Digest.String()).Warn("pulled without its SBOMs")
				}
				fmt.Fprintf(e.stdout, "%s %s\n", store.Ref{Name: tag}.WithPlatform(&p), d.Digest)
			}
			return nil
		},
	}
}

func loginCommand() *command {
	var (
		user, password string
		stdin          bool
		rf             registryFlags
	)
	return &command{
		name:    "login",
		noStore: true,
		args:    "REGISTRY",
		summary: "Check and store credentials for a registry",
		long: `The credentials are checked against the registry first, then stored as docker login stores
them: in the credential helper the Docker config names, else in $DOCKER_CONFIG/config.json
(default ~/.docker/config.json). push, pull and build read them from there.`,
		example: `echo "$TOKEN" | serpent-oci login registry.example -u builder --password-stdin`,
		flags: func(fs *pflag.FlagSet) {
			fs.StringVarP(&user, "username", "u", "", "user name")
			fs.BoolVar(&stdin, "password-stdin", false, "read the password from standard input")
			fs.StringVarP(&password, "password", "p", "", "password (visible to other users of the machine: prefer --password-stdin)")
			rf.register(fs)
		},
		run: func(ctx context.Context, e *env, args []string) error {
			if len(args) != 1 {
				return usagef("login: want one REGISTRY, got %d arguments", len(args))
			}
			if stdin == (password != "") {
				return usagef("login: give the password with --password-stdin (or --password)")
			}
			if stdin {
				line, err := bufio.NewReader(e.stdin).ReadString('\n')
				if err != nil && !errors.Is(err, io.EOF) {
					return fmt.Errorf("login: read the password: %w", err)
				}
				password = strings.TrimRight(line, "\r\n")
			}
			file, err := rf.client(nil).Login(ctx, args[0], user, password)
			if err != nil {
				return err
			}
			fmt.Fprintf(e.stdout, "Login succeeded: %s (credentials in %s)\n", args[0], file)
			return nil
		},
	}
}

func logoutCommand() *command {
	return &command{
		name:    "logout",
		noStore: true,
		args:    "REGISTRY",
		summary: "Remove stored credentials for a registry",
		long:    `Removes what login (or docker login) stored for REGISTRY, from its credential helper or the Docker config.`,
		example: `serpent-oci logout registry.example`,
		run: func(ctx context.Context, e *env, args []string) error {
			if len(args) != 1 {
				return usagef("logout: want one REGISTRY, got %d arguments", len(args))
			}
			return registry.New(registry.Options{}).Logout(args[0])
		},
	}
}

func indexCommand() *command {
	var (
		from []string
		rf   registryFlags
	)
	return &command{
		name:    "index",
		noStore: true,
		args:    "create REF --from SRC...",
		summary: "Join per-platform images in a registry into one multi-platform index",
		long: `For builds spread over machines: each builds its platform and pushes it (or shares a
--cache-to repository); one last step joins them. Each --from is an image, or an index whose
platform images are all taken. Blobs are mounted across repositories of one registry rather
than copied; no platform may appear twice.`,
		example: `serpent-oci index create registry.example/serpent/stage3:2026.11 \
    --from registry.example/ci/stage3:amd64 --from registry.example/ci/stage3:arm64`,
		flags: func(fs *pflag.FlagSet) {
			fs.StringArrayVar(&from, "from", nil, "an image or index to take (repeatable)")
			rf.register(fs)
		},
		run: func(ctx context.Context, e *env, args []string) error {
			if len(args) != 2 || args[0] != "create" {
				return usagef("index: want create REF")
			}
			if len(from) == 0 {
				return usagef("index create: give the images to join with --from")
			}
			client := rf.client(e.stderr)
			dst, err := client.ParseReference(args[1])
			if err != nil {
				return usageError{err: err}
			}
			var srcs []name.Reference
			for _, f := range from {
				r, err := client.ParseReference(f)
				if err != nil {
					return usageError{err: err}
				}
				srcs = append(srcs, r)
			}
			p, err := client.JoinIndex(ctx, dst, srcs)
			if err != nil {
				return err
			}
			fmt.Fprintf(e.stdout, "%s@%s\n", dst.Context(), p.Descriptor.Digest)
			return nil
		},
	}
}
