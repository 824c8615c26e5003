package main

import (
	"strconv"
	"strings"

	"github.com/serpent-os/serpent-oci/builder/compilefarm"
	"github.com/serpent-os/serpent-oci/builder/compilercache"
	"github.com/spf13/pflag"
)

// compilerCacheFlags are --compiler-cache and --compiler-cache-read-only: a Redis server that
// the stages with a cache mount share their ccache through. The URL is checked when parsed
// (a bad one is a usage error naming the flag).
type compilerCacheFlags struct {
	remote   *compilercache.Remote
	readOnly bool
}

func (f *compilerCacheFlags) register(fs *pflag.FlagSet) {
	fs.Var((*compilerCacheURL)(f), "compiler-cache", "Redis server (redis://[PASSWORD@]HOST[:PORT][/DB] or redis+unix:/PATH) that stages with a cache mount share as ccache's remote storage, through a socket: the stage gets no network, and the image is what a build without it makes")
	fs.BoolVar(&f.readOnly, "compiler-cache-read-only", false, "take hits from --compiler-cache but write nothing to it (for builders the cache's owners do not trust)")
}

// Remote is the server given, nil for none.
func (f *compilerCacheFlags) Remote() *compilercache.Remote {
	if f.remote == nil {
		return nil
	}
	r := *f.remote
	r.ReadOnly = f.readOnly
	return &r
}

// compilerCacheURL is --compiler-cache's value.
type compilerCacheURL compilerCacheFlags

func (u *compilerCacheURL) String() string {
	if u.remote == nil {
		return ""
	}
	return u.remote.String()
}

func (u *compilerCacheURL) Set(s string) error {
	r, err := compilercache.Parse(s, false)
	if err != nil {
		return err
	}
	u.remote = r
	return nil
}

func (u *compilerCacheURL) Type() string { return "URL" }

// compileFarmFlag is --compile-farm: distcc helpers, checked when parsed.
type compileFarmFlag []compilefarm.Helper

func (f *compileFarmFlag) String() string {
	var out []string
	for _, h := range *f {
		out = append(out, h.Address+"/"+strconv.Itoa(h.Jobs))
	}
	return strings.Join(out, ",")
}

func (f *compileFarmFlag) Set(s string) error {
	hs, err := compilefarm.Parse(s)
	if err != nil {
		return err
	}
	*f = hs
	return nil
}

func (f *compileFarmFlag) Type() string { return "HOST:PORT[/JOBS],..." }
