#!/usr/bin/env bash
# The bootstrap's benchmark: rebuilds the stages for both platforms (by default every stage,
# --no-cache) and prints each stage's build time per platform, the engine's share of it
# (snapshots, mounts, capture, compression, store), and the emulated-to-native ratio of the
# stages that run on the target (stage2.5, stage3: arm64 under qemu against amd64 natively).
# PROFILE=full benchmarks the full profile; its default rebuilds stage2 and what follows (the
# llvm stage is hours: its figures are in docs/results.md, and --rebuild llvm measures it again).
# ACCELERATOR=REF (an accelerator image, full/llvm-accel-for-linux-arm64 for the full profile)
# then rebuilds arm64's stage2.5 and stage3 once more with it and adds their accelerated time,
# its ratio to native, and whether the accelerated image is the emulated one (same digest).
# Usage: [PROFILE=full] [ACCELERATOR=REF] .ci/bench-bootstrap.sh [bin/serpent-oci] [build flags, default --no-cache]
set -euo pipefail
bin="$(realpath "${1:-bin/serpent-oci}")"
shift || true
profile="${PROFILE:-small}"
default=(--no-cache)
stages=(stage1 stage2 stage2.5 stage3)
if [ "$profile" != small ]; then
	# A rebuilt stage whose image comes out the same leaves what is built on it reused:
	# each stage measured is named.
	default=(--rebuild stage2 --rebuild stage2.5 --rebuild stage3)
	stages=(stage1 llvm stage2 stage2.5 stage3)
fi
flags=("${default[@]}")
[ $# -eq 0 ] || flags=("$@")
declare -A took image
for p in linux/amd64 linux/arm64; do
	out="$("$bin" build stage3 --profile "$profile" --platform "$p" --progress plain "${flags[@]}" 2>/dev/null)"
	echo "$out" | grep -E '^(stage|llvm|seed|engine|[0-9]+ stages)'
	while read -r stage _ _ digest _ _ t action _; do
		[ "$action" = built ] || t="$action" # reused or pulled: no time to compare
		took["$stage/$p"]="$t" image["$stage/$p"]="$digest"
	done < <(echo "$out" | awk '$1 ~ /^(stage|llvm)/ && $1 != "STAGE"')
done
if [ -n "${ACCELERATOR:-}" ]; then
	out="$("$bin" build stage3 --profile "$profile" --platform linux/arm64 --progress plain --rebuild stage2.5 --rebuild stage3 --accelerator "$ACCELERATOR" 2>/dev/null)"
	echo "$out" | grep -E '^(stage|llvm|seed|engine|[0-9]+ stages)'
	while read -r stage _ _ digest _ _ t action _; do
		[ "$action" = built ] || continue # only the stages the accelerator built are its figures
		took["$stage/accelerated"]="$t" image["$stage/accelerated"]="$digest"
	done < <(echo "$out" | awk '$1 ~ /^stage/ && $1 != "STAGE"')
fi
secs() { # a Go duration (1m2.5s, 350ms, 7.6s) in seconds
	echo "$1" | awk '{ s = 0; d = $0
		if (match(d, /[0-9.]+m[^s]/)) { s += substr(d, RSTART, RLENGTH - 2) * 60; d = substr(d, RSTART + RLENGTH - 1) }
		if (d ~ /ms$/) { sub(/ms$/, "", d); s += d / 1000 } else if (d ~ /s$/) { sub(/s$/, "", d); s += d }
		print s }'
}
echo
ratio() { # of two build times; "-" where either stage was not built in this run
	[[ $1 =~ ^[0-9.hms]+$ && $2 =~ ^[0-9.hms]+$ ]] || { echo -; return; }
	awk -v x="$(secs "$1")" -v y="$(secs "$2")" 'BEGIN { if (y > 0) printf "%.1fx", x / y; else print "-" }'
}
if [ -n "${ACCELERATOR:-}" ]; then
	printf '%-9s %12s %12s %10s %12s %12s  %s\n' STAGE amd64 arm64 "arm64/amd64" "accelerated" "accel/amd64" "accelerated image"
else
	printf '%-9s %12s %12s %10s\n' STAGE amd64 arm64 "arm64/amd64"
fi
for stage in "${stages[@]}"; do
	a="${took[$stage/linux/amd64]:-?}" b="${took[$stage/linux/arm64]:-?}"
	if [ -n "${ACCELERATOR:-}" ]; then
		c="${took[$stage/accelerated]:--}" same=-
		if [ -n "${image[$stage/accelerated]:-}" ]; then
			# The emulated build's image is the reference (issue 17): the same digest, or not.
			same="differs from the emulated ${image[$stage/linux/arm64]}"
			[ "${image[$stage/accelerated]}" != "${image[$stage/linux/arm64]}" ] || same="the emulated one, ${image[$stage/accelerated]}"
		fi
		printf '%-9s %12s %12s %10s %12s %12s  %s\n' "$stage" "$a" "$b" "$(ratio "$b" "$a")" "$c" "$(ratio "$c" "$a")" "$same"
	else
		printf '%-9s %12s %12s %10s\n' "$stage" "$a" "$b" "$(ratio "$b" "$a")"
	fi
done
echo "(stage2.5 and stage3 run on the target: their ratio is the cost of emulation; stage1 and stage2 run on the host for both.)"
