package build

import (
	"crypto/sha256"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"path"
	"path/filepath"

	"github.com/serpent-os/serpent-oci/oci/atomicfile"
	"github.com/serpent-os/serpent-oci/oci/store"
)

// maxRecordBytes bounds a record read from the store (a few hundred bytes when we wrote it).
const maxRecordBytes = 64 << 10

// A record is serpent-oci's own note about one tag, kept below .serpent/DIR in a file named
// by the tag's hash: what a build resolved from a cache, how long its last builds took. A
// record can only save work or inform, so a reader treats a bad one as none.

func recordFile(tag store.Ref) string {
	return fmt.Sprintf("%x.json", sha256.Sum256([]byte(tag.String())))
}

// readRecord reads tag's record in dir into v, inside the store and bounded. A missing record
// is an error satisfying errors.Is(err, fs.ErrNotExist).
func readRecord(st *store.Store, dir string, tag store.Ref, v any) error {
	root, err := os.OpenRoot(st.Dir())
	if err != nil {
		return err
	}
	defer root.Close()
	f, err := root.Open(path.Join(".serpent", dir, recordFile(tag)))
	if err != nil {
		return err
	}
	defer f.Close()
	b, err := io.ReadAll(io.LimitReader(f, maxRecordBytes+1))
	if err != nil {
		return err
	}
	if len(b) > maxRecordBytes {
		return fmt.Errorf("larger than %d bytes", maxRecordBytes)
	}
	return json.Unmarshal(b, v)
}

// recordPath is where tag's record in dir is, for messages.
func recordPath(st *store.Store, dir string, tag store.Ref) string {
	return filepath.Join(st.Dir(), ".serpent", dir, recordFile(tag))
}

// writeRecord writes v as tag's record in dir, whole or not at all.
func writeRecord(st *store.Store, dir string, tag store.Ref, v any) error {
	d, err := st.PrivateDir(dir)
	if err != nil {
		return err
	}
	b, err := json.MarshalIndent(v, "", "  ")
	if err != nil {
		return err
	}
	return atomicfile.Write(filepath.Join(d, recordFile(tag)), func(w io.Writer) error {
		_, err := w.Write(append(b, '\n'))
		return err
	})
}

// removeRecord removes tag's record in dir, if any.
func removeRecord(st *store.Store, dir string, tag store.Ref) {
	_ = os.Remove(recordPath(st, dir, tag))
}
