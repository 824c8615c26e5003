package builder

import (
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
)

// TestReadAnnotationFilesStaysInTheRoot: a run's annotation files are read as the root's own
// programs would see them, never a host file, never a FIFO (which would hang the build), never
// more than maxAnnotation.
func TestReadAnnotationFilesStaysInTheRoot(t *testing.T) {
	host := filepath.Join(t.TempDir(), "secret.json")
	if err := os.WriteFile(host, []byte(`{"host":"secret"}`), 0o600); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name  string
		make  func(t *testing.T, root string) // makes root/out/c.json
		want  string                          // the annotation, or
		error string                          // the error's text
	}{
		{"a file", func(t *testing.T, root string) { write(t, root, "out/c.json", `{ "a": 1 }`) }, `{"a":1}`, ""},
		{"an absolute link, resolved in the root", func(t *testing.T, root string) {
			write(t, root, "usr/share/c.json", `{"in":"root"}`)
			link(t, "/usr/share/c.json", filepath.Join(root, "out/c.json"))
		}, `{"in":"root"}`, ""},
		{"a link to a host file", func(t *testing.T, root string) { link(t, host, filepath.Join(root, "out/c.json")) }, "", "no such file"},
		{"a relative link climbing out", func(t *testing.T, root string) {
			rel, _ := filepath.Rel(filepath.Join(root, "out"), host)
			link(t, rel, filepath.Join(root, "out/c.json"))
		}, "", "no such file"},
		{"a fifo", func(t *testing.T, root string) {
			if err := syscall.Mkfifo(filepath.Join(root, "out/c.json"), 0o600); err != nil {
				t.Fatal(err)
			}
		}, "", "not a regular file"},
		{"a directory", func(t *testing.T, root string) { os.Mkdir(filepath.Join(root, "out/c.json"), 0o755) }, "", "not a regular file"},
		{"too large", func(t *testing.T, root string) {
			write(t, root, "out/c.json", `"`+strings.Repeat("x", maxAnnotation)+`"`)
		}, "", "over the limit of 262144"},
		{"missing", func(t *testing.T, root string) {}, "", "no such file"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			root := t.TempDir()
			if err := os.MkdirAll(filepath.Join(root, "out"), 0o755); err != nil {
				t.Fatal(err)
			}
			tc.make(t, root)
			files, err := readFiles(root, map[string]string{"os.serpent.oci.components": "/out/c.json"})
			got := files["os.serpent.oci.components"]
			switch {
			case tc.error == "" && (err != nil || got != tc.want):
				t.Errorf("annotation %q, %v; want %q", got, err, tc.want)
			case tc.error != "" && (err == nil || !strings.Contains(err.Error(), tc.error) || !strings.Contains(err.Error(), "/out/c.json")):
				t.Errorf("error %v (annotation %q), want one naming /out/c.json and saying %q", err, got, tc.error)
			case strings.Contains(got, "secret"):
				t.Errorf("a host file's bytes became an annotation: %q", got)
			}
		})
	}
}

func write(t *testing.T, root, rel, data string) {
	t.Helper()
	p := filepath.Join(root, rel)
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(p, []byte(data), 0o644); err != nil {
		t.Fatal(err)
	}
}

func link(t *testing.T, target, at string) {
	t.Helper()
	if err := os.Symlink(target, at); err != nil {
		t.Fatal(err)
	}
}
