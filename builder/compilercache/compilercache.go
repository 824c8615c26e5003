// Package compilercache shares a stage's compiler cache (ccache) between machines through a
// Redis server (ccache's remote storage, ccache >= 4.4), without giving the stage a network.
//
// A build that is given a remote (--compiler-cache redis://HOST:PORT) serves a Unix socket in
// its store's temporary directory, bound into each stage with a cache mount; ccache in the
// stage reaches it as redis+unix:SOCKET. Behind the socket is a proxy, not the server: every
// command the stage sends is checked against what ccache's Redis storage uses (GET and EXISTS
// to read, SET and DEL to write, PING), and a read-only remote refuses the writes, whatever
// the stage's script asks. The proxy authenticates to the server and selects its database
// itself: the stage never sees the password. A server that does not answer costs the stage
// its remote hits, never its build: ccache compiles locally when its remote storage fails.
//
// The remote changes nothing a stage makes, and no cache key names it. What a stage takes
// from a shared cache is object code compiled elsewhere: only builders that trust each other
// share a read-write cache (as for --cache-from's repositories).
package compilercache

import (
	"errors"
	"fmt"
	"net/url"
	"strconv"
	"strings"
)

// Remote is a Redis server that holds a shared compiler cache.
type Remote struct {
	// Network and Address are where the server listens: "tcp" and HOST:PORT, or "unix" and
	// a socket's path.
	Network, Address string
	// User and Password, when set, are sent with AUTH on each connection to the server.
	User, Password string
	DB             int  // the database SELECTed, 0 by default
	ReadOnly       bool // only reads: a stage's writes are refused
}

// DefaultPort is Redis's.
const DefaultPort = "6379"

// Parse reads a remote from a URL: redis://[[USER]:PASSWORD@]HOST[:PORT][/DB] or
// redis+unix:PATH (redis+unix:///PATH, with ?db=N). readOnly makes it read-only.
func Parse(raw string, readOnly bool) (*Remote, error) {
	u, err := url.Parse(raw)
	if err != nil {
		return nil, fmt.Errorf("compiler cache %q: not a URL (want redis://HOST[:PORT][/DB] or redis+unix:/PATH)", raw)
	}
	r := &Remote{ReadOnly: readOnly}
	if u.User != nil {
		r.User = u.User.Username()
		r.Password, _ = u.User.Password()
		if r.Password == "" { // redis://PASSWORD@HOST: the password alone, as redis-cli reads it
			r.User, r.Password = "", r.User
		}
	}
	db := ""
	switch u.Scheme {
	case "redis":
		if u.Hostname() == "" {
			return nil, fmt.Errorf("compiler cache %q: no host (want redis://HOST[:PORT][/DB])", raw)
		}
		port := u.Port()
		if port == "" {
			port = DefaultPort
		}
		r.Network, r.Address = "tcp", u.Hostname()+":"+port
		if strings.Contains(u.Hostname(), ":") {
			r.Address = "[" + u.Hostname() + "]:" + port
		}
		db = strings.TrimPrefix(u.Path, "/")
	case "redis+unix":
		r.Network, r.Address = "unix", u.Path
		if u.Opaque != "" {
			r.Address = u.Opaque
		}
		if !strings.HasPrefix(r.Address, "/") {
			return nil, fmt.Errorf("compiler cache %q: want an absolute socket path (redis+unix:/PATH)", raw)
		}
		db = u.Query().Get("db")
	case "":
		return nil, fmt.Errorf("compiler cache %q: no scheme (want redis://HOST[:PORT][/DB] or redis+unix:/PATH)", raw)
	default:
		return nil, fmt.Errorf("compiler cache %q: scheme %s is not supported (want redis:// or redis+unix:, ccache's Redis storage)", raw, u.Scheme)
	}
	if db != "" {
		n, err := strconv.Atoi(db)
		if err != nil || n < 0 {
			return nil, fmt.Errorf("compiler cache %q: database %q is not a number", raw, db)
		}
		r.DB = n
	}
	return r, nil
}

// String is the remote without its password.
func (r *Remote) String() string {
	var b strings.Builder
	if r.Network == "unix" {
		b.WriteString("redis+unix:" + r.Address)
		if r.DB != 0 {
			b.WriteString("?db=" + strconv.Itoa(r.DB))
		}
	} else {
		b.WriteString("redis://")
		if r.User != "" || r.Password != "" {
			b.WriteString(r.User + ":xxxxx@")
		}
		b.WriteString(r.Address)
		if r.DB != 0 {
			b.WriteString("/" + strconv.Itoa(r.DB))
		}
	}
	if r.ReadOnly {
		b.WriteString(" (read-only)")
	}
	return b.String()
}

// SocketInStage is where a stage has the proxy's socket.
const SocketInStage = "/serpent/compiler-cache.sock"

// Env is what a stage's environment says for ccache to use the remote at SocketInStage. A
// read-write remote also gets the stage's local hits (reshare): a machine whose own cache is
// warm fills the shared one.
func (r *Remote) Env() []string {
	v := "CCACHE_REMOTE_STORAGE=redis+unix:" + SocketInStage
	if r.ReadOnly {
		return []string{v + "|read-only=true"}
	}
	return []string{v, "CCACHE_RESHARE=true"}
}

// ErrRefused is the error of a command the proxy does not pass on.
var ErrRefused = errors.New("refused")
