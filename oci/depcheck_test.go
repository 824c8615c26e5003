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
