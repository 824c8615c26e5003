#!/usr/bin/env bash
# Builds the seed image (the host image with an LLVM toolchain that stage1 runs in) from
# Debian's packages with mmdebstrap, through the machine's own apt sources, and imports it as
# seed@<host platform>. Does nothing when the store has a seed already (--force rebuilds it).
# With --profile full it makes seed-full: packages.txt plus packages-full.txt (ccache).
# Usage: stages/seed/make-seed.sh [path/to/serpent-oci] [--force] [--profile small|full]
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
bin="$(realpath "${1:-bin/serpent-oci}")"
shift || true
force=""
profile=small
while [ $# -gt 0 ]; do
	case "$1" in
	--force) force=--force ;;
	--profile) profile="${2:?--profile needs a name}"; shift ;;
	*) echo "make-seed: unknown argument $1" >&2; exit 2 ;;
	esac
	shift
done
host="linux/$(dpkg --print-architecture)"
tag=seed
lists=("$here/packages.txt")
case "$profile" in
small) ;;
full) tag=seed-full; lists+=("$here/packages-full.txt") ;;
*) echo "make-seed: unknown profile $profile (small, full)" >&2; exit 2 ;;
esac

if [ "$force" != "--force" ] && "$bin" images -q 2>/dev/null | grep -qx "$tag@${host/\//-}"; then
	echo "make-seed: $tag@$host is in the store already (--force to rebuild it)"
	exit 0
fi
command -v mmdebstrap >/dev/null || { echo "make-seed: mmdebstrap is missing: run make deps" >&2; exit 1; }

sources=()
for f in /etc/apt/sources.list /etc/apt/sources.list.d/*.list /etc/apt/sources.list.d/*.sources; do
	[ -f "$f" ] || continue
	case "$f" in *serpent-oci-src*) continue ;; esac
	grep -qE '^(deb |Types:.*\bdeb\b)' "$f" && sources+=("$f")
done
[ "${#sources[@]}" -gt 0 ] || { echo "make-seed: no apt sources on this machine" >&2; exit 1; }

packages="$(cat "${lists[@]}" | grep -v '^#' | grep -v '^$' | paste -sd, -)"
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
suite="$(. /etc/os-release && echo "$VERSION_CODENAME")"
echo "make-seed: mmdebstrap $suite with $packages"
SOURCE_DATE_EPOCH="${SOURCE_DATE_EPOCH:-1597536000}" mmdebstrap --variant=apt --include="$packages" \
	--format=tar "$suite" "$work/seed.tar" "${sources[@]}"
"$bin" import "$work/seed.tar" --tag "$tag" --platform "$host"
