// Package cachekey is how stages and spin steps are keyed: the digest of the JSON of what can
// change their output, one rule for both, so that the same inputs give the same key wherever
// they are keyed.
package cachekey

import (
	"crypto/sha256"
	"encoding/json"
	"fmt"
)

// Of is "sha256:" and the hex sha256 of v's JSON. v is plain data (structs, maps, slices,
// strings, numbers): encoding/json writes struct fields in their order and map keys sorted, so
// equal values give equal keys.
func Of(v any) string {
	b, err := json.Marshal(v)
	if err != nil {
		panic(fmt.Sprintf("cachekey: %T is not plain data: %v", v, err))
	}
	return fmt.Sprintf("sha256:%x", sha256.Sum256(b))
}
