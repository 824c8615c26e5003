package layer

import (
	"archive/tar"
	"bytes"
	"crypto/sha256"
	"fmt"
	"io"
	"regexp"
	"slices"
	"strings"
)

// Difference is one path whose entry differs between two layers.
type Difference struct {
	Path string
	What []string // what differs: "only in A", "only in B", "type", "content", "mode", "owner", "link target", "mtime", "xattrs"
	Hint string   // for content: how, where it can be told
}

func (d Difference) String() string {
	s := d.Path + ": " + strings.Join(d.What, ", ")
	if d.Hint != "" {
		s += " (" + d.Hint + ")"
	}
	return s
}

// maxHintFile bounds the content kept of a file to explain how it differs.
const maxHintFile = 16 << 20

type layerEntry struct {
	hdr     tar.Header
	digest  [32]byte
	content []byte // up to maxHintFile
}

func readLayer(r io.Reader) (map[string]*layerEntry, error) {
	out := map[string]*layerEntry{}
	tr := tar.NewReader(r)
	for {
		hdr, err := tr.Next()
		if err == io.EOF {
			return out, nil
		}
		if err != nil {
			return nil, err
		}
		e := &layerEntry{hdr: *hdr}
		h := sha256.New()
		var keep bytes.Buffer
		w := io.Writer(h)
		if hdr.Size <= maxHintFile {
			w = io.MultiWriter(h, &keep)
		}
		if _, err := io.Copy(w, tr); err != nil {
			return nil, err
		}
		copy(e.digest[:], h.Sum(nil))
		e.content = keep.Bytes()
		out[strings.TrimSuffix(strings.TrimPrefix(hdr.Name, "./"), "/")] = e
	}
}

// Diff compares two uncompressed layer tar streams layerEntry by layerEntry and lists the paths that
// differ, in name order, with a hint of how where the content differs (only in what looks
// like an embedded timestamp, or where in an ELF file or a text).
func Diff(a, b io.Reader) ([]Difference, error) {
	ea, err := readLayer(a)
	if err != nil {
		return nil, fmt.Errorf("read layer A: %w", err)
	}
	eb, err := readLayer(b)
	if err != nil {
		return nil, fmt.Errorf("read layer B: %w", err)
	}
	names := map[string]bool{}
	for n := range ea {
		names[n] = true
	}
	for n := range eb {
		names[n] = true
	}
	var out []Difference
	for _, n := range slices.Sorted(func(yield func(string) bool) {
		for k := range names {
			if !yield(k) {
				return
			}
		}
	}) {
		x, y := ea[n], eb[n]
		switch {
		case y == nil:
			out = append(out, Difference{Path: n, What: []string{"only in A"}})
			continue
		case x == nil:
			out = append(out, Difference{Path: n, What: []string{"only in B"}})
			continue
		}
		d := Difference{Path: n}
		hx, hy := x.hdr, y.hdr
		if hx.Typeflag != hy.Typeflag {
			d.What = append(d.What, "type")
		}
		if x.digest != y.digest {
			d.What = append(d.What, "content")
			d.Hint = contentHint(x, y)
		}
		if hx.Mode != hy.Mode {
			d.What = append(d.What, fmt.Sprintf("mode %04o/%04o", hx.Mode, hy.Mode))
		}
		if hx.Uid != hy.Uid || hx.Gid != hy.Gid {
			d.What = append(d.What, fmt.Sprintf("owner %d:%d/%d:%d", hx.Uid, hx.Gid, hy.Uid, hy.Gid))
		}
		if hx.Linkname != hy.Linkname {
			d.What = append(d.What, fmt.Sprintf("link target %q/%q", hx.Linkname, hy.Linkname))
		}
		if !hx.ModTime.Equal(hy.ModTime) {
			d.What = append(d.What, "mtime")
		}
		if fmt.Sprint(hx.PAXRecords) != fmt.Sprint(hy.PAXRecords) {
			d.What = append(d.What, "xattrs or PAX records")
		}
		if len(d.What) > 0 {
			out = append(out, d)
		}
	}
	return out, nil
}

var timestampRE = regexp.MustCompile(`\d{4}-\d{2}-\d{2}|\d{2}:\d{2}:\d{2}|\b(Jan|Feb|Mar|Apr|May|Jun|Jul|Aug|Sep|Oct|Nov|Dec) +\d{1,2}\b|\b1[5-9]\d{8}\b`)

// contentHint says how two contents differ.
func contentHint(x, y *layerEntry) string {
	a, b := x.content, y.content
	if int64(len(a)) != x.hdr.Size || int64(len(b)) != y.hdr.Size {
		return fmt.Sprintf("%d and %d bytes", x.hdr.Size, y.hdr.Size)
	}
	elf := bytes.HasPrefix(a, []byte("\x7fELF"))
	if len(a) == len(b) {
		var n, first int = 0, -1
		digitsOnly := true
		for i := range a {
			if a[i] != b[i] {
				n++
				if first < 0 {
					first = i
				}
				if !isTimeByte(a[i]) || !isTimeByte(b[i]) {
					digitsOnly = false
				}
			}
		}
		if digitsOnly && (timestampRE.Match(around(a, first)) || timestampRE.Match(around(b, first))) {
			return fmt.Sprintf("differs only in an embedded timestamp: %q/%q at byte %d", around(a, first), around(b, first), first)
		}
		if digitsOnly {
			return fmt.Sprintf("differs only in digits (%d bytes from byte %d): a counter or a time?", n, first)
		}
		if elf {
			return fmt.Sprintf("ELF file, same size: %d bytes differ, the first at 0x%x", n, first)
		}
	}
	if elf {
		return fmt.Sprintf("ELF file, %d and %d bytes", len(a), len(b))
	}
	// Text: the first line that differs.
	la, lb := strings.Split(string(a), "\n"), strings.Split(string(b), "\n")
	for i := 0; i < len(la) && i < len(lb); i++ {
		if la[i] != lb[i] {
			hint := fmt.Sprintf("line %d: %q/%q", i+1, clip(la[i]), clip(lb[i]))
			if timestampRE.MatchString(la[i]) || timestampRE.MatchString(lb[i]) {
				hint = "an embedded timestamp? " + hint
			}
			return hint
		}
	}
	return fmt.Sprintf("%d and %d lines", len(la), len(lb))
}

func isTimeByte(c byte) bool { return c >= '0' && c <= '9' || c == ':' || c == '-' || c == ' ' }

// around is the text around offset i, for a hint.
func around(b []byte, i int) []byte {
	lo, hi := max(0, i-20), min(len(b), i+12)
	return b[lo:hi]
}

func clip(s string) string {
	if len(s) > 60 {
		return s[:57] + "..."
	}
	return s
}
