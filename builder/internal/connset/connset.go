// Package connset serves a listener's connections and ends them all when the server stops:
// what the compiler cache's proxy and the compile farm's forwarders share.
package connset

import (
	"net"
	"sync"
)

// Set is the open connections of a server.
type Set struct {
	mu     sync.Mutex
	conns  map[net.Conn]struct{}
	closed bool
	wg     sync.WaitGroup
}

// Add tracks c, until Remove; once the set is closed it closes c and says false.
func (s *Set) Add(c net.Conn) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		c.Close()
		return false
	}
	if s.conns == nil {
		s.conns = map[net.Conn]struct{}{}
	}
	s.conns[c] = struct{}{}
	return true
}

// Remove stops tracking c and closes it.
func (s *Set) Remove(c net.Conn) {
	s.mu.Lock()
	delete(s.conns, c)
	s.mu.Unlock()
	c.Close()
}

// Serve accepts ln's connections until it is closed, each handled by handle in a goroutine of
// its own and closed after it. Wait waits for them.
func (s *Set) Serve(ln net.Listener, handle func(net.Conn)) {
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			if !s.Add(c) {
				return
			}
			s.wg.Add(1)
			go func() {
				defer s.wg.Done()
				defer s.Remove(c)
				handle(c)
			}()
		}
	}()
}

// Close closes every connection, and those added afterwards. The listeners are the caller's
// to close; then Wait.
func (s *Set) Close() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.closed = true
	for c := range s.conns {
		c.Close()
	}
}

// Wait waits for Serve's loops and handlers to end.
func (s *Set) Wait() { s.wg.Wait() }
