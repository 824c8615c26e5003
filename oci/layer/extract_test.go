package layer

import (
	"archive/tar"
	"bytes"
	"context"
	"os"
	"path/filepath"
	"sort"
	"testing"

	"github.com/serpent-os/serpent-oci/oci/testenv"
)

type entry struct {
	name, link, body string
	typ              byte
}

func craft(t *testing.T, entries ...entry) *bytes.Reader {
	t.Helper()
	es := make([]testenv.TarEntry, len(entries))
	for i, e := range entries {
		es[i] = testenv.TarEntry{Name: e.name, Link: e.link, Body: e.body, Type: e.typ}
	}
	return bytes.NewReader(testenv.Tar(t, es...))
}

// snapshot lists every path below dir with its content, so that a test can tell whether anything
// outside an extraction target changed.
func snapshot(t *testing.T, dir, skip string) map[string]string {
	t.Helper()
	out := map[string]string{}
	err := filepath.Walk(dir, func(p string, fi os.FileInfo, err error) error {
		if err != nil {
			return err
		}
		if p == skip {
			return filepath.SkipDir
		}
		content := fi.Mode().String()
		if fi.Mode().IsRegular() {
			b, err := os.ReadFile(p)
			if err != nil {
				return err
			}
			content += " " + string(b)
		}
		out[p] = content
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// TestExtractCraftedLayers feeds layers made to escape their target and checks that nothing
// outside the target is created, changed or removed, whether or not extraction reports an error.
func TestExtractCraftedLayers(t *testing.T) {
	testenv.RequireRoot(t) // extraction as root is the case that matters: it can write anywhere
	const reg, dir, sym, hard = tar.TypeReg, tar.TypeDir, tar.TypeSymlink, tar.TypeLink
	tests := []struct {
		name    string
		entries []entry
	}{
		{"dot-dot name", []entry{{name: "../escaped", body: "x", typ: reg}}},
		{"deep dot-dot name", []entry{{name: "a/../../../escaped", body: "x", typ: reg}}},
		{"absolute name", []entry{{name: "/escaped", body: "x", typ: reg}}},
		{"absolute name into the sandbox", []entry{{name: "SANDBOX/outside/canary", body: "overwritten", typ: reg}}},
		{"symlink escape then write through it", []entry{
			{name: "link", link: "../outside", typ: sym},
			{name: "link/canary", body: "overwritten", typ: reg},
			{name: "link/new", body: "x", typ: reg},
		}},
		{"absolute symlink then write through it", []entry{
			{name: "link", link: "SANDBOX/outside", typ: sym},
			{name: "link/canary", body: "overwritten", typ: reg},
		}},
		{"symlinked directory then nested write", []entry{
			{name: "d", typ: dir},
			{name: "d/up", link: "../..", typ: sym},
			{name: "d/up/outside/new", body: "x", typ: reg},
		}},
		{"hardlink to outside", []entry{{name: "hl", link: "../outside/canary", typ: hard}}},
		{"hardlink to absolute outside", []entry{{name: "hl", link: "SANDBOX/outside/canary", typ: hard}}},
		{"hardlink through an escaping symlink", []entry{
			{name: "link", link: "../outside", typ: sym},
			{name: "hl", link: "link/canary", typ: hard},
		}},
		{"whiteout of dot-dot", []entry{{name: ".wh..", typ: reg}}},
		{"whiteout of a parent path", []entry{{name: "../.wh.outside", typ: reg}}},
		{"whiteout through a symlink", []entry{
			{name: "link", link: "../outside", typ: sym},
			{name: "link/.wh.canary", typ: reg},
		}},
		{"opaque whiteout through a symlink", []entry{
			{name: "link", link: "../outside", typ: sym},
			{name: "link/.wh..wh..opq", typ: reg},
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			sandbox := t.TempDir()
			outside := filepath.Join(sandbox, "outside")
			if err := os.MkdirAll(outside, 0o755); err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(filepath.Join(outside, "canary"), []byte("original"), 0o644); err != nil {
				t.Fatal(err)
			}
			target := filepath.Join(sandbox, "target")
			for i := range tt.entries {
				tt.entries[i].name = replaceSandbox(tt.entries[i].name, sandbox)
				tt.entries[i].link = replaceSandbox(tt.entries[i].link, sandbox)
			}
			before := snapshot(t, sandbox, target)
			err := Extract(context.Background(), target, craft(t, tt.entries...), Dir)
			after := snapshot(t, sandbox, target)
			if diff := diffMaps(before, after); len(diff) > 0 {
				t.Fatalf("extraction (error: %v) changed paths outside its target: %v", err, diff)
			}
			if _, statErr := os.Stat("/escaped"); statErr == nil {
				t.Fatal("extraction wrote /escaped")
			}
			t.Logf("extraction error (may be nil when contained): %v", err)
		})
	}
}

func replaceSandbox(s, sandbox string) string {
	if len(s) >= 7 && s[:7] == "SANDBOX" {
		return sandbox + s[7:]
	}
	return s
}

func diffMaps(a, b map[string]string) []string {
	var diff []string
	for k, v := range a {
		if b[k] != v {
			diff = append(diff, k)
		}
	}
	for k := range b {
		if _, ok := a[k]; !ok {
			diff = append(diff, k)
		}
	}
	sort.Strings(diff)
	return diff
}

func TestExtractAppliesWhiteouts(t *testing.T) {
	testenv.RequireRoot(t)
	target := t.TempDir()
	ctx := context.Background()
	base := craft(t,
		entry{name: "etc/", typ: tar.TypeDir},
		entry{name: "etc/keep", body: "keep", typ: tar.TypeReg},
		entry{name: "etc/gone", body: "gone", typ: tar.TypeReg},
		entry{name: "opq/", typ: tar.TypeDir},
		entry{name: "opq/old", body: "old", typ: tar.TypeReg},
	)
	if err := Extract(ctx, target, base, Dir); err != nil {
		t.Fatal(err)
	}
	top := craft(t,
		entry{name: "etc/.wh.gone", typ: tar.TypeReg},
		entry{name: "opq/", typ: tar.TypeDir},
		entry{name: "opq/.wh..wh..opq", typ: tar.TypeReg},
		entry{name: "opq/new", body: "new", typ: tar.TypeReg},
	)
	if err := Extract(ctx, target, top, Dir); err != nil {
		t.Fatal(err)
	}
	got := snapshot(t, target, "")
	for _, p := range []string{"etc/gone", "opq/old"} {
		if _, ok := got[filepath.Join(target, p)]; ok {
			t.Errorf("%s survived its whiteout", p)
		}
	}
	for _, p := range []string{"etc/keep", "opq/new"} {
		if _, ok := got[filepath.Join(target, p)]; !ok {
			t.Errorf("%s is missing", p)
		}
	}
}
