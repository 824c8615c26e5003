package testenv

import (
	"bytes"
	"crypto/sha256"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/serpent-os/serpent-oci/oci/xattr"

	"golang.org/x/sys/unix"
)

// Old is a time before every source date epoch the tests use: mtimes this old survive clamping.
var Old = time.Date(2019, 1, 2, 3, 4, 5, 0, time.UTC)

// Fixture fills dir with one of every kind of entry a layer can hold that needs no privilege:
// directories with unusual modes, regular files (one empty, one over 64 KiB), a hardlink, a
// relative and an absolute symlink, a fifo and a name longer than USTAR holds. etc/config is
// dated Old.
func Fixture(t testing.TB, dir string) {
	t.Helper()
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	must(os.MkdirAll(filepath.Join(dir, "usr/bin"), 0o755))
	must(os.MkdirAll(filepath.Join(dir, "etc"), 0o755))
	must(os.MkdirAll(filepath.Join(dir, "a.dir"), 0o700))
	must(os.WriteFile(filepath.Join(dir, "usr/bin/tool"), []byte("#!/bin/sh\necho tool\n"), 0o755))
	must(os.WriteFile(filepath.Join(dir, "etc/config"), []byte("key=value\n"), 0o644))
	must(os.WriteFile(filepath.Join(dir, "a.dir/z"), bytes.Repeat([]byte("z"), 70000), 0o600))
	must(os.WriteFile(filepath.Join(dir, "a"), nil, 0o755))
	must(unix.Chmod(filepath.Join(dir, "a"), 0o4755))
	must(os.Link(filepath.Join(dir, "usr/bin/tool"), filepath.Join(dir, "usr/bin/tool-link")))
	must(os.Symlink("usr/bin", filepath.Join(dir, "bin")))
	must(os.Symlink("/etc/config", filepath.Join(dir, "etc/abs-link")))
	must(unix.Mkfifo(filepath.Join(dir, "etc/fifo"), 0o644))
	long := filepath.Join(dir, "usr", strings.Repeat("long-name-", 12))
	must(os.WriteFile(long, []byte("a name longer than USTAR holds\n"), 0o644))
	must(os.Chtimes(filepath.Join(dir, "etc/config"), Old, Old))
}

// PrivilegedFixture is Fixture plus what needs root: every entry owned by 0:0 but etc/config
// (1000:100), the setuid bit on /a again (chown clears it), a character and a block device, a
// file capability on usr/bin/tool and a user xattr on etc/config.
func PrivilegedFixture(t testing.TB, dir string) {
	t.Helper()
	RequireRoot(t)
	Fixture(t, dir)
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	must(filepath.Walk(dir, func(p string, _ os.FileInfo, err error) error {
		if err != nil {
			return err
		}
		return os.Lchown(p, 0, 0)
	}))
	must(os.Lchown(filepath.Join(dir, "etc/config"), 1000, 100))
	must(unix.Chmod(filepath.Join(dir, "a"), 0o4755))
	must(unix.Mknod(filepath.Join(dir, "etc/null"), unix.S_IFCHR|0o666, int(unix.Mkdev(1, 3))))
	must(unix.Mknod(filepath.Join(dir, "etc/loop0"), unix.S_IFBLK|0o660, int(unix.Mkdev(7, 0))))
	must(unix.Chmod(filepath.Join(dir, "etc/null"), 0o666))
	// cap_net_raw+ep as setcap writes it.
	capability := []byte{0x01, 0x00, 0x00, 0x02, 0x00, 0x20, 0x00, 0x00, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0}
	must(unix.Lsetxattr(filepath.Join(dir, "usr/bin/tool"), "security.capability", capability, 0))
	must(unix.Lsetxattr(filepath.Join(dir, "etc/config"), "user.note", []byte("kept"), 0))
}

// Tree describes every entry below dir (type, mode, owner, content digest, link target,
// device number, xattrs, and which entries share an inode), without times: two trees that
// Tree finds equal hold the same files.
func Tree(t testing.TB, dir string) map[string]string {
	t.Helper()
	out := map[string]string{}
	inodes := map[uint64]string{}
	err := filepath.Walk(dir, func(p string, fi os.FileInfo, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(dir, p)
		if rel == "." {
			return nil
		}
		var st unix.Stat_t
		if err := unix.Lstat(p, &st); err != nil {
			return err
		}
		desc := fmt.Sprintf("%s %o %d:%d", fi.Mode().Type(), st.Mode&07777, st.Uid, st.Gid)
		switch st.Mode & unix.S_IFMT {
		case unix.S_IFREG:
			b, err := os.ReadFile(p)
			if err != nil {
				return err
			}
			desc += fmt.Sprintf(" sha256:%x", sha256.Sum256(b))
			if st.Nlink > 1 {
				if first, ok := inodes[st.Ino]; ok {
					desc += " linked-to " + first
				} else {
					inodes[st.Ino] = rel
				}
			}
		case unix.S_IFLNK:
			target, err := os.Readlink(p)
			if err != nil {
				return err
			}
			desc += " -> " + target
		case unix.S_IFCHR, unix.S_IFBLK:
			desc += fmt.Sprintf(" dev %d,%d", unix.Major(st.Rdev), unix.Minor(st.Rdev))
		}
		desc += xattrs(p)
		out[rel] = desc
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

func xattrs(p string) string {
	all, err := xattr.All(p, nil)
	if err != nil || len(all) == 0 {
		return ""
	}
	var parts []string
	for name, v := range all {
		parts = append(parts, fmt.Sprintf("%s=%x", name, v))
	}
	sort.Strings(parts)
	return " xattrs[" + strings.Join(parts, " ") + "]"
}

// DiffTrees returns a line for every path where a and b (from Tree) differ.
func DiffTrees(a, b map[string]string) []string {
	var diff []string
	for k, v := range a {
		if w, ok := b[k]; !ok {
			diff = append(diff, "only in first: "+k+" "+v)
		} else if w != v {
			diff = append(diff, "differs: "+k+": "+v+" vs "+w)
		}
	}
	for k, v := range b {
		if _, ok := a[k]; !ok {
			diff = append(diff, "only in second: "+k+" "+v)
		}
	}
	sort.Strings(diff)
	return diff
}

// ShiftNewTimes moves by d the access and modification times of everything under dir (dir
// too, symlinks themselves) modified at or after since: a tree made "later", without waiting
// for the clock, whose deliberately dated files (a fixture's) keep their dates.
func ShiftNewTimes(t testing.TB, dir string, since time.Time, d time.Duration) {
	t.Helper()
	err := filepath.WalkDir(dir, func(p string, _ fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		var st unix.Stat_t
		if err := unix.Lstat(p, &st); err != nil {
			return err
		}
		mt := time.Unix(st.Mtim.Unix())
		if mt.Before(since) {
			return nil
		}
		at := time.Unix(st.Atim.Unix()).Add(d)
		ts := []unix.Timespec{unix.NsecToTimespec(at.UnixNano()), unix.NsecToTimespec(mt.Add(d).UnixNano())}
		return unix.UtimesNanoAt(unix.AT_FDCWD, p, ts, unix.AT_SYMLINK_NOFOLLOW)
	})
	if err != nil {
		t.Fatalf("shift the times of %s: %v", dir, err)
	}
}
