// Package netns makes a network namespace for a stage's container that reaches only what the
// build serves into it: loopback, up, and listeners the build opens inside it (forwarding to
// a compile farm's helpers, say), nothing else. The namespace is a file, as `ip netns add`
// makes one (a bind mount of the namespace), that runc joins by path.
package netns

import (
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"runtime"
	"time"

	"golang.org/x/sys/unix"
)

// NS is a network namespace held by a file.
type NS struct {
	path string
}

// New makes a network namespace with loopback up, held by the file path (which must not
// exist; its directory must). Close removes it.
func New(path string) (*NS, error) {
	f, err := os.OpenFile(path, os.O_CREATE|os.O_EXCL|os.O_RDONLY, 0o444)
	if err != nil {
		return nil, fmt.Errorf("network namespace: %w", err)
	}
	f.Close()
	errc := make(chan error, 1)
	go func() {
		runtime.LockOSThread()
		err, restored := func() (error, bool) {
			host, err := os.Open(fmt.Sprintf("/proc/self/task/%d/ns/net", unix.Gettid()))
			if err != nil {
				return err, true
			}
			defer host.Close()
			if err := unix.Unshare(unix.CLONE_NEWNET); err != nil {
				return fmt.Errorf("unshare: %w", err), true
			}
			err = loopbackUp()
			if err == nil {
				self := fmt.Sprintf("/proc/self/task/%d/ns/net", unix.Gettid())
				if mErr := unix.Mount(self, path, "", unix.MS_BIND, ""); mErr != nil {
					err = fmt.Errorf("bind %s: %w", path, mErr)
				}
			}
			if sErr := unix.Setns(int(host.Fd()), unix.CLONE_NEWNET); sErr != nil {
				return errors.Join(err, fmt.Errorf("back to the host's namespace: %w", sErr)), false
			}
			return err, true
		}()
		// A thread must not die: a child started from it (runc, with its parent-death signal)
		// would be killed. Only one stuck in the new namespace ends, with its goroutine.
		if restored {
			runtime.UnlockOSThread()
		}
		errc <- err
	}()
	if err := <-errc; err != nil {
		os.Remove(path)
		return nil, fmt.Errorf("network namespace %s: %w", path, err)
	}
	return &NS{path: path}, nil
}

// Path is the file that holds the namespace, for runc to join.
func (ns *NS) Path() string { return ns.path }

// loopbackUp sets lo up in the calling thread's network namespace.
func loopbackUp() error {
	fd, err := unix.Socket(unix.AF_INET, unix.SOCK_DGRAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return fmt.Errorf("loopback: %w", err)
	}
	defer unix.Close(fd)
	ifr, err := unix.NewIfreq("lo")
	if err != nil {
		return err
	}
	if err := unix.IoctlIfreq(fd, unix.SIOCGIFFLAGS, ifr); err != nil {
		return fmt.Errorf("loopback flags: %w", err)
	}
	ifr.SetUint16(ifr.Uint16() | unix.IFF_UP)
	if err := unix.IoctlIfreq(fd, unix.SIOCSIFFLAGS, ifr); err != nil {
		return fmt.Errorf("loopback up: %w", err)
	}
	return nil
}

// Listen opens a TCP listener on address inside the namespace; what accepts on it runs on
// the host (a connection it makes reaches the host's network, not the namespace's).
func (ns *NS) Listen(address string) (net.Listener, error) {
	ln, err := inside(ns, func() (net.Listener, error) { return net.Listen("tcp", address) })
	if err != nil {
		return nil, fmt.Errorf("listen on %s in %s: %w", address, filepath.Base(ns.path), err)
	}
	return ln, nil
}

// Dial connects to address inside the namespace (a server a process there listens on) from
// the host, within timeout.
func (ns *NS) Dial(address string, timeout time.Duration) (net.Conn, error) {
	c, err := inside(ns, func() (net.Conn, error) { return net.DialTimeout("tcp", address, timeout) })
	if err != nil {
		return nil, fmt.Errorf("dial %s in %s: %w", address, filepath.Base(ns.path), err)
	}
	return c, nil
}

// inside makes a socket with open on a thread that is in the namespace for the call alone.
func inside[T io.Closer](ns *NS, open func() (T, error)) (T, error) {
	type result struct {
		v   T
		err error
	}
	res := make(chan result, 1)
	go func() {
		runtime.LockOSThread()
		v, err := func() (T, error) {
			var zero T
			host, err := os.Open(fmt.Sprintf("/proc/self/task/%d/ns/net", unix.Gettid()))
			if err != nil {
				runtime.UnlockOSThread() // unchanged: the runtime may use it again
				return zero, err
			}
			defer host.Close()
			target, err := os.Open(ns.path)
			if err != nil {
				runtime.UnlockOSThread()
				return zero, err
			}
			defer target.Close()
			if err := unix.Setns(int(target.Fd()), unix.CLONE_NEWNET); err != nil {
				runtime.UnlockOSThread()
				return zero, fmt.Errorf("enter: %w", err)
			}
			v, openErr := open()
			if err := unix.Setns(int(host.Fd()), unix.CLONE_NEWNET); err != nil {
				// This thread stays in the namespace: it must not run anything else, and
				// ends with this goroutine, locked.
				if openErr == nil {
					v.Close()
				}
				return zero, fmt.Errorf("leave: %w", err)
			}
			runtime.UnlockOSThread() // back where it was: the runtime may use it again
			return v, openErr
		}()
		res <- result{v, err}
	}()
	r := <-res
	return r.v, r.err
}

// Close releases the namespace: it ends once no process is in it and no listener of it is
// open.
func (ns *NS) Close() error {
	err := unix.Unmount(ns.path, unix.MNT_DETACH)
	if errors.Is(err, unix.EINVAL) { // not mounted
		err = nil
	}
	if rmErr := os.Remove(ns.path); rmErr != nil && !errors.Is(rmErr, os.ErrNotExist) && err == nil {
		err = rmErr
	}
	return err
}
