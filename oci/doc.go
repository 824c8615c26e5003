// Package oci holds serpent-oci's image and layer packages: platform (names), layer
// (deterministic writing, safe extraction), store (the local OCI layout), image (scratch
// images, import, export, unpack). Nothing below oci/ knows about stages or the builder;
// depcheck_test.go holds it to that.
package oci
