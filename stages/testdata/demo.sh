#!/usr/bin/env bash
# Builds the three-stage test set with the serpent-oci binary, as a user would: imports the
# busybox image it starts from, makes its source mirror, and runs `serpent-oci build`. All of
# it (the store, the recipe set, the mirror) lives in a directory of its own beside the binary
# (DEMO_DIR, default bin/demo), kept afterwards so that the commands it prints at the end can
# be tried on it; run again, it rebuilds nothing. Never the user's default store.
# Usage: stages/testdata/demo.sh [path/to/serpent-oci]
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
bin="$(realpath "${1:-bin/serpent-oci}")"
testdata="${SERPENT_OCI_TESTDATA:-/var/cache/serpent-oci/testdata}"
demo="$(realpath -m "${DEMO_DIR:-$(dirname "$bin")/demo}")"
export SERPENT_OCI_STORE="$demo/store"
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
rm -rf "$demo/stages" "$demo/mirror"
mkdir -p "$demo"

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
mkdir -p "$demo/mirror" "$demo/stages"
cp "$here/busybox-mirror/greeting.txt" "$demo/mirror/"
cp "$work/deb-arm64/bin/busybox" "$demo/mirror/busybox-aarch64"
sum="$(sha256sum "$demo/mirror/busybox-aarch64" | cut -d' ' -f1)"
cp "$here"/busybox/* "$demo/stages/"
sed -i "s/@BUSYBOX_AARCH64_SHA256@/$sum/" "$demo/stages/target-root.yaml"

"$bin" build target-native --stages "$demo/stages" --platform linux/arm64 --source-mirror "$demo/mirror" \
	--sources-dir "$demo/sources"

b="$bin --store $demo/store"
[ "$(dirname "$bin")" = "$(realpath bin 2>/dev/null)" ] && b="bin/serpent-oci --store ${demo#"$PWD"/}/store"
cat <<NEXT

The demo's store, recipe set and mirror are in $demo. Next, try:
  $b images                                                 # what was built, one tag per platform
  $b run target-root@linux/arm64 -- /bin/busybox uname -m   # aarch64, under qemu
  $b plan target-native --stages ${demo#"$PWD"/}/stages --platform linux/arm64   # all cached now
NEXT
