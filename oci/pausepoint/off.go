//go:build !pausepoint

package pausepoint

import "context"

// Enabled reports whether this binary can pause (built with the pausepoint tag).
const Enabled = false

func pause(context.Context, string) {}
