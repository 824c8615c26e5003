package main

import (
	"context"
	"fmt"
	"net"
	"net/netip"
	"os"
	"strings"

	"github.com/serpent-os/serpent-oci/builder"
	"github.com/serpent-os/serpent-oci/builder/compilefarm"
	"github.com/serpent-os/serpent-oci/oci/platform"
	"github.com/spf13/pflag"
)

func compileHelperCommand() *command {
	var (
		listen, allow, compilers string
		jobs                     int
	)
	return &command{
		name:    "compile-helper",
		args:    "IMAGE",
		summary: "Serve compiles to other machines' builds: distccd in a toolchain's image",
		long: `Runs distccd in a container of IMAGE (the toolchain whose compilers a build's stage uses, such
as its stage1 or an accelerator; it must have distccd) until interrupted. Builds reach it with
'build --compile-farm HOST:PORT'. distccd runs in a network namespace of its own (loopback only,
reaching nothing) as an unprivileged user, its changes discarded; serpent-oci listens on
--listen and passes on the connections of the networks --allow names. distccd runs only the
commands --compilers lists (by name, and as /usr/bin/NAME and /bin/NAME). A helper runs what
trusted builds send it: serve only builders you trust, and they take back object code.`,
		example: `serpent-oci compile-helper full/stage1@linux-amd64 --listen 0.0.0.0:3632 --allow 10.0.0.0/24
serpent-oci build stage3 --profile full --compile-farm helper1:3632/8,helper2:3632/8`,
		flags: func(fs *pflag.FlagSet) {
			fs.StringVar(&listen, "listen", "127.0.0.1:3632", "HOST:PORT where builds connect")
			fs.StringVar(&allow, "allow", "127.0.0.0/8", "networks (CIDR, comma-separated) builds may connect from")
			fs.IntVar(&jobs, "jobs", compilefarm.DefaultJobs, "compiles at once")
			fs.StringVar(&compilers, "compilers", strings.Join(compilefarm.DefaultCompilers, ","), "the commands distccd may run (comma-separated names or absolute paths)")
		},
		run: func(ctx context.Context, e *env, args []string) error {
			if len(args) != 1 {
				return usagef("compile-helper: want one IMAGE, got %d arguments", len(args))
			}
			var nets []netip.Prefix
			for _, a := range strings.Split(allow, ",") {
				p, err := netip.ParsePrefix(strings.TrimSpace(a))
				if err != nil {
					return usagef("--allow %q: want networks in CIDR form (10.0.0.0/24)", a)
				}
				nets = append(nets, p)
			}
			if jobs < 1 || jobs > 1024 {
				return usagef("--jobs %d: want 1 to 1024", jobs)
			}
			if _, _, err := net.SplitHostPort(listen); err != nil {
				return usagef("--listen %q: want HOST:PORT", listen)
			}
			ref, err := refArg(args[0], nil)
			if err != nil {
				return err
			}
			st, err := e.openStore(ctx)
			if err != nil {
				return err
			}
			img, d, err := st.ImageFor(ref, platform.Host())
			if err != nil {
				return err
			}
			if d.Platform == nil || !platform.Equal(*d.Platform, platform.Host()) {
				return fmt.Errorf("compile-helper %s: want an image for this machine (%s)", ref, platform.String(platform.Host()))
			}
			r, err := builder.OpenRunner(ctx, st, builder.WithConsole(e.stderr))
			if err != nil {
				return err
			}
			tmp, err := st.TempDir("compile-helper")
			if err != nil {
				return err
			}
			defer os.RemoveAll(tmp)
			counts, err := compilefarm.RunHelper(ctx, r, img, "compile-helper", *d.Platform, tmp, compilefarm.HelperOptions{
				Listen: listen, Allow: nets, Jobs: jobs, Compilers: strings.Split(compilers, ","), Log: e.stderr,
				Ready: func(a net.Addr) {
					fmt.Fprintf(e.stderr, "compile-helper: serving the compilers of %s (%s) on %s\n", ref.WithPlatform(d.Platform), d.Digest, a)
				},
			})
			fmt.Fprintf(e.stderr, "compile-helper: %d connections served, %d refused\n", counts.Connections, counts.Refused)
			return err
		},
	}
}
