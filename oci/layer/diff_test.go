package layer

import (
	"archive/tar"
	"bytes"
	"strings"
	"testing"
	"time"
)

type tarFile struct {
	name, body, link string
	mode             int64
	uid              int
}

func tarOf(t *testing.T, files ...tarFile) *bytes.Buffer {
	t.Helper()
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	for _, f := range files {
		h := &tar.Header{Name: f.name, Mode: f.mode, Uid: f.uid, Size: int64(len(f.body)), ModTime: time.Unix(1597536000, 0), Typeflag: tar.TypeReg}
		if f.link != "" {
			h.Typeflag, h.Linkname, h.Size = tar.TypeSymlink, f.link, 0
		}
		if err := tw.WriteHeader(h); err != nil {
			t.Fatal(err)
		}
		if f.link == "" {
			tw.Write([]byte(f.body))
		}
	}
	tw.Close()
	return &buf
}

func TestDiff(t *testing.T) {
	elfA := "\x7fELF" + strings.Repeat("x", 40) + "A" + strings.Repeat("y", 20)
	elfB := "\x7fELF" + strings.Repeat("x", 40) + "B" + strings.Repeat("y", 20)
	a := tarOf(t,
		tarFile{name: "same", body: "same\n", mode: 0o644},
		tarFile{name: "etc/built-at", body: "built 2026-11-25 15:04:05 here\n", mode: 0o644},
		tarFile{name: "counter", body: "n=1234\n", mode: 0o644},
		tarFile{name: "bin/tool", body: elfA, mode: 0o755},
		tarFile{name: "notes", body: "one\ntwo\n", mode: 0o644},
		tarFile{name: "mode", body: "m", mode: 0o644},
		tarFile{name: "owner", body: "o", mode: 0o644, uid: 0},
		tarFile{name: "link", link: "a"},
		tarFile{name: "gone", body: "g", mode: 0o644},
	)
	b := tarOf(t,
		tarFile{name: "same", body: "same\n", mode: 0o644},
		tarFile{name: "etc/built-at", body: "built 2026-11-25 15:05:59 here\n", mode: 0o644},
		tarFile{name: "counter", body: "n=1299\n", mode: 0o644},
		tarFile{name: "bin/tool", body: elfB, mode: 0o755},
		tarFile{name: "notes", body: "one\nthree\n", mode: 0o644},
		tarFile{name: "mode", body: "m", mode: 0o600},
		tarFile{name: "owner", body: "o", mode: 0o644, uid: 1000},
		tarFile{name: "link", link: "b"},
		tarFile{name: "new", body: "n", mode: 0o644},
	)
	diffs, err := Diff(a, b)
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, d := range diffs {
		got = append(got, d.String())
	}
	want := []string{
		`bin/tool: content (ELF file, same size: 1 bytes differ, the first at 0x2c)`,
		`counter: content (differs only in digits (2 bytes from byte 4): a counter or a time?)`,
		`etc/built-at: content (differs only in an embedded timestamp: "uilt 2026-11-25 15:04:05 here\n"/"uilt 2026-11-25 15:05:59 here\n" at byte 21)`,
		`gone: only in A`,
		`link: link target "a"/"b"`,
		`mode: mode 0644/0600`,
		`new: only in B`,
		`notes: content (line 2: "two"/"three")`,
		`owner: owner 0:0/1000:0`,
	}
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Errorf("diff:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
}
