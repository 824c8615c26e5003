// Package compilefarm spreads a stage's compiles over distcc helpers (distccd, on this machine
// or others) without giving the stage a network: the stage runs in a network namespace of
// the build's (builder/netns) where each helper is a loopback port, 127.0.0.1:FirstPort+i,
// served by a forwarder on the host that reaches the helper. The stage's distcc reads
// DISTCC_HOSTS; a helper that does not answer, or dies mid-build, costs its compiles their
// trip, never the build: distcc compiles locally when a helper fails (DISTCC_FALLBACK).
//
// A helper runs the stage's own compiler (serpent-oci compile-helper runs distccd in the
// toolchain's image), so what it compiles is what a local compile makes; no cache key names
// the helpers. What a helper returns is object code: use helpers the build trusts.
package compilefarm

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"github.com/containerd/log"
	"github.com/serpent-os/serpent-oci/builder/internal/connset"
	"github.com/serpent-os/serpent-oci/builder/netns"
)

// Helper is a distccd that takes compiles.
type Helper struct {
	Address string // HOST:PORT
	Jobs    int    // compiles at once (distcc's /LIMIT)
}

// DefaultJobs is a helper's compiles at once when --compile-farm does not say.
const DefaultJobs = 4

// MaxHelpers bounds a farm.
const MaxHelpers = 64

// DefaultPort is distccd's.
const DefaultPort = "3632"

// Parse reads a farm: HOST[:PORT][/JOBS] entries separated by commas or spaces.
func Parse(s string) ([]Helper, error) {
	var out []Helper
	seen := map[string]bool{}
	for _, f := range strings.FieldsFunc(s, func(r rune) bool { return r == ',' || r == ' ' }) {
		addr, jobs, hasJobs := strings.Cut(f, "/")
		h := Helper{Address: addr, Jobs: DefaultJobs}
		if hasJobs {
			n, err := strconv.Atoi(jobs)
			if err != nil || n < 1 || n > 1024 {
				return nil, fmt.Errorf("compile farm %q: jobs %q: want 1 to 1024", f, jobs)
			}
			h.Jobs = n
		}
		host, port, err := net.SplitHostPort(addr)
		if err != nil {
			host, port = addr, DefaultPort
		}
		if host == "" || strings.ContainsAny(host, "[]/") {
			return nil, fmt.Errorf("compile farm %q: want HOST[:PORT][/JOBS]", f)
		}
		if n, err := strconv.Atoi(port); err != nil || n < 1 || n > 65535 {
			return nil, fmt.Errorf("compile farm %q: port %q: want 1 to 65535", f, port)
		}
		h.Address = net.JoinHostPort(host, port)
		if seen[h.Address] {
			return nil, fmt.Errorf("compile farm %q: %s given twice", s, h.Address)
		}
		seen[h.Address] = true
		out = append(out, h)
	}
	switch {
	case len(out) == 0:
		return nil, fmt.Errorf("compile farm %q: no helper (want HOST[:PORT][/JOBS],...)", s)
	case len(out) > MaxHelpers:
		return nil, fmt.Errorf("compile farm: %d helpers, at most %d", len(out), MaxHelpers)
	}
	return out, nil
}

// FirstPort is the loopback port of a stage's namespace that is the farm's first helper.
const FirstPort = 3632

const dialTimeout = 3 * time.Second

// Farm serves a farm's helpers into a stage's network namespace.
type Farm struct {
	ctx     context.Context
	helpers []Helper
	lns     []net.Listener
	counts  []helperCount
	conns   connset.Set
}

type helperCount struct{ sent, failed atomic.Int64 }

// HelperStats is what a helper was asked for.
type HelperStats struct {
	Helper
	Sent   int64 // connections passed on (a compile each)
	Failed int64 // connections the helper did not take
}

// Serve opens, in ns, a loopback listener for each helper, forwarding to it.
func Serve(ctx context.Context, ns *netns.NS, helpers []Helper) (*Farm, error) {
	f := &Farm{ctx: ctx, helpers: helpers, counts: make([]helperCount, len(helpers))}
	for i := range helpers {
		ln, err := ns.Listen("127.0.0.1:" + strconv.Itoa(FirstPort+i))
		if err != nil {
			f.Close()
			return nil, fmt.Errorf("compile farm: %w", err)
		}
		f.lns = append(f.lns, ln)
	}
	for i, ln := range f.lns {
		f.conns.Serve(ln, func(c net.Conn) { f.forward(i, c) })
	}
	return f, nil
}

// Env is what the stage's environment says for distcc: the helpers as ports of its loopback,
// and a state directory in its /tmp (never in the image).
func (f *Farm) Env() []string {
	var hosts []string
	for i, h := range f.helpers {
		hosts = append(hosts, "127.0.0.1:"+strconv.Itoa(FirstPort+i)+"/"+strconv.Itoa(h.Jobs))
	}
	return []string{"DISTCC_HOSTS=" + strings.Join(hosts, " "), "DISTCC_DIR=/tmp"}
}

// Stats says what each helper was asked for so far.
func (f *Farm) Stats() []HelperStats {
	out := make([]HelperStats, len(f.helpers))
	for i, h := range f.helpers {
		out[i] = HelperStats{Helper: h, Sent: f.counts[i].sent.Load(), Failed: f.counts[i].failed.Load()}
	}
	return out
}

// Close stops the listeners and ends every connection.
func (f *Farm) Close() error {
	f.conns.Close()
	var errs []error
	for _, ln := range f.lns {
		if err := ln.Close(); err != nil && !errors.Is(err, net.ErrClosed) {
			errs = append(errs, err)
		}
	}
	f.conns.Wait()
	return errors.Join(errs...)
}

// forward passes one connection of the stage's on to helper i.
func (f *Farm) forward(i int, c net.Conn) {
	h := f.helpers[i]
	remote, err := net.DialTimeout("tcp", h.Address, dialTimeout)
	if err != nil {
		f.counts[i].failed.Add(1)
		log.G(f.ctx).WithError(err).WithField("helper", h.Address).Warn("compile farm: helper unreachable, distcc compiles locally")
		return
	}
	if !f.conns.Add(remote) {
		return
	}
	defer f.conns.Remove(remote)
	f.counts[i].sent.Add(1)
	splice(c, remote)
}

// splice passes client's bytes to server and server's back until server is done, then ends
// client: a forwarder's work, the farm's and a helper's.
func splice(client, server net.Conn) {
	done := make(chan struct{})
	go func() {
		defer close(done)
		_, _ = io.Copy(server, client)
		if tc, ok := server.(*net.TCPConn); ok {
			_ = tc.CloseWrite()
		}
	}()
	_, _ = io.Copy(client, server)
	client.Close()
	<-done
}
