package oci

import (
	"os/exec"
	"strings"
	"testing"
)

// TestOCIDependsOnNeitherBuilderNorStages keeps the dependency arrow one way:
// oci ← builder ← cmd.
func TestOCIDependsOnNeitherBuilderNorStages(t *testing.T) {
	out, err := exec.Command("go", "list", "-deps", "./...").CombinedOutput()
	if err != nil {
		t.Fatalf("go list: %v\n%s", err, out)
	}
	const module = "github.com/serpent-os/serpent-oci/"
	for _, pkg := range strings.Fields(string(out)) {
		for _, forbidden := range []string{"builder", "stages", "images", "cmd"} {
			if strings.HasPrefix(pkg, module+forbidden) {
				t.Errorf("a package under oci/ depends on %s", pkg)
			}
		}
	}
}
