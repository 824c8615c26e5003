package builder

import (
	"errors"
	"strings"

	v1 "github.com/google/go-containerregistry/pkg/v1"
)

// ImageProcess is the process a run of an image starts, as podman run makes it: the
// entrypoint (the image's, or entrypoint, a command word split at spaces), then command, or
// without one the image's cmd (which a given entrypoint clears); and the user, user or else
// the image's.
func ImageProcess(cfg v1.Config, entrypoint string, command []string, user string) (args []string, as string, err error) {
	ep, rest := cfg.Entrypoint, command
	if entrypoint != "" {
		ep = strings.Fields(entrypoint)
	} else if len(rest) == 0 {
		rest = cfg.Cmd
	}
	args = append(append([]string(nil), ep...), rest...)
	if len(args) == 0 {
		return nil, "", errors.New("no command: the image has no entrypoint or cmd; give one after --")
	}
	if user == "" {
		user = cfg.User
	}
	return args, user, nil
}
