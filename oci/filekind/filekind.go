// Package filekind names a file's type for people, in the errors that refuse what is not a
// regular file or a directory where one is expected ("is a fifo, not a regular file").
package filekind

import "io/fs"

// Of names the type m says: "regular file", "directory", "symlink", "fifo", "socket",
// "device", or "special file".
func Of(m fs.FileMode) string {
	switch {
	case m&fs.ModeSymlink != 0:
		return "symlink"
	case m.IsDir():
		return "directory"
	case m&fs.ModeDevice != 0:
		return "device"
	case m&fs.ModeNamedPipe != 0:
		return "fifo"
	case m&fs.ModeSocket != 0:
		return "socket"
	case m.IsRegular():
		return "regular file"
	}
	return "special file"
}
