// Package layer writes and reads OCI image layers.
//
// Writing is deterministic: the same tree gives the same bytes whenever and wherever it is
// written. Entries are sorted by name, directories first within their parent's walk; mtimes are
// clamped to the source date epoch and truncated to seconds; owners are numeric with empty user
// and group names; atime and ctime are never recorded; PAX records appear only where USTAR cannot
// hold a header (long names, large ids, xattrs); hardlinks are written as hardlinks to the first
// name in walk order. A tree that is an overlayfs upper directory has its whiteouts (0/0 character
// devices, trusted.overlay.opaque directories) translated into OCI `.wh.` entries.
//
// Reading (Extract) is serpent-oci's own applier (extract.go), which treats its target as a root
// (openat2 beneath it, no symlink followed), applies whiteouts by the image-spec rules and
// refuses the degenerate ones, writes zero blocks as holes, and bounds entry and layer sizes.
// It replaced umoci's UnpackLayer, one of whose whiteout paths removed the parent of its
// target; Decompress decodes gzip on every core.
//
// The store that keeps layers as blobs is package store; this package knows nothing of it.
package layer
