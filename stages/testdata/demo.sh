#!/usr/bin/env bash
# Builds the three-stage test set with the serpent-oci binary, as a user would: imports the
# busybox image it starts from, makes its source mirror, and runs `serpent-oci build`.
# Usage: stages/testdata/demo.sh [path/to/serpent-oci]
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
bin="$(realpath "${1:-bin/serpent-oci}")"
testdata="${SERPENT_OCI_TESTDATA:-/var/cache/serpent-oci/testdata}"
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT

for arch in amd64 arm64; do
	mkdir -p "$work/deb-$arch"
	dpkg-deb -x "$(ls "$testdata"/busybox-static_*_"$arch".deb)" "$work/deb-$arch"
done
# The image the first stage starts from: busybox for the host.
mkdir -p "$work/rootfs/bin" "$work/rootfs/etc"
cp "$work/deb-amd64/bin/busybox" "$work/rootfs/bin/busybox"
for applet in sh ls cat echo mkdir rm uname cp ln chmod; do ln -s busybox "$work/rootfs/bin/$applet"; done
"$bin" import "$work/rootfs" --tag busybox --platform linux/amd64

# The source mirror and the set, with the arm64 busybox's digest filled in.
mkdir -p "$work/mirror" "$work/stages"
cp "$here/busybox-mirror/greeting.txt" "$work/mirror/"
cp "$work/deb-arm64/bin/busybox" "$work/mirror/busybox-aarch64"
sum="$(sha256sum "$work/mirror/busybox-aarch64" | cut -d' ' -f1)"
cp "$here"/busybox/* "$work/stages/"
sed -i "s/@BUSYBOX_AARCH64_SHA256@/$sum/" "$work/stages/target-root.yaml"

"$bin" build target-native --stages "$work/stages" --platform linux/arm64 --source-mirror "$work/mirror"
