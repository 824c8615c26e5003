package rootfs

import (
	"context"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"

	"github.com/serpent-os/serpent-oci/oci/xattr"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/serpent-os/serpent-oci/oci/image"
	"golang.org/x/sys/unix"
)

// Copy is the fallback provider: a private unpacked copy of the base and a tree diff.
type Copy struct{}

var _ Provider = Copy{}

// Name implements Provider.
func (Copy) Name() string { return "copy" }

// Prepare implements Provider: the base unpacked at dir/rootfs, its state recorded.
func (Copy) Prepare(ctx context.Context, base v1.Image, dir string) (Workspace, error) {
	w := &copyWorkspace{dir: dir}
	if err := image.Unpack(ctx, base, w.Root()); err != nil {
		return nil, fmt.Errorf("copy workspace: %w", err)
	}
	before, err := scan(w.Root())
	if err != nil {
		return nil, fmt.Errorf("copy workspace: %w", err)
	}
	w.before = before
	return w, nil
}

type copyWorkspace struct {
	dir    string
	before map[string]state
}

func (w *copyWorkspace) Root() string    { return filepath.Join(w.dir, "rootfs") }
func (w *copyWorkspace) changes() string { return filepath.Join(w.dir, "changes") }
func (w *copyWorkspace) Close() error    { return os.RemoveAll(w.dir) }

// state is what the diff compares of an entry. Directories compare by inode and birth time
// too: a directory removed and made again is a replacement (an opaque directory), as overlayfs
// records it. The inode alone cannot tell, since filesystems reuse a freed inode number at once.
type state struct {
	ino, rdev       uint64
	btimeNsec       int64
	mode, uid, gid  uint32
	size, mtimeNsec int64
	link, xattrs    string
}

func (s state) typ() uint32 { return s.mode & unix.S_IFMT }
func (s state) isDir() bool { return s.typ() == unix.S_IFDIR }

func stat(path string) (state, error) {
	var st unix.Stat_t
	if err := unix.Lstat(path, &st); err != nil {
		return state{}, err
	}
	s := state{
		ino: st.Ino, rdev: uint64(st.Rdev), mode: st.Mode, uid: st.Uid, gid: st.Gid,
		size: st.Size, mtimeNsec: st.Mtim.Nano(),
	}
	var stx unix.Statx_t
	if err := unix.Statx(unix.AT_FDCWD, path, unix.AT_SYMLINK_NOFOLLOW, unix.STATX_BTIME, &stx); err == nil && stx.Mask&unix.STATX_BTIME != 0 {
		s.btimeNsec = stx.Btime.Sec*1e9 + int64(stx.Btime.Nsec)
	}
	if s.typ() == unix.S_IFLNK {
		l, err := os.Readlink(path)
		if err != nil {
			return s, err
		}
		s.link = l
	}
	x, err := xattr.All(path, func(name string) bool { return !strings.HasPrefix(name, "trusted.overlay.") })
	if err != nil {
		return s, err
	}
	s.xattrs = encodeXattrs(x)
	return s, nil
}

func scan(root string) (map[string]state, error) {
	out := map[string]state{}
	err := filepath.WalkDir(root, func(p string, _ fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if p == root {
			return nil
		}
		s, err := stat(p)
		if err != nil {
			return err
		}
		out[p[len(root)+1:]] = s
		return nil
	})
	return out, err
}

// Changes builds dir/changes from the difference between the tree now and at Prepare.
func (w *copyWorkspace) Changes(ctx context.Context) (string, error) {
	root, out := w.Root(), w.changes()
	if err := os.Mkdir(out, 0o755); err != nil {
		return "", fmt.Errorf("copy workspace: %w", err)
	}
	b := &upperBuilder{root: root, out: out, made: map[string]bool{}}
	var opaque []string // replaced directories: everything below them is new
	under := func(rel string) bool {
		for _, o := range opaque {
			if strings.HasPrefix(rel, o+"/") {
				return true
			}
		}
		return false
	}
	after := map[string]bool{}
	err := filepath.WalkDir(root, func(p string, _ fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if p == root {
			return nil
		}
		if err := ctx.Err(); err != nil {
			return err
		}
		rel := p[len(root)+1:]
		after[rel] = true
		cur, err := stat(p)
		if err != nil {
			return err
		}
		old, existed := w.before[rel]
		switch {
		case !existed || under(rel):
			return b.add(rel, cur, false)
		case cur.typ() != old.typ():
			return b.add(rel, cur, cur.isDir())
		case cur.isDir() && (cur.ino != old.ino || cur.btimeNsec != old.btimeNsec):
			opaque = append(opaque, rel)
			return b.add(rel, cur, true)
		case cur != old && !(cur.isDir() && sameDirMeta(cur, old)):
			return b.add(rel, cur, false)
		}
		return nil
	})
	if err != nil {
		return "", fmt.Errorf("diff %s: %w", root, err)
	}
	// Deletions: a whiteout for each removed path whose parent is still there and was not
	// replaced (an opaque directory hides the lower one's content already).
	var gone []string
	for rel := range w.before {
		if after[rel] {
			continue
		}
		parent := filepath.Dir(rel)
		if parent != "." && (!after[parent] || under(rel) || contains(opaque, parent)) {
			continue
		}
		if parent != "." && w.before[parent].typ() != unix.S_IFDIR {
			continue
		}
		gone = append(gone, rel)
	}
	sort.Strings(gone)
	for _, rel := range gone {
		if err := b.whiteout(rel); err != nil {
			return "", err
		}
	}
	if err := b.finish(); err != nil {
		return "", err
	}
	return out, nil
}

// sameDirMeta reports whether a directory's own metadata is unchanged (its content may be).
func sameDirMeta(a, b state) bool {
	return a.mode == b.mode && a.uid == b.uid && a.gid == b.gid && a.mtimeNsec == b.mtimeNsec && a.xattrs == b.xattrs
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

// upperBuilder makes an overlayfs-style upper directory: changed entries with their parents
// (as overlayfs copies parents up), whiteouts and opaque markers.
type upperBuilder struct {
	root, out string
	made      map[string]bool
	dirTimes  []dirTime
}

type dirTime struct {
	path  string
	mtime unix.Timespec
}

func (b *upperBuilder) ensureParents(rel string) error {
	parent := filepath.Dir(rel)
	if parent == "." || b.made[parent] {
		return nil
	}
	if err := b.ensureParents(parent); err != nil {
		return err
	}
	s, err := stat(filepath.Join(b.root, parent))
	if err != nil {
		return err
	}
	return b.add(parent, s, false)
}

func (b *upperBuilder) add(rel string, s state, opaque bool) error {
	if b.made[rel] {
		return nil
	}
	if err := b.ensureParents(rel); err != nil {
		return err
	}
	src, dst := filepath.Join(b.root, rel), filepath.Join(b.out, rel)
	var err error
	switch s.typ() {
	case unix.S_IFREG:
		// Same inode, so same content and metadata, and no copy.
		err = os.Link(src, dst)
	case unix.S_IFDIR:
		err = b.mkdir(dst, s, opaque)
	case unix.S_IFLNK:
		err = os.Symlink(s.link, dst)
		if err == nil {
			err = b.meta(dst, s, true)
		}
	default: // devices, fifos, sockets
		err = unix.Mknod(dst, s.mode, int(s.rdev))
		if err == nil {
			err = b.meta(dst, s, false)
		}
	}
	if err != nil {
		return fmt.Errorf("record change %s: %w", rel, err)
	}
	b.made[rel] = true
	return nil
}

func (b *upperBuilder) mkdir(dst string, s state, opaque bool) error {
	if err := os.Mkdir(dst, 0o700); err != nil {
		return err
	}
	if err := b.meta(dst, s, false); err != nil {
		return err
	}
	if opaque {
		if err := unix.Lsetxattr(dst, "trusted.overlay.opaque", []byte("y"), 0); err != nil {
			return err
		}
	}
	// Children change the directory's mtime: set it once they are all made.
	b.dirTimes = append(b.dirTimes, dirTime{dst, unix.NsecToTimespec(s.mtimeNsec)})
	return nil
}

// meta copies owner, mode, xattrs and mtime onto a made entry.
func (b *upperBuilder) meta(dst string, s state, symlink bool) error {
	if err := unix.Lchown(dst, int(s.uid), int(s.gid)); err != nil {
		return err
	}
	if !symlink {
		if err := unix.Chmod(dst, s.mode&07777); err != nil {
			return err
		}
	}
	for name, value := range decodeXattrs(s.xattrs) {
		if err := unix.Lsetxattr(dst, name, []byte(value), 0); err != nil {
			return fmt.Errorf("set xattr %s: %w", name, err)
		}
	}
	ts := []unix.Timespec{unix.NsecToTimespec(s.mtimeNsec), unix.NsecToTimespec(s.mtimeNsec)}
	return unix.UtimesNanoAt(unix.AT_FDCWD, dst, ts, unix.AT_SYMLINK_NOFOLLOW)
}

func (b *upperBuilder) whiteout(rel string) error {
	if err := b.ensureParents(rel); err != nil {
		return err
	}
	if err := unix.Mknod(filepath.Join(b.out, rel), unix.S_IFCHR, 0); err != nil {
		return fmt.Errorf("record deletion of %s: %w", rel, err)
	}
	return nil
}

func (b *upperBuilder) finish() error {
	for i := len(b.dirTimes) - 1; i >= 0; i-- {
		d := b.dirTimes[i]
		if err := unix.UtimesNanoAt(unix.AT_FDCWD, d.path, []unix.Timespec{d.mtime, d.mtime}, unix.AT_SYMLINK_NOFOLLOW); err != nil {
			return err
		}
	}
	return nil
}

// encodeXattrs makes a comparable string of xattrs (values may hold any byte).
func encodeXattrs(m map[string][]byte) string {
	if len(m) == 0 {
		return ""
	}
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	var b strings.Builder
	for _, k := range keys {
		b.WriteString(k + "=" + strconv.Quote(string(m[k])) + "\n")
	}
	return b.String()
}

func decodeXattrs(s string) map[string]string {
	out := map[string]string{}
	for _, line := range strings.Split(strings.TrimSuffix(s, "\n"), "\n") {
		k, q, ok := strings.Cut(line, "=")
		if !ok {
			continue
		}
		if v, err := strconv.Unquote(q); err == nil {
			out[k] = v
		}
	}
	return out
}
