#!/usr/bin/env bash
# The full profile's cheap check, for CI (a cold full build takes hours): its recipes load and
# plan for both platforms in an empty store, every source up to stage3-fixedpoint fetches and
# matches its sha256, then, in that store, for each platform: the seed
# with ccache, the full profile's stage1, and the llvm stage's script up to the end of LLVM's CMake
# configure (serpent-oci shell, with SERPENT_LLVM_STOP_AFTER=configure): the host's
# llvm-tblgen and clang-tblgen build, and the cross build configures for the target; for a
# platform other than the host's, the same for its accelerator (llvm-accel: the LLVM built for
# the host, on the host's stage1, statically).
# Usage: .ci/full-profile-check.sh [bin/serpent-oci] PLATFORM...
set -euo pipefail
bin="$(realpath "${1:-bin/serpent-oci}")"
shift || true
platforms=("${@:-linux/amd64}")
work="$(mktemp -d /var/tmp/serpent-oci-full-check.XXXXXX)"
trap 'rm -rf "$work"' EXIT
# The store is a directory of its own (not yet created: the build makes it); the plan and the
# logs go beside it.
export SERPENT_OCI_STORE="$work/store"
. "$(dirname "$0")/check.sh"
plist="$(IFS=,; echo "${platforms[*]}")"
start=$(date +%s)
host=linux/amd64 # CI's machines; the accelerator check names x86_64 as the host's triple

"$bin" plan stage3-fixedpoint --profile full --platform "$plist" --format json | tr -d ' \n' > "$work/plan.json"
for p in "${platforms[@]}"; do
	for stage in stage1 llvm stage2 stage2.5 stage3-base stage3-llvm stage3 stage3-fixedpoint; do
		check "the full profile plans $stage for $p" \
			grep -q "\"stage\":\"$stage\",\"platform\":\"$p\"" "$work/plan.json"
	done
done
# Every source of the full chain (stage3-fixedpoint and the stages before it) is fetched from its
# origin and matches its sha256: a recipe naming bytes the archive does not serve fails here,
# not hours into a build.
check "every source of stage3-fixedpoint and the stages before it fetches and matches its sha256" \
	sh -c "'$bin' sources fetch stage3-fixedpoint --profile full --platform '$plist' > '$work/sources.log' 2>&1 || { tail -n 20 '$work/sources.log'; exit 1; }"

for p in "${platforms[@]}"; do
	t0=$(date +%s)
	log="$work/llvm-configure-${p//\//-}.log"
	check "llvm for $p: host tools build and the cross build configures" \
		sh -c "'$bin' shell llvm --profile full --platform '$p' --progress plain -e SERPENT_LLVM_STOP_AFTER=configure \
			-- /bin/sh -e /recipe/profiles/full/llvm.sh > '$log' 2>&1"
	tail -n 5 "$log"
	check "llvm for $p: configured for the target triple, stopped before the build" \
		sh -c "grep -q 'configured for .*: stopping here' '$log' && ! grep -q 'cross build:' '$log'"
	check "nothing is tagged as the llvm stage for $p" sh -c "! '$bin' images -q | grep -q '^full/llvm'"
	if [ "$p" != "$host" ]; then
		log="$work/llvm-accel-configure-${p//\//-}.log"
		check "llvm-accel for $p: configures to run on $host, static, for $p's triple" \
			sh -c "'$bin' shell llvm-accel --profile full --platform '$p' --progress plain -e SERPENT_LLVM_STOP_AFTER=configure \
				-- /bin/sh -e /recipe/profiles/full/llvm.sh > '$log' 2>&1"
		tail -n 5 "$log"
		check "llvm-accel for $p: runs on the host's triple, generates code for $p's" \
			grep -q "cross configure: runs on x86_64-serpent-linux-musl, generates code for aarch64-serpent-linux-musl" "$log"
	fi
	echo "full profile check for $p: $(( $(date +%s) - t0 ))s"
done
echo "full profile check of ${platforms[*]}: $(( $(date +%s) - start ))s"
checks_done full-profile-check
