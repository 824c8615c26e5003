#!/usr/bin/env bash
# Makes the seed image (the host image stage1 runs in) in the store: the recipe set's seed
# stage (stages/serpent/seed.yaml; the full profile's seed-full), which serpent-oci makes with
# mmdebstrap from the machine's own apt sources. `serpent-oci build` makes it by itself when a
# stage needs it; this script is for making it beforehand. Does nothing when the store has it
# already (--force makes it again).
# Usage: stages/seed/make-seed.sh [path/to/serpent-oci] [--force] [--profile small|full]
set -euo pipefail
bin="$(realpath "${1:-bin/serpent-oci}")"
shift || true
rebuild=()
profile=small
while [ $# -gt 0 ]; do
	case "$1" in
	--force) rebuild=(--rebuild SEED) ;;
	--profile) profile="${2:?--profile needs a name}"; shift ;;
	*) echo "make-seed: unknown argument $1" >&2; exit 2 ;;
	esac
	shift
done
case "$profile" in
small) seed=seed ;;
full) seed=seed-full ;;
*) echo "make-seed: unknown profile $profile (small, full)" >&2; exit 2 ;;
esac
[ "${#rebuild[@]}" -eq 0 ] || rebuild=(--rebuild "$seed")
exec "$bin" build "$seed" --profile "$profile" --progress plain "${rebuild[@]}"
