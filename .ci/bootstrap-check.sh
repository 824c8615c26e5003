#!/usr/bin/env bash
# Builds stage3 from a cold store (its own) for each platform given, and checks each result:
# every stage image has the right platform, stage3's files are target ELF linked against musl,
# and a C program compiled inside stage3 runs (the self-hosting proof). With REPRO_PLATFORMS
# set, those platforms are built again from cold in a second store and compared (repro.sh).
# PROFILE=full builds and checks the full profile (every ELF file in stage3 for the target and
# musl, cc and c++ are clang, C and C++ compiled inside run).
# Usage: .ci/bootstrap-check.sh [bin/serpent-oci] PLATFORM...
set -euo pipefail
bin="$(realpath "${1:-bin/serpent-oci}")"
shift
platforms=("${@:-linux/arm64}")
store="$(mktemp -d /var/tmp/serpent-oci-ci-store.XXXXXX)"
export SERPENT_OCI_STORE="$store"
. "$(dirname "$0")/check.sh"
. "$(dirname "$0")/registry.sh"
. "$(dirname "$0")/cachehit.sh"
. "$(dirname "$0")/publish.sh"
trap 'registry_stop; rm -rf "$store"' EXIT

profile="${PROFILE:-small}"
prefix=""
[ "$profile" = small ] || prefix="$profile/"

# check_stage3_packages PLATFORM COUNT: the profile's stage3 made COUNT packages for PLATFORM,
# and its /usr is their union: no file but the component manifest is in none.
check_stage3_packages() {
	check "stage3 for $1 made its $2 packages" \
		sh -c "'$bin' packages list --repo '${prefix}stage3/packages' | grep -c ' $1 ' | grep -qx $2"
	check "stage3's /usr for $1 is its packages' union (only the component manifest is in none)" \
		sh -c "'$bin' inspect '${prefix}stage3' --platform '$1' --format json | grep -F 'os.serpent.oci.packages.unowned' | grep -qF '[\\\"/usr/share/serpent/components.json\\\"]'"
}

# check_small_stage3 ROOT PLATFORM ARCH: the small profile's stage3 (tcc).
check_small_stage3() {
	local want
	want=$([ "$3" = arm64 ] && echo "ARM aarch64" || echo "x86-64")
	check "stage3's tcc is a $want ELF for musl" \
		sh -c "file -L '$1/usr/bin/tcc' | grep -q '$want' && file -L '$1/usr/bin/make' | grep -q 'ld-musl'"
	check "a C program compiled inside stage3 for $2 runs" \
		sh -c "'$bin' run stage3 --platform '$2' -- sh -c 'printf \"#include <stdio.h>\\nint main(void){puts(\\\"self-hosted\\\");return 0;}\\n\" > /tmp/t.c && tcc -o /tmp/t /tmp/t.c && /tmp/t' 2>&1 | grep -qx 'self-hosted'"
	check_stage3_packages "$2" 7
	check "a root assembled from stage3's packages for $2 compiles and runs C" \
		sh -c "'$bin' packages assemble --platform '$2' -t stage4-root tcc make busybox >/dev/null && '$bin' run stage4-root --platform '$2' -- sh -c 'printf \"#include <stdio.h>\\nint main(void){puts(\\\"assembled\\\");return 0;}\\n\" > /tmp/t.c && tcc -o /tmp/t /tmp/t.c && /tmp/t && make --version | head -n 1' 2>&1 | grep -cxE 'assembled|GNU Make 4.3' | grep -qx 2"
	# The rebootstrap: stage4 rebuilds tcc and make in a root of stage3's packages.
	"$bin" build stage4 --platform "$2" --progress plain
	check "every package stage4 made for $2 is bit-identical to stage3's" \
		sh -c "'$bin' packages compare stage3 stage4 | grep ' for $2: ' | grep -v ': identical\$' | { ! grep .; }"
	check "stage4 for $2 has the same seven packages as stage3" \
		sh -c "'$bin' packages compare stage3 stage4 | grep ' for $2: identical\$' | grep -c . | grep -qx 7"
	# The public image runs elsewhere: stage4 exported as an OCI archive, run by podman (its own
	# store, no network, limits within the sandbox's), compiles and runs C.
	local pm
	pm="$(mktemp -d /tmp/podman-XXXXXX)"
	"$bin" export stage4 --platform "$2" --format oci-archive -o "$pm/stage4.oci.tar"
	check "stage4 for $2 runs under podman and compiles C there" \
		sh -c "podman --root '$pm/root' --runroot '$pm/run' --storage-driver vfs --cgroup-manager cgroupfs --events-backend none run --rm --network none --platform '$2' --ulimit nofile=1024:1024 --ulimit nproc=1024:1024 'oci-archive:$pm/stage4.oci.tar' sh -c 'printf \"#include <stdio.h>\\nint main(void){puts(\\\"under-podman\\\");return 0;}\\n\" > /tmp/t.c && tcc -o /tmp/t /tmp/t.c && /tmp/t' 2>&1 | grep -qx 'under-podman'"
	rm -rf "$pm"
}

# full_root_from_packages PLATFORM: a root assembled from the full stage3's llvm, cmake,
# ninja, python3 and busybox packages (and what they need) configures and builds a C++ program
# with cmake and ninja, runs it, and runs python3.
full_root_from_packages() {
	local out
	"$bin" packages assemble --repo "${prefix}stage3/packages" --platform "$1" -t full-root llvm cmake ninja python3 busybox > /dev/null || return 1
	out="$("$bin" run full-root --platform "$1" -- sh -ec '
		mkdir -p /tmp/p && cd /tmp/p
		echo "#include <iostream>" > t.cpp
		echo "int main() { std::cout << \"assembled C++\" << std::endl; }" >> t.cpp
		printf "cmake_minimum_required(VERSION 3.20)\nproject(p CXX)\nadd_executable(t t.cpp)\n" > CMakeLists.txt
		cmake -G Ninja -S . -B b > /dev/null && ninja -C b > /dev/null && ./b/t
		python3 -c "print(\"assembled python\")"' 2>&1)" || { echo "$out"; return 1; }
	[ "$out" = "$(printf 'assembled C++\nassembled python')" ] || { echo "$out"; return 1; }
}

# check_full_stage3 ROOT PLATFORM ARCH: the full profile's stage3 (clang): every ELF file is
# for the target machine, every dynamic executable uses musl's loader, cc and c++ are clang,
# and C and C++ programs compiled inside run.
check_full_stage3() {
	local machine musl elves
	machine=$([ "$3" = arm64 ] && echo "ARM aarch64" || echo "x86-64")
	musl=$([ "$3" = arm64 ] && echo aarch64 || echo x86_64)
	elves="$(mktemp)"
	(cd "$1" && find . -type f -print0 | xargs -0 file -N | grep ': *ELF') > "$elves" || true
	echo "stage3 for $2: $(wc -l < "$elves") ELF files"
	check "stage3 for $2 has ELF files" test -s "$elves"
	check "every ELF file in stage3 is for $machine" sh -c "! grep -v '$machine' '$elves'"
	# Built in stage3 by stage2's clang: /usr/lib/ld-musl-ARCH.so.1. Carried (LLVM, linked by
	# stage1's wrappers): /lib/ld-musl-ARCH.so.1, the same file through usrmerge's /lib.
	check "every dynamic executable in stage3 uses musl's loader (/usr/lib/ld-musl-$musl.so.1)" \
		sh -c "! grep 'interpreter' '$elves' | grep -vE 'interpreter (/usr)?/lib/ld-musl-$musl.so.1,'"
	check "stage3's natively built programs name /usr/lib/ld-musl-$musl.so.1" \
		sh -c "grep -E '^./usr/bin/(ninja|make|xz|pkgconf|busybox):' '$elves' | grep -c 'interpreter /usr/lib/ld-musl-$musl.so.1,' | grep -qx 5"
	check "nothing in stage3 is for glibc" sh -c "! grep -E 'GNU/Linux|ld-linux' '$elves'"
	rm -f "$elves"
	check "cc and c++ in stage3 are clang" \
		sh -c "'$bin' run '${prefix}stage3' --platform '$2' -- sh -c 'cc --version; c++ --version' 2>&1 | grep -c 'clang version 14.0.6' | grep -qx 2"
	check "C and C++ programs compiled inside stage3 for $2 run" \
		sh -c "'$bin' run '${prefix}stage3' --platform '$2' -- sh -ec '
			printf \"#include <stdio.h>\\nint main(void){puts(\\\"self-hosted C\\\");return 0;}\\n\" > /tmp/t.c
			printf \"#include <iostream>\\n#include <thread>\\nint main(){std::thread t([]{std::cout<<\\\"self-hosted C++\\\"<<std::endl;});t.join();}\\n\" > /tmp/t.cpp
			cc -o /tmp/tc /tmp/t.c && c++ -o /tmp/tcpp /tmp/t.cpp && /tmp/tc && /tmp/tcpp' 2>&1 | grep -c '^self-hosted C' | grep -qx 2"
	check_stage3_packages "$2" 26
	check "a root assembled from stage3's llvm, cmake, ninja, python3 and busybox packages for $2 builds C++ with cmake and runs python3" \
		full_root_from_packages "$2"
}

start=$(date +%s)
seed=seed
[ "$profile" = small ] || seed=seed-full
# From an empty store: the build makes the seed itself (nothing is made beforehand).
for p in "${platforms[@]}"; do
	t0=$(date +%s)
	"$bin" build stage3 --profile "$profile" --platform "$p" --progress plain
	echo "stage3 ($profile profile) for $p built in $(( $(date +%s) - t0 ))s"
	check "the build made $seed@linux-amd64 itself, as a stage with its key" \
		sh -c "'$bin' inspect '$seed@linux-amd64' --format json | grep -q '\"os.serpent.oci.cache-key\"'"
	arch="${p#linux/}"
	for stage in stage2 stage2.5 stage3; do
		check "$prefix$stage@$p has platform $p in its config" \
			sh -c "'$bin' inspect '$prefix$stage' --platform '$p' --format json | grep -q '\"architecture\": \"$arch\"'"
	done
	check "stage1 for $p is tagged as a cross toolchain on the host" \
		sh -c "'$bin' images -q | grep -qx '${prefix}stage1-for-linux-${arch}@linux-amd64' || '$bin' images -q | grep -qx '${prefix}stage1@linux-amd64'"
	rootfs="$(mktemp -d)"
	"$bin" export "${prefix}stage3" --platform "$p" -o "$rootfs/stage3.tar"
	mkdir "$rootfs/x" && tar -xf "$rootfs/stage3.tar" -C "$rootfs/x"
	check "stage3 lists its components" grep -q '"carried_because"' "$rootfs/x/usr/share/serpent/components.json"
	if [ "$profile" = full ]; then
		check_full_stage3 "$rootfs/x" "$p" "$arch"
	else
		check_small_stage3 "$rootfs/x" "$p" "$arch"
	fi
	rm -rf "$rootfs"
done
echo "bootstrap of ${platforms[*]} from a cold store: $(( $(date +%s) - start ))s"
# A registry cache of the build serves an empty store the stage3 images alone.
t0=$(date +%s)
CACHEHIT_BUILD_ARGS="--profile $profile" check_cache_hit "$bin" stage3 "${prefix}stage3" "${platforms[@]}"
echo "cache hit check: $(( $(date +%s) - t0 ))s"
if [ "$profile" = small ]; then
	t0=$(date +%s)
	check_publish "$bin" "${platforms[@]}"
	echo "publish check: $(( $(date +%s) - t0 ))s"
fi
if [ -n "${REPRO_PLATFORMS:-}" ]; then
	# The same stages again, from cold in a second store: every digest must match this one's.
	t0=$(date +%s)
	# shellcheck disable=SC2086 # a list of platforms
	check "stage3 for ${REPRO_PLATFORMS} is bit-identical in a second cold build" \
		env REPRO_STORE_A="$store" "$(dirname "$0")/repro.sh" "$bin" stage3 $REPRO_PLATFORMS
	echo "second build and comparison: $(( $(date +%s) - t0 ))s"
fi
checks_done bootstrap
