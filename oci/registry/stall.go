package registry

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"sync"
	"time"
)

// Stall limits: a connection that sends nothing for IdleTimeout, or less than MinBytes in a
// window of StallWindow (one byte every five seconds would pass any idle timeout), is cut,
// and the transfer fails (or is retried) instead of hanging forever. curl's --speed-limit and
// --speed-time do the same.
const (
	DefaultIdleTimeout = 60 * time.Second
	DefaultStallWindow = 60 * time.Second
	DefaultMinBytes    = 16 << 10
)

// stallLimits says when a connection counts as stalled.
type stallLimits struct {
	idle, window time.Duration
	minBytes     int64
}

// withStallLimits makes t cut connections that stall. Only *http.Transport can be wrapped
// (its dialer); another RoundTripper is returned as it is.
func withStallLimits(rt http.RoundTripper, l stallLimits) http.RoundTripper {
	t, ok := rt.(*http.Transport)
	if !ok {
		return rt
	}
	t = t.Clone()
	dial := t.DialContext
	if dial == nil {
		dial = (&net.Dialer{Timeout: 30 * time.Second, KeepAlive: 30 * time.Second}).DialContext
	}
	t.DialContext = func(ctx context.Context, network, addr string) (net.Conn, error) {
		c, err := dial(ctx, network, addr)
		if err != nil {
			return nil, err
		}
		return &stallConn{Conn: c, limits: l, windowStart: time.Now()}, nil
	}
	return t
}

// stallConn is a connection whose reads time out when idle and fail when too slow.
type stallConn struct {
	net.Conn
	limits stallLimits

	mu          sync.Mutex
	windowStart time.Time
	windowBytes int64
}

func (c *stallConn) Read(p []byte) (int, error) {
	if err := c.Conn.SetReadDeadline(time.Now().Add(c.limits.idle)); err != nil {
		return 0, err
	}
	n, err := c.Conn.Read(p)
	if ne, ok := err.(net.Error); ok && ne.Timeout() {
		return n, &StallError{Msg: fmt.Sprintf("sent nothing for %v (idle for longer than the limit)", c.limits.idle), Err: err}
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	now := time.Now()
	if n == 0 {
		// A read that waited (an idle pooled connection, or one between responses) starts
		// the window anew: only data that trickles counts against it.
		c.windowStart, c.windowBytes = now, 0
		return n, err
	}
	c.windowBytes += int64(n)
	if now.Sub(c.windowStart) >= c.limits.window {
		if c.windowBytes < c.limits.minBytes {
			c.Conn.Close()
			return n, &StallError{Msg: fmt.Sprintf("sent %d bytes in %v, under %d: too slow, cut", c.windowBytes, now.Sub(c.windowStart).Round(10*time.Millisecond), c.limits.minBytes)}
		}
		c.windowStart, c.windowBytes = now, 0
	}
	return n, err
}

// StallError is a connection cut for stalling.
type StallError struct {
	Msg string
	Err error
}

func (e *StallError) Error() string { return e.Msg }
func (e *StallError) Unwrap() error { return e.Err }

func (c *stallConn) Write(p []byte) (int, error) {
	if err := c.Conn.SetWriteDeadline(time.Now().Add(c.limits.idle)); err != nil {
		return 0, err
	}
	n, err := c.Conn.Write(p)
	if ne, ok := err.(net.Error); ok && ne.Timeout() {
		return n, &StallError{Msg: fmt.Sprintf("took nothing for %v (idle for longer than the limit)", c.limits.idle), Err: err}
	}
	return n, err
}
