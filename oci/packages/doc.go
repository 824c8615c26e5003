// Package packages makes a distribution's packages as OCI images, gathers them in a
// repository (an image index whose entries carry what resolution needs), resolves a set of
// packages by name and assembles a root from them, one layer per package.
//
// A package is the files of one component for one platform, all under /usr (as Serpent's
// moss ruled: a root's state is its /usr), in one layer of an image on scratch. Its manifest
// annotations say what it is: name, version, sources (sha256, origin, licence), what it was
// declared to depend on, what it provides and needs as read from its ELF files (moss's
// provider names: soname(libz.so.1(x86_64)), binary(make), interpreter(/usr/lib/ld-musl-x86_64.so.1))
// and its file list. Nothing in a package runs when it is assembled: there are no scripts.
package packages
