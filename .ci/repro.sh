#!/usr/bin/env bash
# Reproducibility check: builds STAGE for each PLATFORM twice, from cold, in two stores at
# different paths, from different working directories, with the clocks at least a minute
# apart, and asserts that every stage of the chain has the same manifest digest in both
# (serpent-oci verify --against --deep, which lists the differing paths otherwise).
# Store A is $REPRO_STORE_A when set (a store a cold build just filled, as in CI), else new.
# PROFILE=full builds the full profile, and the second build starts with the first store's
# cache directories: the llvm stage built with an empty ccache and with a warm one must agree.
# Usage: .ci/repro.sh [bin/serpent-oci] STAGE PLATFORM...
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
bin="$(realpath "${1:-bin/serpent-oci}")"
stage="${2:-stage3}"
shift 2 || true
platforms=("${@:-linux/arm64}")
plist="$(IFS=,; echo "${platforms[*]}")"
tmp="$(mktemp -d /var/tmp/serpent-oci-repro.XXXXXX)"
trap 'rm -rf "$tmp"' EXIT

profile="${PROFILE:-small}"
build_in() { # build_in STORE [WARM_FROM]: STAGE (and the seed) for every platform, from a directory of its own
	mkdir -p "$tmp/wd-$(basename "$1")"
	(
		cd "$tmp/wd-$(basename "$1")"
		export SERPENT_OCI_STORE="$1"
		if [ -n "${2:-}" ] && [ -d "$2/.serpent/cache" ]; then
			# The stages' cache directories (ccache's) of the first store: a warm cache must
			# build what a cold one built, bit for bit.
			echo "repro: the second build starts with the first's cache directories ($(du -sh "$2/.serpent/cache" | cut -f1))"
			mkdir -p "$1/.serpent" # the store itself is made by the build, around it
			cp -a "$2/.serpent/cache" "$1/.serpent/"
		fi
		"$bin" build "$stage" --profile "$profile" --platform "$plist" --progress plain
	)
}

start=$(date +%s)
a="${REPRO_STORE_A:-}"
if [ -z "$a" ]; then
	a="$tmp/a-store"
	echo "repro: first build of $stage for $plist in $a"
	build_in "$a"
	# (A store given was filled before this script began: the minute is behind us.)
	wait=$(( start + 60 - $(date +%s) ))
	[ "$wait" -le 0 ] || { echo "repro: waiting ${wait}s so that the builds are a minute apart"; sleep "$wait"; }
fi
b="$tmp/second/b-store"
echo "repro: second build of $stage for $plist in $b (the first is in $a)"
warm=""
[ "$profile" = small ] || warm="$a" # the full profile: the llvm stage again, with a warm ccache
build_in "$b" $warm
echo "repro: comparing every stage of $stage for $plist"
SERPENT_OCI_STORE="$a" "$bin" verify "$stage" --profile "$profile" --against "$b" --deep --platform "$plist"
echo "repro: $stage for $plist is bit-identical in two cold builds"
