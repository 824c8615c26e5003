package image

import (
	"crypto/sha256"
	"fmt"
)

func sha256Hex(s string) string { return fmt.Sprintf("%x", sha256.Sum256([]byte(s))) }
