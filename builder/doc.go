// Package builder runs stages: a command inside a base image, in a root filesystem of its own
// (overlayfs over the base's layer snapshots, or a private copy where overlayfs cannot be
// mounted), under runc, with qemu through binfmt_misc for a foreign platform; and turns what
// the command changed, or a directory it filled, into a new image in the store.
//
// Its parts each have a package: binfmt (can this machine run a platform), snapshot (layers
// extracted once per digest), rootfs (the run's filesystem and its changes), runc (the
// container). This package ties them together and owns the run's lifecycle: every run leaves
// no mount, no container and no tag behind when it fails or is interrupted, and a run killed
// outright is cleaned up by the next one (Recover).
package builder
