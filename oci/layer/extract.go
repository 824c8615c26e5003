package layer

import (
	"context"
	"fmt"
	"io"
	"os"

	"github.com/serpent-os/serpent-oci/oci/internal/ctxio"

	umocilayer "github.com/opencontainers/umoci/oci/layer"
)

// Extract applies the uncompressed tar stream r to the directory root, as the next layer on
// top of what root already holds. Whiteouts remove what they name (in Dir format) or become
// overlayfs whiteouts (in OverlayUpper format, for a snapshot that overlayfs stacks).
//
// Nothing lands outside root whatever the layer says: `..` components, absolute names and
// links that point out of root are resolved inside it (umoci's extractor does the work; see
// extract_test.go for the crafted layers it is held to). On error the state of root is
// undefined: extract into a fresh directory and discard it on failure.
func Extract(ctx context.Context, root string, r io.Reader, format Format) error {
	if err := os.MkdirAll(root, 0o755); err != nil {
		return fmt.Errorf("extract layer: %w", err)
	}
	var onDisk umocilayer.OnDiskFormat = umocilayer.DirRootfs{}
	if format == OverlayUpper {
		onDisk = umocilayer.OverlayfsRootfs{}
	}
	if err := umocilayer.UnpackLayer(root, ctxio.Reader(ctx, r), &umocilayer.UnpackOptions{OnDiskFormat: onDisk}); err != nil {
		return fmt.Errorf("extract layer into %s: %w", root, err)
	}
	return nil
}
