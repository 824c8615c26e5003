// Package xattr reads a file's extended attributes without following symlinks, for the layer
// writer and for the tree diff that must see exactly what the writer sees.
package xattr

import (
	"bytes"
	"errors"
	"sort"

	"golang.org/x/sys/unix"
)

// List returns the names of path's extended attributes, sorted. A filesystem without xattr
// support has none.
func List(path string) ([]string, error) {
	for {
		size, err := unix.Llistxattr(path, nil)
		if err != nil {
			if errors.Is(err, unix.EOPNOTSUPP) || errors.Is(err, unix.ENOTSUP) {
				return nil, nil
			}
			return nil, err
		}
		if size == 0 {
			return nil, nil
		}
		buf := make([]byte, size)
		n, err := unix.Llistxattr(path, buf)
		if errors.Is(err, unix.ERANGE) {
			continue // grew between the two calls
		}
		if err != nil {
			return nil, err
		}
		var names []string
		for _, b := range bytes.Split(buf[:n], []byte{0}) {
			if len(b) > 0 {
				names = append(names, string(b))
			}
		}
		sort.Strings(names)
		return names, nil
	}
}

// Get returns the value of path's extended attribute name (unix.ENODATA if it has none).
func Get(path, name string) ([]byte, error) {
	for {
		size, err := unix.Lgetxattr(path, name, nil)
		if err != nil {
			return nil, err
		}
		buf := make([]byte, size)
		n, err := unix.Lgetxattr(path, name, buf)
		if errors.Is(err, unix.ERANGE) {
			continue
		}
		if err != nil {
			return nil, err
		}
		return buf[:n], nil
	}
}

// All returns every extended attribute of path for which keep returns true (nil keeps all).
// An attribute removed while it is read is left out.
func All(path string, keep func(name string) bool) (map[string][]byte, error) {
	names, err := List(path)
	if err != nil {
		return nil, err
	}
	var out map[string][]byte
	for _, name := range names {
		if keep != nil && !keep(name) {
			continue
		}
		v, err := Get(path, name)
		if errors.Is(err, unix.ENODATA) {
			continue
		}
		if err != nil {
			return nil, err
		}
		if out == nil {
			out = map[string][]byte{}
		}
		out[name] = v
	}
	return out, nil
}
