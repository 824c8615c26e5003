package stages

import (
	"embed"
	"io/fs"
)

//go:embed all:serpent
var embedded embed.FS

// Embedded is the Serpent OS bootstrap recipe set shipped inside serpent-oci, so that
// `serpent-oci build stage3` works from any directory.
func Embedded() fs.FS {
	sub, err := fs.Sub(embedded, "serpent")
	if err != nil {
		panic(err) // the directory is compiled in
	}
	return sub
}
