package builder

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path"
	"strings"

	securejoin "github.com/cyphar/filepath-securejoin"
)

// The exit statuses of a command that never ran, as a shell's and podman's.
const (
	CannotRunCode = 126 // found, but not something to execute (a directory, no x bit)
	NotFoundCode  = 127 // not in the image
)

// CommandError is a run whose command was not started: not found in the image, or not
// executable. Code is the exit status a shell (and podman) gives for it.
type CommandError struct {
	Command string
	Code    int
	Reason  string
}

func (e *CommandError) Error() string { return fmt.Sprintf("%s: %s", e.Command, e.Reason) }

// CommandStatus is the exit status err carries as a command that never ran (126 or 127).
func CommandStatus(err error) (int, bool) {
	var ce *CommandError
	if errors.As(err, &ce) {
		return ce.Code, true
	}
	return 0, false
}

// findCommand finds the program argv0 names in the root filesystem at root, as execvp inside
// it would: a name with a slash as a path (from cwd when relative), else in each directory of
// pathList. Paths are resolved inside root (an image's symlinks cannot lead out of it). What
// it refuses is a *CommandError; where it finds a program, runc runs it. A candidate under
// one of mountPoints (a volume, a tool's image) is the mount's to answer: taken as found.
func findCommand(root, argv0, cwd, pathList string, mountPoints []string) error {
	if argv0 == "" {
		return &CommandError{Command: `""`, Code: NotFoundCode, Reason: "an empty command"}
	}
	var candidates []string
	inCwd := func(p string) string {
		if path.IsAbs(p) {
			return path.Clean(p)
		}
		return path.Join("/", cwd, p)
	}
	isPath := strings.Contains(argv0, "/")
	if isPath {
		candidates = []string{inCwd(argv0)}
	} else {
		for _, dir := range strings.Split(pathList, ":") {
			if dir == "" {
				dir = "."
			}
			candidates = append(candidates, inCwd(path.Join(dir, argv0)))
		}
	}
	var cannot *CommandError
	for _, c := range candidates {
		for _, m := range mountPoints {
			if c == m || strings.HasPrefix(c, strings.TrimSuffix(m, "/")+"/") {
				return nil
			}
		}
		full, err := securejoin.SecureJoin(root, c)
		if err != nil {
			continue
		}
		fi, err := os.Stat(full)
		switch {
		case errors.Is(err, fs.ErrNotExist):
			continue
		case err != nil:
			return &CommandError{Command: argv0, Code: CannotRunCode, Reason: err.Error()}
		case fi.IsDir():
			cannot = &CommandError{Command: argv0, Code: CannotRunCode, Reason: c + " is a directory"}
		case fi.Mode().Perm()&0o111 == 0:
			cannot = &CommandError{Command: argv0, Code: CannotRunCode, Reason: c + " is not executable (permission denied)"}
		default:
			return nil
		}
	}
	if cannot != nil {
		return cannot
	}
	if isPath {
		return &CommandError{Command: argv0, Code: NotFoundCode, Reason: "no such file in the image"}
	}
	return &CommandError{Command: argv0, Code: NotFoundCode, Reason: "command not found in the image (PATH " + pathList + ")"}
}
