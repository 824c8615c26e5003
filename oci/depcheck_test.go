package oci

import (
	"os/exec"
	"strings"
	"testing"
)

// TestLayering keeps the dependency arrows one way: oci ← stages ← builder ← images ← cmd.
// Each layer may use those before it and none after it.
func TestLayering(t *testing.T) {
	const module = "github.com/serpent-os/serpent-oci/"
	for _, tt := range []struct {
		dir       string // relative to oci/
		forbidden []string
	}{
		{"./...", []string{"stages", "builder", "images", "cmd"}},
		{"../stages/...", []string{"builder", "images", "cmd"}},
		{"../builder/...", []string{"images", "cmd"}},
		{"../images/...", []string{"cmd"}},
	} {
		out, err := exec.Command("go", "list", "-deps", tt.dir).CombinedOutput()
		if err != nil {
			t.Fatalf("go list -deps %s: %v\n%s", tt.dir, err, out)
		}
		for _, pkg := range strings.Fields(string(out)) {
			for _, f := range tt.forbidden {
				if pkg == module+f || strings.HasPrefix(pkg, module+f+"/") {
					t.Errorf("a package of %s depends on %s", tt.dir, pkg)
				}
			}
		}
	}
}

// TestRuncStaysBehindTheExecutor: only the runner (package builder) uses the runc package;
// the planner, the spin builder and the CLI see builder.Executor and its own types.
func TestRuncStaysBehindTheExecutor(t *testing.T) {
	const runc = "github.com/serpent-os/serpent-oci/builder/runc"
	allowed := map[string]bool{"github.com/serpent-os/serpent-oci/builder": true, runc: true}
	out, err := exec.Command("go", "list", "-f", "{{.ImportPath}}{{range .Imports}} {{.}}{{end}}", "../...").CombinedOutput()
	if err != nil {
		t.Fatalf("go list ../...: %v\n%s", err, out)
	}
	for _, line := range strings.Split(strings.TrimSpace(string(out)), "\n") {
		fields := strings.Fields(line)
		if len(fields) == 0 || allowed[fields[0]] {
			continue
		}
		for _, imp := range fields[1:] {
			if imp == runc {
				t.Errorf("%s imports %s: it should go through builder.Executor", fields[0], runc)
			}
		}
	}
}
