# stage3 (full profile): the root filesystem in /out, whose components stage3-base and
# stage3-llvm built natively, each also a package in /pkgs: this adds the files a root needs,
# the Linux UAPI headers (the one carried component, a package too), the component manifest,
# and proves the root inside itself.
. /recipe/lib.sh
. /recipe/native.sh
clear_flags
OUT=/out
PKGS=/pkgs
ARCH="$SERPENT_TARGET_ARCH"
PARTS="$OUT/usr/share/serpent/components.part"
fail() { echo "stage3: $*" >&2; exit 1; }
[ -f "$PARTS" ] || fail "$PARTS is missing: stage3 runs in stage3-llvm"
[ -x "$OUT/usr/bin/clang-14" ] || fail "$OUT has no clang: stage3 runs in stage3-llvm"

log "Linux UAPI headers (carried: headers, nothing to compile)"
package linux-uapi-headers 6.1.170 linux ""
mkdir -p "$PKGS/linux-uapi-headers/usr/include"
for d in linux asm asm-generic mtd rdma scsi sound video xen drm misc; do
	[ -d "/usr/include/$d" ] && cp -a "/usr/include/$d" "$PKGS/linux-uapi-headers/usr/include/"
done
# musl installs three scsi headers over the kernel's: they are in musl's package.
for h in scsi.h scsi_ioctl.h sg.h; do
	[ -e "$PKGS/musl/usr/include/scsi/$h" ] && rm -f "$PKGS/linux-uapi-headers/usr/include/scsi/$h"
done
cp -alf "$PKGS/linux-uapi-headers/." "$OUT/"

log "files a root needs"
cp -a /etc/passwd /etc/group /etc/hosts "$OUT/etc/"
cat > "$OUT/etc/os-release" <<F
NAME="Serpent OS bootstrap"
ID=serpent
VERSION_ID=stage3
PRETTY_NAME="Serpent OS bootstrap stage3, full profile ($ARCH)"
F
{
	printf '{\n  "target": "%s",\n  "components": [\n' "$TARGET"
	cat "$PARTS"
	printf '    {"name": "linux-uapi-headers", "version": "6.1.170", "stage": "stage1", "built_by": "make headers_install", "native": false,\n'
	printf '     "carried_because": "headers only: nothing to compile"}\n  ]\n}\n'
} > "$OUT/usr/share/serpent/components.json"
rm -f "$PARTS"
# Device nodes, for using the root with plain chroot (the proofs below; ninja's and cmake's
# subprocesses read /dev/null); containers mount their own /dev.
for n in "null 1 3 666" "zero 1 5 666" "full 1 7 666" "random 1 8 666" "urandom 1 9 666" "tty 5 0 666" "console 5 1 600" "ptmx 5 2 666"; do
	set -- $n
	mknod -m "$4" "$OUT/dev/$1" c "$2" "$3"
done

log "proof: C and C++ compiled and run inside the new root, by ninja and by cmake"
P="$OUT/tmp/proof"
mkdir -p "$P"
cat > "$P/hello.c" <<'C'
#include <stdio.h>
#include <zlib.h>
#include <lzma.h>
int main(void) { printf("hello from C, zlib %s, liblzma %s\n", zlibVersion(), lzma_version_string()); return 0; }
C
cat > "$P/hello.cpp" <<'CPP'
#include <iostream>
#include <stdexcept>
#include <thread>
int main() {
	int n = 0;
	std::thread t([&] { n = 3; });
	t.join();
	try { throw std::runtime_error("C++ in stage3"); } catch (const std::exception &e) { std::cout << e.what() << ' ' << n << '\n'; }
	return 0;
}
CPP
cat > "$P/build.ninja" <<'N'
rule cc
  command = cc -O2 $in -o $out -lz -llzma
rule cxx
  command = c++ -O2 $in -o $out
build hello-c: cc hello.c
build hello-cpp: cxx hello.cpp
N
cat > "$P/CMakeLists.txt" <<'CM'
cmake_minimum_required(VERSION 3.20)
project(proof C CXX)
add_executable(hello-cmake hello.cpp)
CM
chroot "$OUT" /usr/bin/ninja -C /tmp/proof
chroot "$OUT" /usr/bin/cmake -G Ninja -S /tmp/proof -B /tmp/proof/cmake >/dev/null
chroot "$OUT" /usr/bin/ninja -C /tmp/proof/cmake >/dev/null
# want LABEL EXPECTED CMD... runs CMD in the new root and fails unless it prints EXPECTED.
want() {
	_label="$1" _want="$2"
	shift 2
	_got="$(chroot "$OUT" "$@" 2>&1)" || fail "$_label: $* failed: $_got"
	echo "$_label: $_got"
	[ "$_got" = "$_want" ] || fail "$_label printed \"$_got\", not \"$_want\""
}
want "C (ninja)" "hello from C, zlib 1.2.13, liblzma 5.4.1" /tmp/proof/hello-c
want "C++ (ninja)" "C++ in stage3 3" /tmp/proof/hello-cpp
want "C++ (cmake)" "C++ in stage3 3" /tmp/proof/cmake/hello-cmake
want perl "5.36.0" /usr/bin/perl -e 'printf "%vd\n", $^V'
want python3 "3.11.2 ctypes zlib lzma curses" /usr/bin/python3 -c \
	'import platform, ctypes, zlib, lzma, curses; print(platform.python_version(), "ctypes zlib lzma curses")'
want bash "5.2.15" /usr/bin/bash -c 'echo "${BASH_VERSINFO[0]}.${BASH_VERSINFO[1]}.${BASH_VERSINFO[2]}"'
for t in "m4 1.4.19" "autoconf 2.71" "automake 1.16.5" "make 4.3" "pkgconf 1.8.1" "patch 2.7.6" "diff 3.8" "cmake 3.25.1" "file 5.44"; do
	set -- $t
	got="$(chroot "$OUT" "/usr/bin/$1" --version 2>&1 | head -n 1)" || fail "$1 --version failed: $got"
	echo "$1: $got"
	case "$got" in *"$2"*) ;; *) fail "$1 --version printed \"$got\": not version $2" ;; esac
done
rm -rf "$P"
log "stage3 done"
