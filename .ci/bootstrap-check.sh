#!/usr/bin/env bash
# Builds stage3 from a cold store (its own) for each platform given, and checks each result:
# every stage image has the right platform, stage3's files are target ELF linked against musl,
# and a C program compiled inside stage3 runs (the self-hosting proof). With REPRO_PLATFORMS
# set, those platforms are built again from cold in a second store and compared (repro.sh).
# Usage: .ci/bootstrap-check.sh [bin/serpent-oci] PLATFORM...
set -euo pipefail
bin="$(realpath "${1:-bin/serpent-oci}")"
shift
platforms=("${@:-linux/arm64}")
store="$(mktemp -d /var/tmp/serpent-oci-ci-store.XXXXXX)"
trap 'rm -rf "$store"' EXIT
export SERPENT_OCI_STORE="$store"
passed=0 failed=0
check() { # check DESCRIPTION COMMAND...
	if "${@:2}"; then echo "ok: $1"; passed=$((passed + 1)); else echo "FAILED: $1"; failed=$((failed + 1)); fi
}

start=$(date +%s)
"$(dirname "$0")/../stages/seed/make-seed.sh" "$bin"
for p in "${platforms[@]}"; do
	t0=$(date +%s)
	"$bin" build stage3 --platform "$p" --progress plain
	echo "stage3 for $p built in $(( $(date +%s) - t0 ))s"
	arch="${p#linux/}"
	for stage in stage2 stage2.5 stage3; do
		check "$stage@$p has platform $p in its config" \
			sh -c "'$bin' inspect '$stage' --platform '$p' --format json | grep -q '\"architecture\": \"$arch\"'"
	done
	check "stage1 for $p is tagged as a cross toolchain on the host" \
		sh -c "'$bin' images -q | grep -qx 'stage1-for-linux-${arch}@linux/amd64' || '$bin' images -q | grep -qx 'stage1@linux/amd64'"
	rootfs="$(mktemp -d)"
	"$bin" export stage3 --platform "$p" -o "$rootfs/stage3.tar"
	mkdir "$rootfs/x" && tar -xf "$rootfs/stage3.tar" -C "$rootfs/x"
	want=$([ "$arch" = arm64 ] && echo "ARM aarch64" || echo "x86-64")
	check "stage3's tcc is a $want ELF for musl" \
		sh -c "file -L '$rootfs/x/usr/bin/tcc' | grep -q '$want' && file -L '$rootfs/x/usr/bin/make' | grep -q 'ld-musl'"
	check "stage3 lists its components" grep -q '"carried_because"' "$rootfs/x/usr/share/serpent/components.json"
	rm -rf "$rootfs"
	check "a C program compiled inside stage3 for $p runs" \
		sh -c "'$bin' run stage3 --platform '$p' -- sh -c 'printf \"#include <stdio.h>\\nint main(void){puts(\\\"self-hosted\\\");return 0;}\\n\" > /tmp/t.c && tcc -o /tmp/t /tmp/t.c && /tmp/t' 2>&1 | grep -q 'stage3 | self-hosted'"
done
echo "bootstrap of ${platforms[*]} from a cold store: $(( $(date +%s) - start ))s"
if [ -n "${REPRO_PLATFORMS:-}" ]; then
	# The same stages again, from cold in a second store: every digest must match this one's.
	t0=$(date +%s)
	# shellcheck disable=SC2086 # a list of platforms
	check "stage3 for ${REPRO_PLATFORMS} is bit-identical in a second cold build" \
		env REPRO_STORE_A="$store" "$(dirname "$0")/repro.sh" "$bin" stage3 $REPRO_PLATFORMS
	echo "second build and comparison: $(( $(date +%s) - t0 ))s"
fi
echo "bootstrap: $passed passed, $failed failed"
[ "$failed" -eq 0 ]
