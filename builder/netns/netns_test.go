package netns_test

import (
	"io"
	"net"
	"os"
	"path/filepath"
	"runtime"
	"testing"
	"time"

	"github.com/serpent-os/serpent-oci/builder/netns"
	"github.com/serpent-os/serpent-oci/oci/testenv"
	"golang.org/x/sys/unix"
)

// dialFrom dials address from inside the namespace at path, as a process there would.
func dialFrom(path, address string) (string, error) {
	type result struct {
		got string
		err error
	}
	res := make(chan result, 1)
	go func() {
		// Never unlocked: the thread ends with the goroutine (no child of this test's needs it).
		runtime.LockOSThread()
		f, err := os.Open(path)
		if err != nil {
			res <- result{"", err}
			return
		}
		defer f.Close()
		if err := unix.Setns(int(f.Fd()), unix.CLONE_NEWNET); err != nil {
			res <- result{"", err}
			return
		}
		c, err := net.DialTimeout("tcp", address, 2*time.Second)
		if err != nil {
			res <- result{"", err}
			return
		}
		defer c.Close()
		_ = c.SetDeadline(time.Now().Add(5 * time.Second))
		b, err := io.ReadAll(c)
		res <- result{string(b), err}
	}()
	r := <-res
	return r.got, r.err
}

func serveOnce(ln net.Listener, reply string) {
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			io.WriteString(c, reply)
			c.Close()
		}
	}()
}

// A namespace reaches the listeners opened in it and nothing of the host's network; its
// listeners' connections run on the host. Close leaves no file.
func TestNamespaceReachesOnlyItsListeners(t *testing.T) {
	testenv.RequireRoot(t)
	path := filepath.Join(t.TempDir(), "net")
	ns, err := netns.New(path)
	if err != nil {
		t.Fatal(err)
	}
	inside, err := ns.Listen("127.0.0.1:4000")
	if err != nil {
		t.Fatal(err)
	}
	defer inside.Close()
	serveOnce(inside, "from the listener in the namespace")
	host, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer host.Close()
	serveOnce(host, "from the host")

	if got, err := dialFrom(path, "127.0.0.1:4000"); err != nil || got != "from the listener in the namespace" {
		t.Errorf("inside, its listener: %q, %v", got, err)
	}
	if got, err := dialFrom(path, host.Addr().String()); err == nil {
		t.Errorf("inside, the host's loopback listener %s answered: %q", host.Addr(), got)
	}
	if c, err := net.DialTimeout("tcp", "127.0.0.1:4000", time.Second); err == nil {
		c.Close()
		// Something of the host's may listen there; it must not be ours.
		t.Logf("the host has a listener on 127.0.0.1:4000 of its own")
	}
	// Dial reaches a server of the namespace's from the host.
	if c, err := ns.Dial("127.0.0.1:4000", time.Second); err != nil {
		t.Errorf("Dial into the namespace: %v", err)
	} else {
		b, _ := io.ReadAll(c)
		c.Close()
		if string(b) != "from the listener in the namespace" {
			t.Errorf("Dial into the namespace read %q", b)
		}
	}
	if c, err := ns.Dial(host.Addr().String(), time.Second); err == nil {
		c.Close()
		t.Errorf("Dial in the namespace reached the host's %s", host.Addr())
	}
	// The listener's goroutine, on the host, reaches the host's network.
	if c, err := net.Dial("tcp", host.Addr().String()); err != nil {
		t.Errorf("the host's side: %v", err)
	} else {
		c.Close()
	}
	if err := ns.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(path); !os.IsNotExist(err) {
		t.Errorf("after Close: %v", err)
	}
	if _, err := netns.New(filepath.Join(t.TempDir(), "missing", "net")); err == nil {
		t.Error("New in a directory that does not exist succeeded")
	}
}

// threads lists the process's thread ids.
func threads(t *testing.T) map[string]bool {
	t.Helper()
	es, err := os.ReadDir("/proc/self/task")
	if err != nil {
		t.Fatal(err)
	}
	m := map[string]bool{}
	for _, e := range es {
		m[e.Name()] = true
	}
	return m
}

// No thread dies making namespaces or sockets in them: runc is started with a parent-death
// signal, tied to the thread that started it, so a thread that ends kills a container.
func TestNoThreadEnds(t *testing.T) {
	testenv.RequireRoot(t)
	before := threads(t)
	for i := range 20 {
		ns, err := netns.New(filepath.Join(t.TempDir(), "net"))
		if err != nil {
			t.Fatal(err)
		}
		ln, err := ns.Listen("127.0.0.1:4000")
		if err != nil {
			t.Fatal(err)
		}
		if c, err := ns.Dial("127.0.0.1:4000", time.Second); err == nil {
			c.Close()
		} else {
			t.Errorf("round %d: %v", i, err)
		}
		ln.Close()
		ns.Close()
	}
	after := threads(t)
	for tid := range before {
		if !after[tid] {
			t.Errorf("thread %s ended", tid)
		}
	}
}
