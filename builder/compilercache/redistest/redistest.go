// Package redistest runs a real Redis server (Debian's redis-server) for tests.
package redistest

import (
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"

	"github.com/serpent-os/serpent-oci/oci/testenv"
)

// Start runs redis-server on a Unix socket of its own (no TCP port, nothing saved), with args
// added, for the test's life, and returns the socket's path.
func Start(t testing.TB, args ...string) string {
	t.Helper()
	testenv.RequireTools(t, "redis-server")
	dir, err := os.MkdirTemp("", "redis") // a socket's path must be short
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	sock := filepath.Join(dir, "redis.sock")
	cmd := exec.Command("redis-server", append([]string{"--port", "0", "--unixsocket", sock, "--unixsocketperm", "700",
		"--save", "", "--appendonly", "no", "--dir", dir, "--loglevel", "warning"}, args...)...)
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
	for i := 0; ; i++ {
		if c, err := net.Dial("unix", sock); err == nil {
			c.Close()
			return sock
		}
		if i > 100 {
			t.Fatal("redis-server did not start in 5 s")
		}
		time.Sleep(50 * time.Millisecond)
	}
}
