//go:build pausepoint

package pausepoint

import (
	"context"
	"fmt"
	"os"
)

// Enabled reports whether this binary can pause (built with the pausepoint tag).
const Enabled = true

func pause(ctx context.Context, name string) {
	if os.Getenv(EnvPauseAt) != name {
		return
	}
	fmt.Fprintf(os.Stderr, "serpent-oci: paused at %s\n", name)
	<-ctx.Done()
}
