package layer

import (
	"archive/tar"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"golang.org/x/sys/unix"
)

// ExtractOptions bounds what one layer may make. Zero fields take the defaults; a caller that
// trusts its layers can raise them.
type ExtractOptions struct {
	Format Format
	// MaxEntryBytes bounds one file's size as its header states it (a sparse file's apparent
	// size counts: the entry is refused before anything is written).
	MaxEntryBytes int64
	// MaxLayerBytes bounds the sum of the sizes the layer's headers state.
	MaxLayerBytes int64
	// MaxEntries bounds the layer's entries.
	MaxEntries int
	// OnWhiteout, when set, is told of each overlayfs whiteout made (OverlayUpper format), by
	// its path below the root.
	OnWhiteout func(rel string)
}

// Default extraction limits: far above any real image's files, far below a disk.
const (
	DefaultMaxEntryBytes = 16 << 30
	DefaultMaxLayerBytes = 64 << 30
	DefaultMaxEntries    = 4 << 20
)

func (o ExtractOptions) fill() ExtractOptions {
	if o.MaxEntryBytes <= 0 {
		o.MaxEntryBytes = DefaultMaxEntryBytes
	}
	if o.MaxLayerBytes <= 0 {
		o.MaxLayerBytes = DefaultMaxLayerBytes
	}
	if o.MaxEntries <= 0 {
		o.MaxEntries = DefaultMaxEntries
	}
	return o
}

// ErrRefused marks a layer entry that Extract will not apply (wrapped, with the entry named).
var ErrRefused = errors.New("refused")

// Extract applies the uncompressed tar stream r to the directory root, as the next layer on
// top of what root already holds, with the default limits. See ExtractWith.
func Extract(ctx context.Context, root string, r io.Reader, format Format) error {
	return ExtractWith(ctx, root, r, ExtractOptions{Format: format})
}

// ExtractWith applies the uncompressed tar stream r to the directory root as the next layer on
// top of what root holds. root is treated as a root: every path is resolved below it with no
// symlink followed (openat2 with RESOLVE_BENEATH and RESOLVE_NO_SYMLINKS), `..` and absolute
// names are resolved inside it, hardlinks must name a non-directory of root. A parent that is
// not a directory is replaced by one, as overlayfs shows a directory of an upper layer over a
// file or symlink of a lower one, so that the copy and overlay paths agree.
//
// Whiteouts follow the image-spec: `.wh.NAME` removes NAME of the lower layers and
// `.wh..wh..opq` empties its directory of them (in Dir format), or become overlayfs whiteouts:
// 0/0 character devices and trusted.overlay.opaque (in OverlayUpper format, for a snapshot
// overlayfs stacks). Degenerate ones (`.wh.`, `.wh..`, `.wh...`, other `.wh..wh.` names, a
// whiteout of the root) are refused, and so are a 0/0 character device (an overlay whiteout
// in disguise) and trusted.overlay.* xattrs. Zero blocks of regular files become holes.
//
// On error the state of root is undefined: extract into a fresh directory and discard it on
// failure.
func ExtractWith(ctx context.Context, root string, r io.Reader, opts ExtractOptions) error {
	opts = opts.fill()
	if err := os.MkdirAll(root, 0o755); err != nil {
		return fmt.Errorf("extract layer: %w", err)
	}
	rootfd, err := unix.Open(root, unix.O_PATH|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return fmt.Errorf("extract layer: open %s: %w", root, err)
	}
	x := &extractor{root: root, rootfd: rootfd, opts: opts, written: map[string]bool{}, buf: make([]byte, 256<<10)}
	defer x.close()
	if err := x.run(ctx, tar.NewReader(r)); err != nil {
		return fmt.Errorf("extract layer into %s: %w", root, err)
	}
	return nil
}

type dirTime struct {
	rel          string
	atime, mtime time.Time
}

type extractor struct {
	root    string
	rootfd  int
	opts    ExtractOptions
	written map[string]bool // paths this layer made: its whiteouts apply to lower layers only
	dirs    []dirTime       // directories whose times are set last, once their entries exist
	total   int64
	buf     []byte

	cachedRel string // the last parent directory opened, and its descriptor
	cachedFd  int
}

func (x *extractor) close() {
	x.dropCache()
	unix.Close(x.rootfd)
}

func (x *extractor) dropCache() {
	if x.cachedRel != "" {
		unix.Close(x.cachedFd)
		x.cachedRel = ""
	}
}

func (x *extractor) run(ctx context.Context, tr *tar.Reader) error {
	for n := 0; ; n++ {
		if err := ctx.Err(); err != nil {
			return err
		}
		hdr, err := tr.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			return fmt.Errorf("read layer: %w", err)
		}
		if n >= x.opts.MaxEntries {
			return fmt.Errorf("more than %d entries: %w", x.opts.MaxEntries, ErrRefused)
		}
		if err := x.entry(hdr, tr); err != nil {
			return fmt.Errorf("entry %s: %w", hdr.Name, err)
		}
	}
	// Deepest first, so that setting a directory's times does not touch its parent's again.
	for i := len(x.dirs) - 1; i >= 0; i-- {
		d := x.dirs[i]
		if err := x.setTimes(d.rel, d.atime, d.mtime); err != nil {
			return fmt.Errorf("entry %s: %w", d.rel, err)
		}
	}
	return nil
}

// clean maps a name in the layer to a path relative to root: "" for root itself.
func clean(name string) string {
	return strings.TrimPrefix(path.Clean("/"+name), "/")
}

func (x *extractor) entry(hdr *tar.Header, r io.Reader) error {
	if hdr.Typeflag == tar.TypeXGlobalHeader {
		return nil // PAX records for the archive (git archive writes its commit there), no file
	}
	rel := clean(hdr.Name)
	dir, base := path.Split(rel)
	dir = strings.TrimSuffix(dir, "/")
	for _, part := range strings.Split(dir, "/") {
		if strings.HasPrefix(part, whiteoutPrefix) {
			return fmt.Errorf("a name below the whiteout %q: a whiteout is a file, nothing is below it: %w", part, ErrRefused)
		}
	}
	if strings.HasPrefix(base, whiteoutPrefix) {
		if hdr.Typeflag != tar.TypeReg && hdr.Typeflag != tar.TypeRegA {
			return fmt.Errorf("whiteout %q of tar type %q: a whiteout is an empty regular file: %w", base, hdr.Typeflag, ErrRefused)
		}
		return x.whiteout(dir, base)
	}
	if rel == "" {
		return nil // the root's own entry: root keeps the metadata its caller gave it
	}
	if len(rel) > unix.PathMax {
		return fmt.Errorf("name of %d bytes: %w", len(rel), ErrRefused)
	}
	if hdr.Size < 0 || hdr.Size > x.opts.MaxEntryBytes {
		return fmt.Errorf("%d bytes: over the limit of %d per entry: %w", hdr.Size, x.opts.MaxEntryBytes, ErrRefused)
	}
	if x.total += hdr.Size; x.total > x.opts.MaxLayerBytes {
		return fmt.Errorf("the layer's entries pass %d bytes: %w", x.opts.MaxLayerBytes, ErrRefused)
	}
	pfd, err := x.parent(dir)
	if err != nil {
		return err
	}
	// What is there already: a directory stays (and keeps what is in it) when the entry is
	// one; anything else is replaced.
	var st unix.Stat_t
	exists := unix.Fstatat(pfd, base, &st, unix.AT_SYMLINK_NOFOLLOW) == nil
	isDir := exists && st.Mode&unix.S_IFMT == unix.S_IFDIR
	replaced := exists && !(isDir && hdr.Typeflag == tar.TypeDir)
	if replaced {
		if err := x.remove(rel); err != nil {
			return err
		}
	}
	mode := uint32(hdr.Mode) & 0o7777
	switch hdr.Typeflag {
	case tar.TypeDir:
		if !isDir {
			if err := unix.Mkdirat(pfd, base, 0o700); err != nil {
				return fmt.Errorf("mkdir: %w", err)
			}
		}
		if replaced {
			if err := x.replacedByDir(pfd, base); err != nil {
				return err
			}
		}
		x.dirs = append(x.dirs, dirTime{rel: rel, atime: hdr.AccessTime, mtime: hdr.ModTime})
	case tar.TypeReg, tar.TypeRegA, tar.TypeGNUSparse:
		if err := x.file(pfd, base, hdr, r); err != nil {
			return err
		}
	case tar.TypeSymlink:
		if err := unix.Symlinkat(hdr.Linkname, pfd, base); err != nil {
			return fmt.Errorf("symlink: %w", err)
		}
	case tar.TypeLink:
		if err := x.hardlink(pfd, base, hdr.Linkname); err != nil {
			return err
		}
		x.written[rel] = true
		x.markParents(rel)
		return nil // a hardlink shares its target's metadata
	case tar.TypeChar, tar.TypeBlock, tar.TypeFifo:
		if hdr.Typeflag == tar.TypeChar && hdr.Devmajor == 0 && hdr.Devminor == 0 {
			return fmt.Errorf("a 0/0 character device is an overlayfs whiteout, not content: %w", ErrRefused)
		}
		kind := map[byte]uint32{tar.TypeChar: unix.S_IFCHR, tar.TypeBlock: unix.S_IFBLK, tar.TypeFifo: unix.S_IFIFO}[hdr.Typeflag]
		dev := unix.Mkdev(uint32(hdr.Devmajor), uint32(hdr.Devminor))
		if err := unix.Mknodat(pfd, base, kind|0o600, int(dev)); err != nil {
			return fmt.Errorf("mknod: %w", err)
		}
	default:
		return fmt.Errorf("tar entry type %q: %w", hdr.Typeflag, ErrRefused)
	}
	x.written[rel] = true
	x.markParents(rel)
	if err := unix.Fchownat(pfd, base, hdr.Uid, hdr.Gid, unix.AT_SYMLINK_NOFOLLOW); err != nil {
		return fmt.Errorf("chown: %w", err)
	}
	if hdr.Typeflag != tar.TypeSymlink {
		// After chown, which clears setuid and setgid bits.
		if err := unix.Fchmodat(pfd, base, mode, 0); err != nil {
			return fmt.Errorf("chmod: %w", err)
		}
	}
	if err := x.xattrs(pfd, base, hdr); err != nil {
		return err
	}
	if hdr.Typeflag != tar.TypeDir {
		return utimes(pfd, base, hdr.AccessTime, hdr.ModTime)
	}
	return nil
}

// parent opens the directory rel of root, making each missing component, and replacing one
// that is not a directory, with no symlink followed. The descriptor stays cached: the caller
// must not close it.
func (x *extractor) parent(rel string) (int, error) {
	if rel == "" {
		return x.rootfd, nil
	}
	if rel == x.cachedRel {
		return x.cachedFd, nil
	}
	x.dropCache()
	fd, err := x.openBeneath(rel)
	if err != nil {
		// Make the path a directory all the way down, then open it again.
		cur := ""
		for _, part := range strings.Split(rel, "/") {
			pfd, perr := x.parentFd(cur)
			if perr != nil {
				return -1, perr
			}
			next := path.Join(cur, part)
			var st unix.Stat_t
			serr := unix.Fstatat(pfd, part, &st, unix.AT_SYMLINK_NOFOLLOW)
			switch {
			case serr == nil && st.Mode&unix.S_IFMT == unix.S_IFDIR:
			case serr == nil:
				if err := x.remove(next); err != nil {
					closeUnlessRoot(x, pfd)
					return -1, err
				}
				if err := unix.Mkdirat(pfd, part, 0o755); err != nil {
					closeUnlessRoot(x, pfd)
					return -1, fmt.Errorf("make parent %s: %w", next, err)
				}
				if err := x.replacedByDir(pfd, part); err != nil {
					closeUnlessRoot(x, pfd)
					return -1, err
				}
			default:
				if err := unix.Mkdirat(pfd, part, 0o755); err != nil && !errors.Is(err, unix.EEXIST) {
					closeUnlessRoot(x, pfd)
					return -1, fmt.Errorf("make parent %s: %w", next, err)
				}
			}
			closeUnlessRoot(x, pfd)
			cur = next
		}
		if fd, err = x.openBeneath(rel); err != nil {
			return -1, fmt.Errorf("open parent %s: %w", rel, err)
		}
	}
	x.cachedRel, x.cachedFd = rel, fd
	return fd, nil
}

// parentFd opens rel (a directory known to exist) uncached; the root for "".
func (x *extractor) parentFd(rel string) (int, error) {
	if rel == "" {
		return x.rootfd, nil
	}
	fd, err := x.openBeneath(rel)
	if err != nil {
		return -1, fmt.Errorf("open %s: %w", rel, err)
	}
	return fd, nil
}

func closeUnlessRoot(x *extractor, fd int) {
	if fd != x.rootfd {
		unix.Close(fd)
	}
}

func (x *extractor) openBeneath(rel string) (int, error) {
	return unix.Openat2(x.rootfd, rel, &unix.OpenHow{
		Flags:   unix.O_PATH | unix.O_DIRECTORY | unix.O_CLOEXEC,
		Resolve: unix.RESOLVE_BENEATH | unix.RESOLVE_NO_SYMLINKS | unix.RESOLVE_NO_MAGICLINKS,
	})
}

// remove deletes rel and what is below it. Its parents were checked to be plain directories
// (no symlink in the path), so the path cannot lead out of root.
func (x *extractor) remove(rel string) error {
	if rel == "" {
		return fmt.Errorf("remove the root: %w", ErrRefused)
	}
	if x.cachedRel == rel || strings.HasPrefix(x.cachedRel, rel+"/") {
		x.dropCache()
	}
	if err := os.RemoveAll(filepath.Join(x.root, filepath.FromSlash(rel))); err != nil {
		return fmt.Errorf("replace %s: %w", rel, err)
	}
	return nil
}

func (x *extractor) whiteout(dir, base string) error {
	name := strings.TrimPrefix(base, whiteoutPrefix)
	switch {
	case base == opaqueMarker:
	case name == "" || name == "." || name == ".." || strings.HasPrefix(name, ".wh."):
		return fmt.Errorf("degenerate whiteout %q: %w", base, ErrRefused)
	}
	// As any entry's parent: made when missing, replaced when not a directory, which is what
	// overlayfs shows for the upper layer's directory that holds the whiteout.
	pfd, err := x.parent(dir)
	if err != nil {
		return err
	}
	x.markParents(path.Join(dir, base))
	if base == opaqueMarker {
		if x.opts.Format == OverlayUpper {
			return setXattrAt(pfd, "", "trusted.overlay.opaque", []byte("y"))
		}
		return x.removeLower(dir, pfd)
	}
	target := path.Join(dir, name)
	if x.written[target] {
		// Whiteouts hide lower layers' files, not this layer's: of a directory this layer
		// made, what the lower layers hold below it, whichever comes first in the layer.
		var st unix.Stat_t
		if unix.Fstatat(pfd, name, &st, unix.AT_SYMLINK_NOFOLLOW) != nil || st.Mode&unix.S_IFMT != unix.S_IFDIR {
			return nil
		}
		tfd, err := x.parent(target)
		if err != nil {
			return err
		}
		if x.opts.Format == OverlayUpper {
			return setXattrAt(tfd, "", "trusted.overlay.opaque", []byte("y"))
		}
		return x.removeLower(target, tfd)
	}
	if x.opts.Format == OverlayUpper {
		if err := unix.Mknodat(pfd, name, unix.S_IFCHR, 0); err != nil && !errors.Is(err, unix.EEXIST) {
			return fmt.Errorf("whiteout %s: %w", target, err)
		}
		if x.opts.OnWhiteout != nil {
			x.opts.OnWhiteout(target)
		}
		return nil
	}
	var st unix.Stat_t
	if unix.Fstatat(pfd, name, &st, unix.AT_SYMLINK_NOFOLLOW) != nil {
		return nil
	}
	return x.remove(target)
}

// replacedByDir is told that base in pfd, which this layer had made something else (a file, a
// symlink, a whiteout), is now a directory: nothing of the lower layers shows below it. In an
// overlayfs snapshot that takes an opaque directory (overlayfs's own record of a directory
// made where another entry was removed); in a tree the lower layers' entries went with the
// one replaced.
func (x *extractor) replacedByDir(pfd int, base string) error {
	if x.opts.Format != OverlayUpper {
		return nil
	}
	return setXattrAt(pfd, base, "trusted.overlay.opaque", []byte("y"))
}

// removeLower empties dir of what lower layers put there (an opaque whiteout, Dir format).
func (x *extractor) removeLower(dir string, pfd int) error {
	fd, err := unix.Openat(pfd, ".", unix.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return fmt.Errorf("opaque %s: %w", dir, err)
	}
	f := os.NewFile(uintptr(fd), dir)
	names, err := f.Readdirnames(-1)
	f.Close()
	if err != nil {
		return fmt.Errorf("opaque %s: %w", dir, err)
	}
	slices.Sort(names)
	for _, n := range names {
		if p := path.Join(dir, n); !x.written[p] {
			if err := x.remove(p); err != nil {
				return err
			}
		}
	}
	return nil
}

func (x *extractor) file(pfd int, base string, hdr *tar.Header, r io.Reader) error {
	fd, err := unix.Openat(pfd, base, unix.O_WRONLY|unix.O_CREAT|unix.O_EXCL|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0o600)
	if err != nil {
		return fmt.Errorf("create: %w", err)
	}
	f := os.NewFile(uintptr(fd), base)
	if err := writeSparse(f, io.LimitReader(r, hdr.Size), hdr.Size, x.buf); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

// holeBlock is the granularity of holes: a block of zeros this large is skipped, not written.
const holeBlock = 4096

// writeSparse copies size bytes of r into f, seeking over blocks of zeros so that they stay
// holes (a sparse file of 100 GiB with one data byte takes one block on disk).
func writeSparse(f *os.File, r io.Reader, size int64, buf []byte) error {
	var off int64
	pending := false // the file ends in a hole not yet made real by a truncate
	for off < size {
		n, err := io.ReadFull(r, buf[:min(int64(len(buf)), size-off)])
		if n > 0 {
			// Runs of data blocks go out in one write, runs of zero blocks in one seek.
			chunk := buf[:n]
			for len(chunk) > 0 {
				zero := isZero(chunk[:min(len(chunk), holeBlock)])
				run := 0
				for run < len(chunk) && isZero(chunk[run:min(len(chunk), run+holeBlock)]) == zero {
					run = min(len(chunk), run+holeBlock)
				}
				if zero {
					if _, err := f.Seek(int64(run), io.SeekCurrent); err != nil {
						return err
					}
				} else if _, err := f.Write(chunk[:run]); err != nil {
					return err
				}
				pending = zero
				chunk = chunk[run:]
			}
			off += int64(n)
		}
		if err != nil {
			return fmt.Errorf("read content: %w", err)
		}
	}
	if pending {
		return f.Truncate(size)
	}
	return nil
}

var zeros = make([]byte, holeBlock)

func isZero(b []byte) bool { return bytes.Equal(b, zeros[:len(b)]) }

func (x *extractor) hardlink(pfd int, base, linkname string) error {
	target := clean(linkname)
	if target == "" {
		return fmt.Errorf("hardlink to the root: %w", ErrRefused)
	}
	tdir, tbase := path.Split(target)
	tdir = strings.TrimSuffix(tdir, "/")
	tfd := x.rootfd
	if tdir != "" {
		fd, err := x.openBeneath(tdir)
		if err != nil {
			return fmt.Errorf("hardlink to %s: the link points outside the root or at nothing: %w", linkname, ErrRefused)
		}
		defer unix.Close(fd)
		tfd = fd
	}
	if !x.written[target] {
		// A link into a lower layer works on a tree the layers are applied to in turn, but
		// not on the layer's own snapshot (overlayfs stacks those): refused both ways, as
		// the image-spec allows ("extracting a layer with hardlink references to files
		// outside of the layer may fail").
		return fmt.Errorf("hardlink to %s, which is not a file of this layer (a layer's hardlinks name its own files): %w", linkname, ErrRefused)
	}
	var st unix.Stat_t
	if err := unix.Fstatat(tfd, tbase, &st, unix.AT_SYMLINK_NOFOLLOW); err != nil {
		return fmt.Errorf("hardlink to %s: no such file in the layer's root: %w", linkname, ErrRefused)
	}
	if st.Mode&unix.S_IFMT == unix.S_IFDIR {
		return fmt.Errorf("hardlink to %s, a directory: %w", linkname, ErrRefused)
	}
	if err := unix.Linkat(tfd, tbase, pfd, base, 0); err != nil {
		return fmt.Errorf("hardlink to %s: %w", linkname, err)
	}
	return nil
}

// xattrs applies the entry's extended attributes, but never overlayfs's own (a layer could
// forge an opaque directory or a redirect) or SELinux labels (the writer drops them too).
func (x *extractor) xattrs(pfd int, base string, hdr *tar.Header) error {
	keys := make([]string, 0, len(hdr.PAXRecords))
	for k := range hdr.PAXRecords {
		if strings.HasPrefix(k, "SCHILY.xattr.") {
			keys = append(keys, k)
		}
	}
	slices.Sort(keys)
	for _, k := range keys {
		name := strings.TrimPrefix(k, "SCHILY.xattr.")
		if strings.HasPrefix(name, "trusted.overlay.") || name == "security.selinux" {
			continue
		}
		if hdr.Typeflag == tar.TypeSymlink {
			continue // Linux keeps only trusted and security xattrs on symlinks
		}
		if err := setXattrAt(pfd, base, name, []byte(hdr.PAXRecords[k])); err != nil {
			return err
		}
	}
	return nil
}

// setXattrAt sets an xattr on base in the directory pfd ("" for the directory itself) without
// following a symlink, through the descriptor's /proc path.
func setXattrAt(pfd int, base, name string, value []byte) error {
	p := fmt.Sprintf("/proc/self/fd/%d", pfd)
	var err error
	if base == "" {
		err = unix.Setxattr(p, name, value, 0) // the directory pfd itself, through its fd
	} else {
		err = unix.Lsetxattr(p+"/"+base, name, value, 0)
	}
	if err != nil {
		return fmt.Errorf("xattr %s: %w", name, err)
	}
	return nil
}

// setTimes dates the directory rel, if a later entry of the layer did not replace it.
func (x *extractor) setTimes(rel string, atime, mtime time.Time) error {
	dir, base := path.Split(rel)
	pfd := x.rootfd
	if dir = strings.TrimSuffix(dir, "/"); dir != "" {
		fd, err := x.openBeneath(dir)
		if err != nil {
			return nil
		}
		defer unix.Close(fd)
		pfd = fd
	}
	var st unix.Stat_t
	if unix.Fstatat(pfd, base, &st, unix.AT_SYMLINK_NOFOLLOW) != nil || st.Mode&unix.S_IFMT != unix.S_IFDIR {
		return nil
	}
	return utimes(pfd, base, atime, mtime)
}

// markParents records rel's parents as made by this layer: an opaque whiteout of a directory
// above must not remove what this layer put below it.
func (x *extractor) markParents(rel string) {
	for p := path.Dir(rel); p != "." && p != "/" && !x.written[p]; p = path.Dir(p) {
		x.written[p] = true
	}
}

func utimes(pfd int, base string, atime, mtime time.Time) error {
	if atime.IsZero() {
		atime = mtime
	}
	ts := []unix.Timespec{unix.NsecToTimespec(atime.UnixNano()), unix.NsecToTimespec(mtime.UnixNano())}
	if err := unix.UtimesNanoAt(pfd, base, ts, unix.AT_SYMLINK_NOFOLLOW); err != nil {
		return fmt.Errorf("set times: %w", err)
	}
	return nil
}
