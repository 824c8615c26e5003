package layer

import (
	"archive/tar"
	"bytes"
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"time"

	"github.com/serpent-os/serpent-oci/oci/xattr"

	"github.com/containerd/log"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"golang.org/x/sys/unix"
)

// DefaultSourceDateEpoch is the time layer mtimes are clamped to when the caller gives none:
// 2020-08-16, the day Serpent OS declared its stage2 bootstrap complete. It is a fixed date, not
// zero, because some tools refuse files dated 1970 (zip cannot store dates before 1980).
var DefaultSourceDateEpoch = time.Date(2020, 8, 16, 0, 0, 0, 0, time.UTC)

// Format says what kind of tree a layer is written from.
type Format int

const (
	// Dir is a plain directory: every entry is content. A name starting with ".wh." is an
	// error, since a layer could only read it back as a whiteout.
	Dir Format = iota
	// OverlayUpper is the upper directory of an overlayfs mount: 0/0 character devices and
	// trusted.overlay.whiteout files are whiteouts, and a directory with
	// trusted.overlay.opaque=y hides everything below it in the lower layers.
	OverlayUpper
)

// WriteOptions controls Write. The zero value writes a gzip layer of a plain directory with
// mtimes clamped to DefaultSourceDateEpoch.
type WriteOptions struct {
	// SourceDateEpoch clamps mtimes: a file newer than it is recorded at it.
	SourceDateEpoch time.Time
	Compression     Compression
	Format          Format
}

// Filled is o with its defaults: the epoch DefaultSourceDateEpoch when zero, always in UTC and
// whole seconds (what a tar header keeps), gzip compression when none. It is the one defaults
// step: whatever else records the epoch (an image's history and created time) takes it from
// here, so that the config and the files' mtimes never disagree.
func (o WriteOptions) Filled() WriteOptions {
	o.SourceDateEpoch = Epoch(o.SourceDateEpoch)
	if o.Compression == "" {
		o.Compression = Gzip
	}
	return o
}

// Epoch is t as a build and every image it makes use it: DefaultSourceDateEpoch when zero,
// in UTC, in whole seconds (what SOURCE_DATE_EPOCH and a tar header can say).
func Epoch(t time.Time) time.Time {
	if t.IsZero() {
		return DefaultSourceDateEpoch
	}
	return t.UTC().Truncate(time.Second)
}

// WriteResult describes a written layer's uncompressed content. The compressed digest is the
// caller's to take from the bytes it received.
type WriteResult struct {
	DiffID v1.Hash // sha256 of the uncompressed tar stream
	Size   int64   // length of the uncompressed tar stream
	Files  int     // entries written, whiteouts included
}

// Write walks root and writes it to w as a compressed tar layer. root itself is not an entry;
// its children are, named relative to it. On error, what reached w is incomplete and must be
// discarded.
func Write(ctx context.Context, root string, w io.Writer, opts WriteOptions) (res WriteResult, err error) {
	opts = opts.Filled()
	fi, err := os.Lstat(root)
	if err != nil {
		return res, fmt.Errorf("write layer: %w", err)
	}
	if !fi.IsDir() {
		return res, fmt.Errorf("write layer: %s is not a directory", root)
	}

	zw, err := compressor(w, opts.Compression)
	if err != nil {
		return res, fmt.Errorf("write layer: %w", err)
	}
	diff := sha256.New()
	counter := &countingWriter{w: io.MultiWriter(diff, zw)}
	tw := tar.NewWriter(counter)
	lw := &treeWriter{
		ctx:   ctx,
		opts:  opts,
		tw:    tw,
		links: map[inode]string{},
		buf:   make([]byte, 1<<20),
	}
	if err := lw.walkDir(root, ""); err != nil {
		_ = zw.Close()
		return res, err
	}
	if err := tw.Close(); err != nil {
		_ = zw.Close()
		return res, fmt.Errorf("write layer: finish tar: %w", err)
	}
	if err := zw.Close(); err != nil {
		return res, fmt.Errorf("write layer: finish %s: %w", opts.Compression, err)
	}
	res.DiffID = v1.Hash{Algorithm: "sha256", Hex: fmt.Sprintf("%x", diff.Sum(nil))}
	res.Size = counter.n
	res.Files = lw.files
	log.G(ctx).WithFields(log.Fields{"path": root, "files": res.Files, "bytes": res.Size}).Debug("layer written")
	return res, nil
}

type inode struct{ dev, ino uint64 }

type treeWriter struct {
	ctx   context.Context
	opts  WriteOptions
	tw    *tar.Writer
	links map[inode]string
	buf   []byte
	files int
}

const (
	whiteoutPrefix = ".wh."
	opaqueMarker   = ".wh..wh..opq"
)

// walkDir writes the children of dir (whose name in the layer is rel, "" for the root) in name
// order, recursing into directories as it meets them.
func (lw *treeWriter) walkDir(dir, rel string) error {
	names, err := readDirNames(dir)
	if err != nil {
		return fmt.Errorf("write layer: read directory %s: %w", dir, err)
	}
	for _, name := range names {
		if err := lw.ctx.Err(); err != nil {
			return err
		}
		if err := lw.writeEntry(filepath.Join(dir, name), pathJoin(rel, name)); err != nil {
			return err
		}
	}
	return nil
}

func (lw *treeWriter) writeEntry(path, name string) error {
	var st unix.Stat_t
	if err := unix.Lstat(path, &st); err != nil {
		return fmt.Errorf("write layer: lstat %s: %w", path, err)
	}
	base := filepath.Base(name)
	isWhiteout, err := lw.isWhiteout(path, &st)
	if err != nil {
		return err
	}
	if isWhiteout {
		return lw.writeWhiteout(pathJoin(parentOf(name), whiteoutPrefix+base))
	}
	if strings.HasPrefix(base, whiteoutPrefix) {
		return fmt.Errorf("write layer: %s: a file name starting with %q cannot be stored in a layer (it would read back as a whiteout)", path, whiteoutPrefix)
	}

	hdr := &tar.Header{
		Name:    name,
		Mode:    int64(st.Mode & 07777),
		Uid:     int(st.Uid),
		Gid:     int(st.Gid),
		ModTime: lw.clamp(time.Unix(st.Mtim.Unix())),
	}
	xattrs, opaque, err := lw.xattrs(path)
	if err != nil {
		return err
	}
	if len(xattrs) > 0 {
		hdr.PAXRecords = xattrs
	}

	switch st.Mode & unix.S_IFMT {
	case unix.S_IFDIR:
		hdr.Typeflag = tar.TypeDir
		hdr.Name += "/"
	case unix.S_IFREG:
		hdr.Typeflag = tar.TypeReg
		hdr.Size = st.Size
		if st.Nlink > 1 {
			key := inode{uint64(st.Dev), st.Ino}
			if first, ok := lw.links[key]; ok {
				hdr.Typeflag = tar.TypeLink
				hdr.Linkname = first
				hdr.Size = 0
				hdr.PAXRecords = nil // the first name carries the inode's xattrs
			} else {
				lw.links[key] = name
			}
		}
	case unix.S_IFLNK:
		target, err := os.Readlink(path)
		if err != nil {
			return fmt.Errorf("write layer: readlink %s: %w", path, err)
		}
		hdr.Typeflag = tar.TypeSymlink
		hdr.Linkname = target
	case unix.S_IFCHR, unix.S_IFBLK:
		hdr.Typeflag = tar.TypeChar
		if st.Mode&unix.S_IFMT == unix.S_IFBLK {
			hdr.Typeflag = tar.TypeBlock
		}
		hdr.Devmajor = int64(unix.Major(uint64(st.Rdev)))
		hdr.Devminor = int64(unix.Minor(uint64(st.Rdev)))
	case unix.S_IFIFO:
		hdr.Typeflag = tar.TypeFifo
	case unix.S_IFSOCK:
		log.G(lw.ctx).WithField("path", path).Warn("socket left out of layer: tar cannot hold sockets")
		return nil
	default:
		return fmt.Errorf("write layer: %s: unknown file type %#o", path, st.Mode&unix.S_IFMT)
	}

	if err := lw.tw.WriteHeader(hdr); err != nil {
		return fmt.Errorf("write layer: header for %s: %w", path, err)
	}
	lw.files++
	switch hdr.Typeflag {
	case tar.TypeReg:
		if err := lw.copyFile(path, hdr.Size); err != nil {
			return err
		}
	case tar.TypeDir:
		if opaque {
			if err := lw.writeWhiteout(pathJoin(name, opaqueMarker)); err != nil {
				return err
			}
		}
		return lw.walkDir(path, name)
	}
	return nil
}

func (lw *treeWriter) copyFile(path string, size int64) (err error) {
	f, err := os.Open(path)
	if err != nil {
		return fmt.Errorf("write layer: %w", err)
	}
	defer func() {
		if cerr := f.Close(); cerr != nil && err == nil {
			err = fmt.Errorf("write layer: close %s: %w", path, cerr)
		}
	}()
	n, err := io.CopyBuffer(lw.tw, io.LimitReader(f, size), lw.buf)
	if err != nil {
		return fmt.Errorf("write layer: copy %s: %w", path, err)
	}
	if n != size {
		return fmt.Errorf("write layer: %s shrank from %d to %d bytes while it was read", path, size, n)
	}
	return nil
}

// writeWhiteout writes an OCI whiteout entry. Its header carries nothing but the name, so that
// a whiteout is the same bytes whatever the file it hides looked like.
func (lw *treeWriter) writeWhiteout(name string) error {
	hdr := &tar.Header{
		Typeflag: tar.TypeReg,
		Name:     name,
		ModTime:  lw.opts.SourceDateEpoch,
	}
	if err := lw.tw.WriteHeader(hdr); err != nil {
		return fmt.Errorf("write layer: whiteout %s: %w", name, err)
	}
	lw.files++
	return nil
}

func (lw *treeWriter) clamp(t time.Time) time.Time {
	t = t.UTC().Truncate(time.Second)
	if t.After(lw.opts.SourceDateEpoch) {
		return lw.opts.SourceDateEpoch
	}
	return t
}

// isWhiteout reports whether path is an overlayfs whiteout; in a plain directory nothing is.
func (lw *treeWriter) isWhiteout(path string, st *unix.Stat_t) (bool, error) {
	if lw.opts.Format != OverlayUpper {
		return false, nil
	}
	switch st.Mode & unix.S_IFMT {
	case unix.S_IFCHR:
		return st.Rdev == 0, nil
	case unix.S_IFREG:
		if st.Size != 0 {
			return false, nil
		}
		_, err := unix.Lgetxattr(path, "trusted.overlay.whiteout", nil)
		if err == nil {
			return true, nil
		}
		if errors.Is(err, unix.ENODATA) || errors.Is(err, unix.EOPNOTSUPP) {
			return false, nil
		}
		return false, fmt.Errorf("write layer: read xattr of %s: %w", path, err)
	}
	return false, nil
}

// droppedXattr reports whether an extended attribute stays out of layers: SELinux labels are
// the host's policy, not the image's, and overlay.* attributes are overlayfs's own bookkeeping
// (the opaque marker becomes an OCI whiteout instead).
func droppedXattr(name string) bool {
	return name == "security.selinux" ||
		strings.HasPrefix(name, "trusted.overlay.") ||
		strings.HasPrefix(name, "user.overlay.")
}

// xattrs returns the PAX records for path's extended attributes and whether path is an opaque
// overlay directory.
func (lw *treeWriter) xattrs(path string) (map[string]string, bool, error) {
	names, err := xattr.List(path)
	if err != nil {
		return nil, false, fmt.Errorf("write layer: list xattrs of %s: %w", path, err)
	}
	var records map[string]string
	opaque := false
	for _, name := range names {
		value, err := xattr.Get(path, name)
		if err != nil {
			if errors.Is(err, unix.ENODATA) {
				continue // removed between list and get
			}
			return nil, false, fmt.Errorf("write layer: read xattr %s of %s: %w", name, path, err)
		}
		if name == "trusted.overlay.opaque" && lw.opts.Format == OverlayUpper {
			opaque = bytes.Equal(value, []byte("y"))
		}
		if droppedXattr(name) {
			continue
		}
		if len(value) == 0 {
			// PAX cannot tell an empty value from a deleted record.
			log.G(lw.ctx).WithFields(log.Fields{"path": path, "xattr": name}).Warn("empty xattr left out of layer")
			continue
		}
		if records == nil {
			records = map[string]string{}
		}
		records["SCHILY.xattr."+name] = string(value)
	}
	return records, opaque, nil
}

// readDirNames lists dir's entries sorted by byte order, the order `tar --sort=name` uses.
func readDirNames(dir string) ([]string, error) {
	f, err := os.Open(dir)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	names, err := f.Readdirnames(-1)
	if err != nil {
		return nil, err
	}
	sort.Strings(names)
	return names, nil
}

func pathJoin(dir, name string) string {
	if dir == "" {
		return name
	}
	return dir + "/" + name
}

func parentOf(name string) string {
	if i := strings.LastIndexByte(name, '/'); i >= 0 {
		return name[:i]
	}
	return ""
}

type countingWriter struct {
	w io.Writer
	n int64
}

func (c *countingWriter) Write(p []byte) (int, error) {
	n, err := c.w.Write(p)
	c.n += int64(n)
	return n, err
}
