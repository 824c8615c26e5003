package builder_test

import (
	"testing"

	"github.com/serpent-os/serpent-oci/builder/binfmt"
)

// binfmtNowhere points binfmt checks at an empty directory: nothing mounted, nothing registered.
func binfmtNowhere(t *testing.T) binfmt.Paths {
	return binfmt.Paths{Mount: t.TempDir(), ConfDir: t.TempDir()}
}
