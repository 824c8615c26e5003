package builder

import (
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/serpent-os/serpent-oci/oci/testenv"
)

func TestResolveUser(t *testing.T) {
	root := t.TempDir()
	if err := os.MkdirAll(filepath.Join(root, "etc"), 0o755); err != nil {
		t.Fatal(err)
	}
	write := func(name, content string) {
		t.Helper()
		if err := os.WriteFile(filepath.Join(root, "etc", name), []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	write("passwd", "root:x:0:0:root:/root:/bin/sh\n# a comment\napp:x:1000:1001::/srv:/bin/sh\nbroken:x:abc:1\n")
	write("group", "root:x:0:\nstaff:x:50:app\n")
	tests := []struct {
		user     string
		uid, gid uint32
		wantErr  string
	}{
		{user: "", uid: 0, gid: 0},
		{user: "app", uid: 1000, gid: 1001},
		{user: "1000", uid: 1000, gid: 1001}, // a uid with an entry takes its group
		{user: "4242", uid: 4242, gid: 0},    // one without runs with gid 0
		{user: "app:staff", uid: 1000, gid: 50},
		{user: "app:7", uid: 1000, gid: 7},
		{user: "0:staff", uid: 0, gid: 50},
		{user: "nobody", wantErr: "no such user"},
		{user: "app:wheel", wantErr: "no such group"},
		{user: "broken", wantErr: "malformed entry"},
		{user: ":5", wantErr: "want USER[:GROUP]"},
		{user: "app:", wantErr: "want USER[:GROUP]"},
		{user: "4294967295", wantErr: "no such user"}, // (uid_t)-1 is no uid
	}
	for _, tt := range tests {
		uid, gid, err := ResolveUser(root, tt.user)
		if tt.wantErr != "" {
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Errorf("ResolveUser(%q) = %d:%d, %v; want an error with %q", tt.user, uid, gid, err, tt.wantErr)
			}
			continue
		}
		if err != nil || uid != tt.uid || gid != tt.gid {
			t.Errorf("ResolveUser(%q) = %d:%d, %v; want %d:%d", tt.user, uid, gid, err, tt.uid, tt.gid)
		}
	}
}

// TestResolveUserStaysInTheRoot: an image whose /etc/passwd is a symlink out of its root does
// not get the host's accounts read for it.
func TestResolveUserStaysInTheRoot(t *testing.T) {
	root := t.TempDir()
	if err := os.MkdirAll(filepath.Join(root, "etc"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink("/etc/passwd", filepath.Join(root, "etc", "passwd")); err != nil {
		t.Fatal(err)
	}
	if _, _, err := ResolveUser(root, "root"); err == nil {
		t.Fatal("a /etc/passwd that links to the host's was read")
	}
}

// TestResolveUserReadsOnlyRegularFiles is issue 33's third hole: an image whose /etc/passwd is
// a FIFO hung `run -u` (SIGTERM ignored), and one whose /etc/passwd is a character device had
// that device opened and read on the host.
func TestResolveUserReadsOnlyRegularFiles(t *testing.T) {
	for _, tc := range []struct {
		name, file string
		make       func(path string) error
		want       string
	}{
		{"passwd is a FIFO", "passwd", func(p string) error { return syscall.Mkfifo(p, 0o644) }, "/etc/passwd: is a fifo"},
		{"group is a FIFO", "group", func(p string) error { return syscall.Mkfifo(p, 0o644) }, "/etc/group: is a fifo"},
		{"passwd is a directory", "passwd", func(p string) error { return os.Mkdir(p, 0o755) }, "/etc/passwd: is a directory"},
		{"passwd is /dev/zero", "passwd", func(p string) error {
			testenv.RequireRoot(t)
			return syscall.Mknod(p, syscall.S_IFCHR|0o644, int(unix.Mkdev(1, 5)))
		}, "/etc/passwd: is a device"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			root := t.TempDir()
			if err := os.MkdirAll(filepath.Join(root, "etc"), 0o755); err != nil {
				t.Fatal(err)
			}
			if tc.file == "group" {
				if err := os.WriteFile(filepath.Join(root, "etc", "passwd"), []byte("u:x:5:5::/:/bin/sh\n"), 0o644); err != nil {
					t.Fatal(err)
				}
			}
			if err := tc.make(filepath.Join(root, "etc", tc.file)); err != nil {
				t.Fatal(err)
			}
			done := make(chan error, 1)
			go func() { _, _, err := ResolveUser(root, "u:wheel"); done <- err }()
			select {
			case err := <-done:
				if err == nil || !strings.Contains(err.Error(), tc.want) {
					t.Fatalf("ResolveUser: %v, want an error containing %q", err, tc.want)
				}
			case <-time.After(10 * time.Second):
				t.Fatal("ResolveUser hangs on the image's account file")
			}
		})
	}
}
