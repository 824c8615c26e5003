package compilefarm

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync/atomic"

	"github.com/containerd/log"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/serpent-os/serpent-oci/builder"
	"github.com/serpent-os/serpent-oci/builder/internal/connset"
	"github.com/serpent-os/serpent-oci/builder/netns"
)

// HelperOptions say how a helper serves.
type HelperOptions struct {
	// Listen is where builds reach the helper (HOST:PORT on this machine).
	Listen string
	// Allow are the networks builds may connect from (default: loopback only).
	Allow []netip.Prefix
	// Jobs is how many compiles run at once (default DefaultJobs).
	Jobs int
	// Compilers are the commands distccd may run, by name and by absolute path as a build
	// sends them (DISTCC_CMDLIST): the toolchain's compilers.
	Compilers []string
	// Log receives distccd's log (a line per compile, COMPILE_OK when it succeeded).
	Log io.Writer
	// Ready, when set, is called with the listener's address once builds can connect.
	Ready func(addr net.Addr)
}

// DefaultCompilers are the commands a helper runs unless told otherwise.
var DefaultCompilers = []string{"cc", "c++", "gcc", "g++", "clang", "clang++"}

// helperPort is distccd's port inside the helper's namespace.
const helperPort = 3632

// Helper counts of a helper that has run.
type HelperCounts struct {
	Connections, Refused int64
}

// RunHelper runs distccd in a container of img (the toolchain whose compilers it runs) until
// ctx ends. The container has a network namespace of its own, loopback only, where distccd
// listens; builds reach it through o.Listen on the host, forwarded into the namespace, from
// the networks o.Allow names. So a helper reaches nothing: distccd runs what a build sends it
// (that is what a compile farm is), inside a container whose changes are discarded, as an
// unprivileged user, with no way out but the connection it answers.
func RunHelper(ctx context.Context, e builder.Executor, img v1.Image, name string, p v1.Platform, tmp string, o HelperOptions) (HelperCounts, error) {
	var counts struct{ conns, refused atomic.Int64 }
	result := func() HelperCounts {
		return HelperCounts{Connections: counts.conns.Load(), Refused: counts.refused.Load()}
	}
	if o.Jobs == 0 {
		o.Jobs = DefaultJobs
	}
	if len(o.Allow) == 0 {
		o.Allow = []netip.Prefix{netip.MustParsePrefix("127.0.0.0/8"), netip.MustParsePrefix("::1/128")}
	}
	if len(o.Compilers) == 0 {
		o.Compilers = DefaultCompilers
	}
	if o.Log == nil {
		o.Log = io.Discard
	}
	ns, err := netns.New(filepath.Join(tmp, "net"))
	if err != nil {
		return result(), err
	}
	defer ns.Close()
	cmdlist := filepath.Join(tmp, "commands")
	var lines []string
	for _, c := range o.Compilers {
		if strings.ContainsAny(c, "\n\x00") || c == "" {
			return result(), fmt.Errorf("compiler %q: want a command name or absolute path", c)
		}
		lines = append(lines, c)
		if !strings.Contains(c, "/") {
			lines = append(lines, "/usr/bin/"+c, "/bin/"+c)
		}
	}
	if err := os.WriteFile(cmdlist, []byte(strings.Join(lines, "\n")+"\n"), 0o644); err != nil {
		return result(), err
	}
	// distccd wants its masquerade directory, the whitelist of compilers by name, to exist:
	// the compilers named, and nothing else.
	masquerade := filepath.Join(tmp, "masquerade")
	if err := os.Mkdir(masquerade, 0o755); err != nil {
		return result(), err
	}
	for _, c := range o.Compilers {
		if !strings.Contains(c, "/") {
			if err := os.WriteFile(filepath.Join(masquerade, c), nil, 0o755); err != nil {
				return result(), err
			}
		}
	}
	ln, err := net.Listen("tcp", o.Listen)
	if err != nil {
		return result(), fmt.Errorf("compile helper: %w", err)
	}
	var conns connset.Set
	defer func() {
		conns.Close()
		ln.Close()
		conns.Wait()
	}()
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	go func() {
		<-ctx.Done()
		ln.Close()
	}()
	conns.Serve(ln, func(c net.Conn) {
		if !allowed(c.RemoteAddr(), o.Allow) {
			counts.refused.Add(1)
			log.G(ctx).WithField("client", c.RemoteAddr().String()).Warn("compile helper: a client outside --allow refused")
			return
		}
		d, err := ns.Dial("127.0.0.1:"+strconv.Itoa(helperPort), dialTimeout)
		if err != nil {
			log.G(ctx).WithError(err).Warn("compile helper: distccd does not answer")
			return
		}
		if !conns.Add(d) {
			return
		}
		defer conns.Remove(d)
		counts.conns.Add(1)
		splice(c, d)
	})
	if o.Ready != nil {
		o.Ready(ln.Addr())
	}
	ro := builder.RunOptions{
		Name: name, Base: img, BaseName: name, Platform: p,
		Process: builder.Process{
			Args: []string{"distccd", "--daemon", "--no-detach", "--log-stderr", "--log-level", "info",
				"--listen", "127.0.0.1", "--port", strconv.Itoa(helperPort), "--allow", "127.0.0.1", "--jobs", strconv.Itoa(o.Jobs)},
			Env:   []string{"DISTCC_CMDLIST=/serpent/distcc-commands", "TMPDIR=/tmp", "HOME=/tmp"},
			NetNS: ns.Path(),
			User:  "65534:65534", // distccd runs as nobody, not root
			Mounts: []builder.Mount{
				{Source: cmdlist, Destination: "/serpent/distcc-commands", ReadOnly: true},
				{Source: masquerade, Destination: "/usr/lib/distcc", ReadOnly: true},
			},
			Stdout: o.Log, Stderr: o.Log,
		},
	}
	_, err = e.Run(ctx, ro)
	if ctx.Err() != nil { // stopped: that is how a helper ends
		return result(), nil
	}
	if err == nil {
		err = errors.New("distccd exited")
	}
	return result(), fmt.Errorf("compile helper %s: %w", name, err)
}

func allowed(a net.Addr, nets []netip.Prefix) bool {
	ap, err := netip.ParseAddrPort(a.String())
	if err != nil {
		return false
	}
	for _, n := range nets {
		if n.Contains(ap.Addr().Unmap()) {
			return true
		}
	}
	return false
}
