package compilercache_test

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/serpent-os/serpent-oci/builder/compilercache"
	"github.com/serpent-os/serpent-oci/builder/compilercache/redistest"
	"github.com/serpent-os/serpent-oci/oci/testenv"
)

func TestParse(t *testing.T) {
	for _, tt := range []struct {
		url, want, err string
	}{
		{url: "redis://127.0.0.1", want: "tcp 127.0.0.1:6379 db 0 user  pass "},
		{url: "redis://cache.example:7000/3", want: "tcp cache.example:7000 db 3 user  pass "},
		{url: "redis://s3cret@h", want: "tcp h:6379 db 0 user  pass s3cret"},
		{url: "redis://ccache:s3cret@h", want: "tcp h:6379 db 0 user ccache pass s3cret"},
		{url: "redis://[::1]:6380", want: "tcp [::1]:6380 db 0 user  pass "},
		{url: "redis+unix:/run/redis.sock", want: "unix /run/redis.sock db 0 user  pass "},
		{url: "redis+unix:///run/redis.sock?db=2", want: "unix /run/redis.sock db 2 user  pass "},
		{url: "http://h/cache", err: `compiler cache "http://h/cache": scheme http is not supported (want redis:// or redis+unix:, ccache's Redis storage)`},
		{url: "127.0.0.1:6379", err: `compiler cache "127.0.0.1:6379": not a URL (want redis://HOST[:PORT][/DB] or redis+unix:/PATH)`},
		{url: "cache", err: `compiler cache "cache": no scheme (want redis://HOST[:PORT][/DB] or redis+unix:/PATH)`},
		{url: "redis:///0", err: `compiler cache "redis:///0": no host (want redis://HOST[:PORT][/DB])`},
		{url: "redis://h/x", err: `compiler cache "redis://h/x": database "x" is not a number`},
		{url: "redis+unix:run/redis.sock", err: `compiler cache "redis+unix:run/redis.sock": want an absolute socket path (redis+unix:/PATH)`},
	} {
		r, err := compilercache.Parse(tt.url, false)
		if tt.err != "" {
			if err == nil || !strings.Contains(err.Error(), tt.err) {
				t.Errorf("%s: error %v, want %s", tt.url, err, tt.err)
			}
			continue
		}
		if err != nil {
			t.Errorf("%s: %v", tt.url, err)
			continue
		}
		if got := fmt.Sprintf("%s %s db %d user %s pass %s", r.Network, r.Address, r.DB, r.User, r.Password); got != tt.want {
			t.Errorf("%s: %s, want %s", tt.url, got, tt.want)
		}
		if strings.Contains(r.String(), "s3cret") {
			t.Errorf("%s: String shows the password: %s", tt.url, r)
		}
	}
}

func serve(t *testing.T, r *compilercache.Remote) *compilercache.Proxy {
	t.Helper()
	dir, err := os.MkdirTemp("", "cc")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	p, err := compilercache.Serve(context.Background(), r, filepath.Join(dir, "proxy.sock"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { p.Close() })
	return p
}

// conn is a client of a Redis socket that sends one command and reads one reply line (with a
// bulk reply's body).
type conn struct {
	c  net.Conn
	in *bufio.Reader
}

func dial(t *testing.T, path string) *conn {
	t.Helper()
	c, err := net.Dial("unix", path)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	_ = c.SetDeadline(time.Now().Add(10 * time.Second))
	return &conn{c, bufio.NewReader(c)}
}

func (c *conn) do(raw []byte) string {
	if _, err := c.c.Write(raw); err != nil {
		return "write: " + err.Error()
	}
	line, err := c.in.ReadString('\n')
	if err != nil {
		return "read: " + err.Error()
	}
	line = strings.TrimSuffix(line, "\r\n")
	if n, err := strconv.Atoi(strings.TrimPrefix(line, "$")); strings.HasPrefix(line, "$") && err == nil && n >= 0 {
		body := make([]byte, n+2)
		if _, err := io.ReadFull(c.in, body); err != nil {
			return "read: " + err.Error()
		}
		return string(body[:n])
	}
	return line
}

func (c *conn) cmd(args ...string) string { return c.do(compilercache.Command(args...)) }

// The proxy passes ccache's commands on and nothing else: a command outside them, a write to
// a read-only remote or a malformed one is refused with an error and the connection closed,
// and never reaches the server.
func TestProxyPassesOnlyCcachesCommands(t *testing.T) {
	sock := redistest.Start(t)
	rw := serve(t, &compilercache.Remote{Network: "unix", Address: sock})
	ro := serve(t, &compilercache.Remote{Network: "unix", Address: sock, ReadOnly: true})
	server := dial(t, sock)

	c := dial(t, rw.Path())
	for _, step := range []struct {
		args []string
		want string
	}{
		{[]string{"PING"}, "+PONG"},
		{[]string{"SET", "k", "value\r\nwith CRLF"}, "+OK"},
		{[]string{"get", "k"}, "value\r\nwith CRLF"},
		{[]string{"EXISTS", "k"}, ":1"},
		{[]string{"SET", "gone", "x"}, "+OK"},
		{[]string{"DEL", "gone"}, ":1"},
		{[]string{"FLUSHALL"}, `-ERR serpent-oci compiler cache: refused: "FLUSHALL" is not a command of ccache's Redis storage`},
	} {
		if got := c.cmd(step.args...); !strings.HasPrefix(got, step.want) {
			t.Errorf("%v: %q, want %q", step.args, got, step.want)
		}
	}
	if got := c.cmd("GET", "k"); !strings.HasPrefix(got, "read: ") && !strings.HasPrefix(got, "write: ") {
		t.Errorf("after a refused command the connection is open: %q", got)
	}
	if got := server.cmd("DBSIZE"); got != ":1" {
		t.Errorf("the server has %s keys, want 1: FLUSHALL reached it", got)
	}

	r := dial(t, ro.Path())
	if got := r.cmd("GET", "k"); got != "value\r\nwith CRLF" {
		t.Errorf("read-only GET: %q", got)
	}
	if got := r.cmd("SET", "k", "other"); !strings.Contains(got, "SET: the compiler cache is read-only") {
		t.Errorf("read-only SET: %q", got)
	}
	if got := server.cmd("GET", "k"); got != "value\r\nwith CRLF" {
		t.Errorf("after a refused SET the server has %q", got)
	}

	for _, bad := range []string{
		"PING\r\n",                   // inline: not an array
		"*100\r\n",                   // too many arguments
		"*2\r\n$3\r\nSET\r\n$-5\r\n", // a negative length
		"*2\r\n$3\r\nGET\r\n$999999999999\r\n",
		"*1\r\n$40\r\n" + strings.Repeat("A", 40) + "\r\n", // a name too long for a command
	} {
		if got := dial(t, rw.Path()).do([]byte(bad)); !strings.HasPrefix(got, "-ERR serpent-oci compiler cache: refused") {
			t.Errorf("%q: %q, want it refused", bad, got)
		}
	}
	if got := rw.Stats(); got.Reads != 3 || got.Writes != 3 || got.Refused != 6 {
		t.Errorf("read-write proxy stats %+v, want 3 reads, 3 writes, 6 refused", got)
	}
	if got := ro.Stats(); got.Reads != 1 || got.Writes != 0 || got.Refused != 1 {
		t.Errorf("read-only proxy stats %+v, want 1 read, 1 refused", got)
	}
}

// The proxy authenticates to the server itself: a stage needs no password, and a wrong one is
// a server that does not answer.
func TestProxyAuthenticates(t *testing.T) {
	sock := redistest.Start(t, "--requirepass", "s3cret")
	good := serve(t, &compilercache.Remote{Network: "unix", Address: sock, Password: "s3cret", DB: 2})
	if got := dial(t, good.Path()).cmd("SET", "k", "v"); got != "+OK" {
		t.Fatalf("SET through an authenticated proxy: %q", got)
	}
	server := dial(t, sock)
	server.cmd("AUTH", "s3cret")
	server.cmd("SELECT", "2")
	if got := server.cmd("GET", "k"); got != "v" {
		t.Errorf("database 2 has %q, want v", got)
	}
	bad := serve(t, &compilercache.Remote{Network: "unix", Address: sock, Password: "wrong"})
	if got := dial(t, bad.Path()).cmd("GET", "k"); !strings.Contains(got, "server unreachable") {
		t.Errorf("with a wrong password: %q", got)
	}
	if got := bad.Stats().Unreachable; got != 1 {
		t.Errorf("unreachable %d, want 1", got)
	}
}

// ccacheStats reads ccache's counters of dir.
func ccacheStats(t *testing.T, dir string) map[string]string {
	t.Helper()
	out, err := exec.Command("ccache", "--dir", dir, "--print-stats").Output()
	if err != nil {
		t.Fatal(err)
	}
	m := map[string]string{}
	for _, f := range regexp.MustCompile(`(?m)^(\S+)\t(\d+)$`).FindAllStringSubmatch(string(out), -1) {
		m[f[1]] = f[2]
	}
	return m
}

// compile runs ccache gcc on src with its own cache directory dir and the remote env.
func compile(t *testing.T, dir, src string, env []string) {
	t.Helper()
	cmd := exec.Command("ccache", "gcc", "-c", src, "-o", filepath.Join(dir, "out.o"))
	cmd.Env = append(os.Environ(), append([]string{"CCACHE_DIR=" + dir, "CCACHE_NOHASHDIR=1"}, env...)...)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("ccache gcc: %v\n%s", err, out)
	}
}

// Debian's ccache through the proxy: a second machine (another cache directory) compiles warm
// from what the first put in the server; a read-only remote gives hits and takes nothing; a
// server that is gone costs the hits, not the compile.
func TestCcacheSharesThroughTheProxy(t *testing.T) {
	testenv.RequireTools(t, "ccache", "gcc")
	sock := redistest.Start(t)
	rw := serve(t, &compilercache.Remote{Network: "unix", Address: sock})
	ro := serve(t, &compilercache.Remote{Network: "unix", Address: sock, ReadOnly: true})
	env := func(p *compilercache.Proxy) []string {
		v := "CCACHE_REMOTE_STORAGE=redis+unix:" + p.Path()
		if p.Remote().ReadOnly {
			v += "|read-only=true"
		}
		return []string{v}
	}
	src := filepath.Join(t.TempDir(), "a.c")
	if err := os.WriteFile(src, []byte("int answer(void) { return 42; }\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	first, second, third := t.TempDir(), t.TempDir(), t.TempDir()
	compile(t, first, src, env(rw))
	if s := ccacheStats(t, first); s["remote_storage_miss"] != "1" {
		t.Errorf("first machine: %v, want one remote miss", s)
	}
	server := dial(t, sock)
	keys := server.cmd("DBSIZE")
	if keys == ":0" {
		t.Fatal("the first compile put nothing in the server")
	}
	compile(t, second, src, env(ro))
	if s := ccacheStats(t, second); s["remote_storage_hit"] != "1" || s["cache_miss"] != "0" {
		t.Errorf("second machine, read-only: %v, want a remote hit and no miss", s)
	}
	other := filepath.Join(filepath.Dir(src), "b.c")
	os.WriteFile(other, []byte("int other(void) { return 7; }\n"), 0o644)
	compile(t, third, other, env(ro))
	if got := server.cmd("DBSIZE"); got != keys {
		t.Errorf("a read-only compile of a new file changed the server: %s keys, was %s", got, keys)
	}
	if ro.Stats().Writes != 0 {
		t.Errorf("read-only proxy passed writes: %+v", ro.Stats())
	}

	gone := serve(t, &compilercache.Remote{Network: "unix", Address: filepath.Join(t.TempDir(), "nothing.sock")})
	fourth := t.TempDir()
	compile(t, fourth, src, env(gone))
	if s := ccacheStats(t, fourth); s["cache_miss"] != "1" {
		t.Errorf("with the server gone: %v, want a local compile (one miss)", s)
	}
	if gone.Stats().Unreachable == 0 {
		t.Errorf("the proxy to no server counted no unreachable connection: %+v", gone.Stats())
	}
}
