# stage3-llvm (full profile): LLVM 14.0.6 and its runtimes rebuilt natively for stage3's root
# (/out) inside stage3-base, by stage2's clang, last: the self-reliant toolchain. Each
# component is installed into its package's directory (/pkgs/NAME, as stage3-base's are)
# and merged into /out as hard links.
#
# Order matters for what ends up inside the programs. A linked program carries compiler-rt's
# builtins, clang's crtbegin/crtend and musl's crt objects; the build root's are stage1's and
# stage2's, compiled by Debian's clang. So compiler-rt is built first and its objects (with
# stage3-base's musl crt objects) replace the build root's before anything else links; then
# libunwind, libc++abi and libc++ are built and replace the build root's; then LLVM links
# against exactly what stage3 will run it with.
#
# The source and build trees live in the stage's cache directory: an interrupted build resumes
# where ninja stopped. Each tree is keyed by what made it (the tarball and patches; each
# configure's arguments): a different key wipes the tree, so a warm build is the cold one.
. /recipe/lib.sh
. /recipe/native.sh
clear_flags
OUT=/out
PKGS=/pkgs
ARCH="$SERPENT_TARGET_ARCH"
CFLAGS="$SERPENT_TARGET_CFLAGS"
C=/var/cache/serpent-llvm
TARBALL=/sources/llvm-toolchain-14_14.0.6.orig.tar.xz
VERSION=14.0.6
RESOURCE=/usr/lib/clang/$VERSION
PARTS="$OUT/usr/share/serpent/components.part"

fail() { echo "stage3-llvm: $*" >&2; exit 1; }
for tool in cc c++ cmake python3 sha256sum; do
	command -v "$tool" >/dev/null || fail "$tool is missing: stage3-llvm runs in stage3-base"
done
[ -f "$PARTS" ] || fail "$PARTS is missing: stage3-llvm runs in stage3-base"
# stage3-base's ninja is stage3's (in /out); the build root is scratch, so it runs from there.
[ -x /usr/bin/ninja ] || cp "$OUT/usr/bin/ninja" /usr/bin/ninja
case "$ARCH" in
x86_64) LLVM_TARGET=X86 ;;
aarch64) LLVM_TARGET=AArch64 ;;
*) fail "no LLVM target for $ARCH" ;;
esac
BY="$(cc --version | head -n 1) (stage2, native)"
case "$BY" in *Debian*) fail "cc is Debian's clang ($BY): stage3-llvm builds with stage2's" ;; esac

key_of() { printf '%s\n' "$@" | sha256sum | cut -d' ' -f1; }
# fresh DIR KEY empties DIR unless it was made with KEY; the key is written once DIR is made.
fresh() {
	if [ "$(cat "$1.key" 2>/dev/null)" != "$2" ]; then
		[ -e "$1" ] && log "cache: $1 was made from other inputs: starting it over"
		rm -rf "$1" "$1.key"
		mkdir -p "$1"
		return 0
	fi
	log "cache: resuming $1"
	return 1
}
# swap_in TREE copies the files of TREE over the build root's, each by rename, so that a
# running program keeps the library it mapped.
swap_in() {
	(cd "$1" && find . ! -type d) | while read -r f; do
		f="${f#./}"
		mkdir -p "/$(dirname "$f")"
		cp -a "$1/$f" "/$f.serpent-new"
		mv -f "/$f.serpent-new" "/$f"
	done
}
# ninja_build DIR TARGET runs a long ninja build showing every 100th of its status lines
# ([done/total elapsed]) and everything else it says (warnings, a failure) in full.
ninja_build() {
	_steps=$(ninja -C "$1" -n "$2" | grep -c '^\[' || true)
	log "$2 in ${1##*/}: $_steps steps to go, -j$JOBS"
	_rc_file="$1.ninja-rc"
	{ NINJA_STATUS="[%f/%t %es] " ninja -C "$1" -j "$JOBS" "$2" 2>&1; echo $? > "$_rc_file"; } |
		awk '/^\[[0-9]+\/[0-9]+ / { n++; if (n % 100 == 0) { print substr($0, 1, 140); fflush() } next } { print; fflush() }'
	_rc=$(cat "$_rc_file")
	[ "$_rc" = 0 ] || fail "ninja $2 in $1 failed ($_rc)"
}

mkdir -p "$C"
src_key=$(key_of "$(sha256sum "$TARBALL")" "$(cat /recipe/profiles/full/patches/llvm-*.patch | sha256sum)")
SRC="$C/src/llvm-toolchain-14_$VERSION"
if fresh "$C/src" "$src_key"; then
	log "LLVM $VERSION sources: llvm, clang, lld, the runtimes and what they include"
	(cd "$C/src" && unpack "$TARBALL" "${SRC##*/}/llvm" "${SRC##*/}/clang" "${SRC##*/}/lld" "${SRC##*/}/cmake" \
		"${SRC##*/}/compiler-rt" "${SRC##*/}/libunwind" "${SRC##*/}/libcxx" "${SRC##*/}/libcxxabi" \
		"${SRC##*/}/runtimes" "${SRC##*/}/third-party")
	for p in /recipe/profiles/full/patches/llvm-*.patch; do
		log "patch: $(head -n 1 "$p")"
		(cd "$SRC" && quiet patch -p1 -i "$p") # busybox patch has no -d
	done
	echo "$src_key" > "$C/src.key"
fi
B="$C/build"
mkdir -p "$B"

log "compiler-rt $VERSION: builtins and crt objects"
# Standalone, compiler-rt takes its target from llvm-config, which this root has not: it is
# named as the compilers' target (as stage1 does; with DEFAULT_TARGET_ONLY that is the one
# place it reads it), or the builtins have no architecture to build for.
set -- -G Ninja -S "$SRC/compiler-rt" -B "$B/compiler-rt" -Wno-dev \
	-DCMAKE_BUILD_TYPE=Release -DCMAKE_C_COMPILER=cc -DCMAKE_CXX_COMPILER=c++ -DCMAKE_ASM_COMPILER=cc \
	-DCMAKE_C_FLAGS="$CFLAGS" -DCMAKE_ASM_FLAGS="$CFLAGS" -DCMAKE_TRY_COMPILE_TARGET_TYPE=STATIC_LIBRARY \
	-DCMAKE_C_COMPILER_TARGET="$TARGET" -DCMAKE_CXX_COMPILER_TARGET="$TARGET" -DCMAKE_ASM_COMPILER_TARGET="$TARGET" \
	-DCOMPILER_RT_DEFAULT_TARGET_ONLY=ON -DCOMPILER_RT_BUILD_BUILTINS=ON -DCOMPILER_RT_BUILD_CRT=ON \
	-DCOMPILER_RT_BUILD_SANITIZERS=OFF -DCOMPILER_RT_BUILD_XRAY=OFF -DCOMPILER_RT_BUILD_LIBFUZZER=OFF \
	-DCOMPILER_RT_BUILD_PROFILE=OFF -DCOMPILER_RT_BUILD_MEMPROF=OFF -DCOMPILER_RT_BUILD_ORC=OFF \
	-DCOMPILER_RT_BUILD_GWP_ASAN=OFF -DCMAKE_INSTALL_PREFIX="$RESOURCE"
fresh "$B/compiler-rt" "$(key_of "$src_key" "$@")" && quiet cmake "$@" && key_of "$src_key" "$@" > "$B/compiler-rt.key"
ninja_build "$B/compiler-rt" all
package compiler-rt "$VERSION" llvm ""
DESTDIR="$PKGS/compiler-rt" quiet ninja -C "$B/compiler-rt" install
cp -alf "$PKGS/compiler-rt/." "$OUT/"
rm -rf /tmp/rt-root && DESTDIR=/tmp/rt-root quiet ninja -C "$B/compiler-rt" install
log "the build root links with them, and with stage3-base's musl crt objects, from here on"
swap_in /tmp/rt-root
mkdir -p /tmp/musl-crt/usr/lib
for o in crt1.o Scrt1.o rcrt1.o crti.o crtn.o; do cp -a "$OUT/usr/lib/$o" /tmp/musl-crt/usr/lib/; done
swap_in /tmp/musl-crt
builtins=$(cc -print-libgcc-file-name)
cmp "$builtins" "$OUT$builtins" || fail "cc links $builtins, not the builtins built here"

log "libunwind, libc++abi, libc++ $VERSION"
RT_LDFLAGS="--rtlib=compiler-rt --unwindlib=none"
set -- -G Ninja -S "$SRC/runtimes" -B "$B/runtimes" -Wno-dev \
	-DLLVM_ENABLE_RUNTIMES="libunwind;libcxxabi;libcxx" \
	-DCMAKE_BUILD_TYPE=Release -DCMAKE_INSTALL_PREFIX=/usr \
	-DCMAKE_C_COMPILER=cc -DCMAKE_CXX_COMPILER=c++ -DCMAKE_ASM_COMPILER=cc \
	-DCMAKE_C_FLAGS="$CFLAGS" -DCMAKE_CXX_FLAGS="$CFLAGS" -DCMAKE_ASM_FLAGS="$CFLAGS" \
	-DCMAKE_EXE_LINKER_FLAGS="$RT_LDFLAGS" -DCMAKE_SHARED_LINKER_FLAGS="$RT_LDFLAGS" \
	-DCMAKE_TRY_COMPILE_TARGET_TYPE=STATIC_LIBRARY \
	-DLLVM_INCLUDE_TESTS=OFF -DLIBCXX_INCLUDE_TESTS=OFF -DLIBCXX_INCLUDE_BENCHMARKS=OFF \
	-DLIBCXXABI_INCLUDE_TESTS=OFF -DLIBUNWIND_INCLUDE_TESTS=OFF \
	-DLIBUNWIND_USE_COMPILER_RT=ON \
	-DLIBCXXABI_USE_COMPILER_RT=ON -DLIBCXXABI_USE_LLVM_UNWINDER=ON \
	-DLIBCXXABI_HAS_CXA_THREAD_ATEXIT_IMPL=OFF \
	-DLIBCXX_USE_COMPILER_RT=ON -DLIBCXX_HAS_MUSL_LIBC=ON -DLIBCXX_HAS_ATOMIC_LIB=OFF -DLIBCXX_CXX_ABI=libcxxabi \
	-DLIBCXX_ENABLE_STATIC_ABI_LIBRARY=ON -DCMAKE_POSITION_INDEPENDENT_CODE=ON
rt_key=$(key_of "$src_key" "$(sha256sum "$builtins")" "$@")
fresh "$B/runtimes" "$rt_key" && quiet cmake "$@" && echo "$rt_key" > "$B/runtimes.key"
ninja_build "$B/runtimes" all
package libunwind "$VERSION" llvm ""
package libcxxabi "$VERSION" llvm ""
package libcxx "$VERSION" llvm ""
DESTDIR="$PKGS/libunwind" quiet ninja -C "$B/runtimes" install-unwind
DESTDIR="$PKGS/libcxxabi" quiet ninja -C "$B/runtimes" install-cxxabi
DESTDIR="$PKGS/libcxx" quiet ninja -C "$B/runtimes" install-cxx
for p in libunwind libcxxabi libcxx; do cp -alf "$PKGS/$p/." "$OUT/"; done
rm -rf /tmp/rt-root && DESTDIR=/tmp/rt-root quiet ninja -C "$B/runtimes" install
swap_in /tmp/rt-root

log "LLVM $VERSION: clang, lld, libLLVM, libclang-cpp and the binary tools, for $TARGET ($LLVM_TARGET)"
binutils="llvm-ar;llvm-ranlib;llvm-nm;llvm-objcopy;llvm-strip;llvm-objdump;llvm-readobj;llvm-readelf;llvm-size;llvm-strings"
set -- -G Ninja -S "$SRC/llvm" -B "$B/llvm" -Wno-dev \
	-DCMAKE_BUILD_TYPE=Release -DCMAKE_INSTALL_PREFIX=/usr \
	-DCMAKE_C_COMPILER=cc -DCMAKE_CXX_COMPILER=c++ -DCMAKE_ASM_COMPILER=cc \
	-DCMAKE_C_FLAGS="$CFLAGS" -DCMAKE_CXX_FLAGS="$CFLAGS" \
	-DLLVM_ENABLE_PROJECTS="clang;lld" \
	-DLLVM_TARGETS_TO_BUILD="$LLVM_TARGET" -DLLVM_HOST_TRIPLE="$TARGET" -DLLVM_DEFAULT_TARGET_TRIPLE="$TARGET" \
	-DLLVM_ENABLE_ZLIB=OFF -DLLVM_ENABLE_TERMINFO=OFF -DLLVM_ENABLE_LIBXML2=OFF \
	-DLLVM_ENABLE_LIBEDIT=OFF -DLLVM_ENABLE_LIBPFM=OFF -DLLVM_ENABLE_FFI=OFF -DLLVM_ENABLE_BINDINGS=OFF \
	-DCLANG_ENABLE_STATIC_ANALYZER=OFF -DCLANG_ENABLE_ARCMT=OFF \
	-DLLVM_INCLUDE_TESTS=OFF -DLLVM_INCLUDE_BENCHMARKS=OFF -DLLVM_INCLUDE_EXAMPLES=OFF \
	-DLLVM_INCLUDE_DOCS=OFF -DLLVM_INCLUDE_UTILS=OFF -DCLANG_INCLUDE_TESTS=OFF -DCLANG_INCLUDE_DOCS=OFF \
	-DLLVM_APPEND_VC_REV=OFF \
	-DCLANG_DEFAULT_RTLIB=compiler-rt -DCLANG_DEFAULT_UNWINDLIB=libunwind \
	-DCLANG_DEFAULT_CXX_STDLIB=libc++ -DCLANG_DEFAULT_LINKER=lld -DCLANG_DEFAULT_OBJCOPY=llvm-objcopy \
	-DLLVM_ENABLE_LIBCXX=ON -DLLVM_BUILD_LLVM_DYLIB=ON -DLLVM_LINK_LLVM_DYLIB=ON \
	-DLLVM_PARALLEL_LINK_JOBS=1 \
	-DLLVM_DISTRIBUTION_COMPONENTS="clang;clang-resource-headers;clang-cpp;lld;LLVM;$binutils"
llvm_key=$(key_of "$rt_key" "$(cd /tmp/rt-root && find . ! -type d | sort | xargs sha256sum)" "$@")
fresh "$B/llvm" "$llvm_key" && quiet cmake "$@" && echo "$llvm_key" > "$B/llvm.key"
grep -q "^LLVM_DEFAULT_TARGET_TRIPLE:STRING=$TARGET$" "$B/llvm/CMakeCache.txt" || fail "LLVM was not configured for $TARGET"
if [ "${SERPENT_LLVM_STOP_AFTER:-}" = configure ]; then
	log "configured for $TARGET: stopping here (SERPENT_LLVM_STOP_AFTER=configure)"
	exit 0
fi
ninja_build "$B/llvm" distribution
# clang runs with the runtimes as its defaults (compiler-rt, libunwind, libc++, lld).
package llvm "$VERSION" llvm "compiler-rt libunwind libcxxabi libcxx"
DESTDIR="$PKGS/llvm" quiet ninja -C "$B/llvm" install-distribution-stripped
for pair in cc:clang c++:clang++ cpp:clang-cpp ld:ld.lld ar:llvm-ar ranlib:llvm-ranlib nm:llvm-nm \
	objcopy:llvm-objcopy objdump:llvm-objdump readelf:llvm-readelf strip:llvm-strip size:llvm-size \
	strings:llvm-strings; do
	ln -sf "${pair#*:}" "$PKGS/llvm/usr/bin/${pair%%:*}"
done
[ -e "$PKGS/llvm/usr/bin/clang-cpp" ] || ln -sf clang "$PKGS/llvm/usr/bin/clang-cpp"
cp -alf "$PKGS/llvm/." "$OUT/"

log "proof: stage3's clang runs in stage3's root, and nothing of its toolchain names Debian's compiler"
chroot "$OUT" /usr/bin/clang --version
chroot "$OUT" /usr/bin/clang --version | grep -qx "Target: $TARGET" || fail "stage3's clang does not default to $TARGET"
# The programs and libraries installed are stripped, and stripping drops .comment: their
# build tree's copies (the same code before stripping) are read instead. No .comment at all
# fails too: a check with nothing to read proves nothing.
readelf_comment() {
	"$B/llvm/bin/llvm-readelf" -p .comment "$1" 2>/dev/null | sed -n 's/^ *\[ *[0-9a-f]*\] *//p' | sort -u | tr '\n' ';'
}
for f in "$B/llvm/bin/clang-14" "$B/llvm/bin/lld" "$B/llvm/lib/libLLVM-14.so" "$B/llvm/lib/libclang-cpp.so.14" \
	"$OUT/usr/lib/libc++.so.1" "$OUT/usr/lib/libunwind.so.1" "$OUT$RESOURCE/lib/linux/libclang_rt.builtins-$ARCH.a"; do
	comment=$(readelf_comment "$f")
	echo "$f: $comment"
	case "$comment" in
	"") fail "$f has no .comment: nothing says which compiler built it" ;;
	*Debian*) fail "$f carries code built by Debian's compiler: $comment" ;;
	esac
done

built() {
	printf '    {"name": "%s", "version": "%s", "stage": "stage3", "built_by": "%s", "native": true,\n     "source": {"file": "%s", "sha256": "%s", "license": "%s"}},\n' \
		"$1" "$VERSION" "$BY" "${TARBALL##*/}" "$(sha256sum "$TARBALL" | cut -d' ' -f1)" "Apache-2.0 WITH LLVM-exception" >> "$PARTS"
}
built compiler-rt
built libunwind
built libcxxabi
built libcxx
built llvm
rm -rf /tmp/rt-root /tmp/musl-crt
log "stage3-llvm done"
