package connset_test

import (
	"io"
	"net"
	"testing"
	"time"

	"github.com/serpent-os/serpent-oci/builder/internal/connset"
)

// Close ends the connections a handler is blocked on, and Wait returns once the handlers have;
// a connection added after Close is closed at once.
func TestCloseEndsOpenConnections(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var s connset.Set
	handled := make(chan error, 1)
	s.Serve(ln, func(c net.Conn) {
		_, err := io.ReadAll(c) // blocks until the connection is closed
		handled <- err
	})
	c, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.Write([]byte("x"))
	time.Sleep(50 * time.Millisecond) // let the handler start reading
	s.Close()
	ln.Close()
	select {
	case <-handled:
	case <-time.After(5 * time.Second):
		t.Fatal("Close did not end the connection the handler read")
	}
	s.Wait()
	a, b := net.Pipe()
	defer b.Close()
	if s.Add(a) {
		t.Error("Add after Close tracked the connection")
	}
	if _, err := a.Write([]byte("x")); err == nil {
		t.Error("a connection added after Close is still open")
	}
}
