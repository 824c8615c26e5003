package builder

import (
	"errors"
	"fmt"
	"io/fs"
	"math"
	"strconv"
	"strings"
)

// maxAccountFileBytes bounds how much of an image's /etc/passwd or /etc/group is read.
const maxAccountFileBytes = 4 << 20

// ResolveUser turns an image config's User (uid, uid:gid, name, name:group, or "" for root)
// into the uid and gid to run as, reading names from /etc/passwd and /etc/group of the root
// filesystem at root. The files are read inside root (a symlink cannot lead out of it). A
// numeric user found in no passwd entry runs with gid 0, as Docker and podman do.
func ResolveUser(root, user string) (uid, gid uint32, err error) {
	if user == "" {
		return 0, 0, nil
	}
	name, group, hasGroup := strings.Cut(user, ":")
	if name == "" || (hasGroup && group == "") {
		return 0, 0, fmt.Errorf("user %q: want USER[:GROUP]", user)
	}
	passwd, err := readAccounts(root, "/etc/passwd")
	if err != nil {
		return 0, 0, err
	}
	found := false
	if n, ok := parseID(name); ok {
		uid = n
		for _, e := range passwd {
			if len(e) > 3 && e[2] == name {
				if g, ok := parseID(e[3]); ok {
					gid, found = g, true
				}
				break
			}
		}
	} else {
		for _, e := range passwd {
			if len(e) > 3 && e[0] == name {
				u, uok := parseID(e[2])
				g, gok := parseID(e[3])
				if !uok || !gok {
					return 0, 0, fmt.Errorf("user %q: /etc/passwd has a malformed entry for it", user)
				}
				uid, gid, found = u, g, true
				break
			}
		}
		if !found {
			return 0, 0, fmt.Errorf("user %q: no such user in the image's /etc/passwd", user)
		}
	}
	if !hasGroup {
		return uid, gid, nil
	}
	if g, ok := parseID(group); ok {
		return uid, g, nil
	}
	groups, err := readAccounts(root, "/etc/group")
	if err != nil {
		return 0, 0, err
	}
	for _, e := range groups {
		if len(e) > 2 && e[0] == group {
			if g, ok := parseID(e[2]); ok {
				return uid, g, nil
			}
		}
	}
	return 0, 0, fmt.Errorf("user %q: no such group in the image's /etc/group", user)
}

// readAccounts reads a colon-separated account file of the root filesystem at root, resolved
// inside it, regular and bounded (readRegularInRoot); a missing file has no entries.
func readAccounts(root, name string) ([][]string, error) {
	b, err := readRegularInRoot(root, name, maxAccountFileBytes)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("read the image's %s: %w", name, err)
	}
	var out [][]string
	for _, line := range strings.Split(string(b), "\n") {
		line = strings.TrimSpace(line)
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		out = append(out, strings.Split(line, ":"))
	}
	return out, nil
}

func parseID(s string) (uint32, bool) {
	n, err := strconv.ParseUint(s, 10, 32)
	if err != nil || n == math.MaxUint32 { // (uid_t)-1 means "no change" to the kernel
		return 0, false
	}
	return uint32(n), true
}
