# llvm (full profile): LLVM 14.0.6 cross-built on the host by stage1 for the target, installed
# into /serpent/llvm with prefix /usr; stage2 copies it into the target's root.
#
# Two builds: the host's llvm-tblgen and clang-tblgen from the same source (the seed has
# Debian's llvm-tblgen, no clang-tblgen), then the cross build with stage1's wrappers and a
# CMake toolchain file. Both go through ccache, whose directory is a cache: mount.
# SERPENT_LLVM_STOP_AFTER=configure (not set by builds) stops after CMake has configured.
#
# SERPENT_LLVM_ACCELERATOR=1 (llvm-accel's env) builds the same LLVM, for the same target
# (default triple, one LLVM target, defaults, patches), to run on the host instead: with the
# host's own stage1 (its base, base-target: host; SERPENT_HOST_* is its row of the target
# table), linked statically so that it runs inside a foreign root, into /serpent/accel with
# the names stage2 gives the tools (cc, c++, ld, ar...) and its resource directory a link to
# the root's own, /usr/lib/clang/14.0.6: headers, compiler-rt and crt objects are the target's.
. /recipe/lib.sh
clear_flags

llvm_target_of() {
	case "$1" in
	x86_64) echo X86 ;;
	aarch64) echo AArch64 ;;
	*) echo "llvm: no LLVM target for $1" >&2; return 1 ;;
	esac
}
LLVM_TARGET=$(llvm_target_of "$SERPENT_TARGET_ARCH") # the one target the toolchain generates code for
if [ "${SERPENT_LLVM_ACCELERATOR:-}" = 1 ]; then
	[ -n "${SERPENT_HOST_TRIPLE:-}" ] || { echo "llvm: an accelerator builds on the host's stage1 (base-target: host): SERPENT_HOST_TRIPLE is not set" >&2; exit 1; }
	RUNS_ON=$SERPENT_HOST_TRIPLE RUNS_ON_ARCH=$SERPENT_HOST_ARCH RUNS_ON_CFLAGS=$SERPENT_HOST_CFLAGS DEST=/serpent/accel
else
	RUNS_ON=$TARGET RUNS_ON_ARCH=$SERPENT_TARGET_ARCH RUNS_ON_CFLAGS=$SERPENT_TARGET_CFLAGS DEST=/serpent/llvm
fi
RUNS_ON_LLVM_TARGET=$(llvm_target_of "$RUNS_ON_ARCH")

for d in /usr/lib/llvm-*/bin; do [ -d "$d" ] && PATH="$PATH:$d"; done
PATH="/serpent/bin:$PATH"
export PATH
for tool in clang clang++ cmake ninja ccache "$RUNS_ON-clang" "$RUNS_ON-clang++" llvm-ar llvm-ranlib llvm-nm llvm-strip llvm-objcopy; do
	command -v "$tool" >/dev/null || { echo "llvm: $tool is missing: llvm runs in stage1 on the full profile's seed" >&2; exit 1; }
done

# ccache: content checks (the wrappers are scripts), no limit that would evict this build.
export CCACHE_DIR=/var/cache/ccache CCACHE_COMPILERCHECK=content CCACHE_MAXSIZE=20G CCACHE_NOHASHDIR=1
ccache --zero-stats >/dev/null

SYSROOT=/serpent/sysroot
W=/tmp/llvm
src=llvm-toolchain-14_14.0.6
mkdir -p "$W"
cd "$W"

log "LLVM 14.0.6 sources (llvm, clang, lld and what they include)"
unpack "/sources/$src.orig.tar.xz" "$src/llvm" "$src/clang" "$src/lld" "$src/cmake" "$src/libunwind/include" "$src/third-party"
for p in /recipe/profiles/full/patches/llvm-*.patch; do
	log "patch: $(head -n 1 "$p")"
	quiet patch -d "$src" -p1 -i "$p"
done

log "host tools: llvm-tblgen and clang-tblgen from this source"
quiet cmake -G Ninja -S "$src/llvm" -B host-tblgen -Wno-dev \
	-DCMAKE_BUILD_TYPE=Release \
	-DCMAKE_C_COMPILER=clang -DCMAKE_CXX_COMPILER=clang++ \
	-DCMAKE_C_COMPILER_LAUNCHER=ccache -DCMAKE_CXX_COMPILER_LAUNCHER=ccache \
	-DLLVM_ENABLE_PROJECTS=clang -DLLVM_TARGETS_TO_BUILD="$LLVM_TARGET" \
	-DLLVM_INCLUDE_TESTS=OFF -DLLVM_INCLUDE_BENCHMARKS=OFF -DLLVM_INCLUDE_EXAMPLES=OFF \
	-DLLVM_ENABLE_ZLIB=OFF -DLLVM_ENABLE_TERMINFO=OFF -DLLVM_ENABLE_LIBXML2=OFF -DLLVM_APPEND_VC_REV=OFF
quiet ninja -C host-tblgen -j "$JOBS" llvm-tblgen clang-tblgen

log "cross configure: runs on $RUNS_ON, generates code for $TARGET ($LLVM_TARGET)"
cat > toolchain.cmake <<CMAKE
set(CMAKE_SYSTEM_NAME Linux)
set(CMAKE_SYSTEM_PROCESSOR $RUNS_ON_ARCH)
set(CMAKE_SYSROOT $SYSROOT)
set(CMAKE_C_COMPILER /serpent/bin/$RUNS_ON-clang)
set(CMAKE_CXX_COMPILER /serpent/bin/$RUNS_ON-clang++)
set(CMAKE_ASM_COMPILER /serpent/bin/$RUNS_ON-clang)
set(CMAKE_AR $(command -v llvm-ar) CACHE FILEPATH "")
set(CMAKE_RANLIB $(command -v llvm-ranlib) CACHE FILEPATH "")
set(CMAKE_NM $(command -v llvm-nm) CACHE FILEPATH "")
set(CMAKE_STRIP $(command -v llvm-strip) CACHE FILEPATH "")
set(CMAKE_OBJCOPY $(command -v llvm-objcopy) CACHE FILEPATH "")
set(CMAKE_FIND_ROOT_PATH_MODE_PROGRAM NEVER)
set(CMAKE_FIND_ROOT_PATH_MODE_LIBRARY ONLY)
set(CMAKE_FIND_ROOT_PATH_MODE_INCLUDE ONLY)
set(CMAKE_FIND_ROOT_PATH_MODE_PACKAGE ONLY)
CMAKE
# stage1's wrappers pass link flags on every call; unsilenced, compile-only checks that use
# -Werror fail on "argument unused during compilation" (and -fPIC looks unsupported).
XFLAGS="$RUNS_ON_CFLAGS -Wno-unused-command-line-argument"
binutils="llvm-ar;llvm-ranlib;llvm-nm;llvm-objcopy;llvm-strip;llvm-objdump;llvm-readobj;llvm-readelf;llvm-size;llvm-strings"
if [ "${SERPENT_LLVM_ACCELERATOR:-}" = 1 ]; then
	# One static program per tool: no libLLVM, libclang-cpp or resource headers of its own.
	# Plugins off: a static program cannot load one, and LLVM would export every symbol
	# (--export-dynamic), which gives the program a dynamic section it has no use for.
	components="clang;lld;$binutils"
	linking="-DLLVM_BUILD_STATIC=ON -DLLVM_ENABLE_PLUGINS=OFF"
else
	components="clang;clang-resource-headers;clang-cpp;lld;LLVM;$binutils"
	linking="-DLLVM_BUILD_LLVM_DYLIB=ON -DLLVM_LINK_LLVM_DYLIB=ON"
fi
quiet cmake -G Ninja -S "$src/llvm" -B cross -Wno-dev \
	-DCMAKE_TOOLCHAIN_FILE="$W/toolchain.cmake" \
	-DCMAKE_BUILD_TYPE=Release -DCMAKE_INSTALL_PREFIX=/usr \
	-DCMAKE_C_FLAGS="$XFLAGS" -DCMAKE_CXX_FLAGS="$XFLAGS" \
	-DCMAKE_C_COMPILER_LAUNCHER=ccache -DCMAKE_CXX_COMPILER_LAUNCHER=ccache \
	-DLLVM_ENABLE_PROJECTS="clang;lld" \
	-DLLVM_TARGETS_TO_BUILD="$LLVM_TARGET" -DLLVM_TARGET_ARCH="$RUNS_ON_LLVM_TARGET" \
	-DLLVM_HOST_TRIPLE="$RUNS_ON" -DLLVM_DEFAULT_TARGET_TRIPLE="$TARGET" \
	-DLLVM_TABLEGEN="$W/host-tblgen/bin/llvm-tblgen" -DCLANG_TABLEGEN="$W/host-tblgen/bin/clang-tblgen" \
	-DLLVM_ENABLE_ZLIB=OFF -DLLVM_ENABLE_TERMINFO=OFF -DLLVM_ENABLE_LIBXML2=OFF \
	-DLLVM_ENABLE_LIBEDIT=OFF -DLLVM_ENABLE_LIBPFM=OFF -DLLVM_ENABLE_FFI=OFF -DLLVM_ENABLE_BINDINGS=OFF \
	-DCLANG_ENABLE_STATIC_ANALYZER=OFF -DCLANG_ENABLE_ARCMT=OFF \
	-DLLVM_INCLUDE_TESTS=OFF -DLLVM_INCLUDE_BENCHMARKS=OFF -DLLVM_INCLUDE_EXAMPLES=OFF \
	-DLLVM_INCLUDE_DOCS=OFF -DLLVM_INCLUDE_UTILS=OFF -DCLANG_INCLUDE_TESTS=OFF -DCLANG_INCLUDE_DOCS=OFF \
	-DLLVM_APPEND_VC_REV=OFF \
	-DCLANG_DEFAULT_RTLIB=compiler-rt -DCLANG_DEFAULT_UNWINDLIB=libunwind \
	-DCLANG_DEFAULT_CXX_STDLIB=libc++ -DCLANG_DEFAULT_LINKER=lld -DCLANG_DEFAULT_OBJCOPY=llvm-objcopy \
	-DLLVM_ENABLE_LIBCXX=ON $linking \
	-DLLVM_PARALLEL_LINK_JOBS=1 \
	-DLLVM_DISTRIBUTION_COMPONENTS="$components"
grep -q "^LLVM_DEFAULT_TARGET_TRIPLE:STRING=$TARGET$" cross/CMakeCache.txt
if [ "${SERPENT_LLVM_STOP_AFTER:-}" = configure ]; then
	# A check of the recipe without the two-hour build, run with `serpent-oci shell` (CI does).
	log "configured for $TARGET: stopping here (SERPENT_LLVM_STOP_AFTER=configure)"
	exit 0
fi
# The unit count of the target built below (ninja -n of install-distribution-stripped counted
# 1,039 of the 2,789 steps distribution runs).
steps=$(ninja -C cross -n distribution | grep -c '^\[')
log "cross build: $steps steps, -j$JOBS"
# Every 100th of ninja's status lines ([done/total elapsed]), so that a long build shows it
# moves; everything else ninja says (warnings, a failure) in full.
rc_file="$W/ninja.rc"
{ NINJA_STATUS="[%f/%t %es] " ninja -C cross -j "$JOBS" distribution 2>&1; echo $? > "$rc_file"; } |
	awk '/^\[[0-9]+\/[0-9]+ / { n++; if (n % 100 == 0) { print substr($0, 1, 140); fflush() } next } { print; fflush() }'
rc=$(cat "$rc_file")
[ "$rc" = 0 ] || { echo "llvm: ninja failed ($rc)" >&2; exit "$rc"; }
DESTDIR="$DEST" quiet ninja -C cross install-distribution-stripped
ccache --show-stats | grep -E 'Hits|Misses|hit rate|Cache size' || true

if [ "${SERPENT_LLVM_ACCELERATOR:-}" = 1 ]; then
	log "the accelerator: stage2's names for the tools, the target root's resource directory"
	# The same names stage2.sh gives the LLVM tools in the target's /usr/bin.
	for pair in cc:clang c++:clang++ cpp:clang-cpp ld:ld.lld ar:llvm-ar ranlib:llvm-ranlib nm:llvm-nm \
		objcopy:llvm-objcopy objdump:llvm-objdump readelf:llvm-readelf strip:llvm-strip size:llvm-size \
		strings:llvm-strings; do
		ln -sf "${pair#*:}" "$DEST/usr/bin/${pair%%:*}"
	done
	[ -e "$DEST/usr/bin/clang-cpp" ] || ln -sf clang "$DEST/usr/bin/clang-cpp"
	# clang looks for its resource directory beside itself (usr/bin/../lib/clang/14.0.6): the
	# link makes it the target root's, so an accelerated compile reads the same headers,
	# compiler-rt builtins and crt objects the target's own clang does.
	mkdir -p "$DEST/usr/lib/clang"
	ln -s /usr/lib/clang/14.0.6 "$DEST/usr/lib/clang/14.0.6"
	log "proof: the accelerator is static, runs here and generates code for $TARGET"
	file "$DEST/usr/bin/clang-14" "$DEST/usr/bin/lld"
	# Static means nothing for a loader to do: no interpreter, no library needed.
	readelf="$DEST/usr/bin/llvm-readelf"
	for f in "$DEST"/usr/bin/*; do
		[ -L "$f" ] && continue
		headers=$("$readelf" --program-headers --dynamic "$f")
		case "$headers" in *INTERP* | *'(NEEDED)'*)
			echo "llvm: $f is not static (it names a program interpreter or shared libraries)" >&2
			exit 1
			;;
		esac
	done
	"$DEST/usr/bin/clang-14" --version
	"$DEST/usr/bin/clang-14" --version | grep -qx "Target: $TARGET" ||
		{ echo "llvm: the accelerator's clang does not default to $TARGET" >&2; exit 1; }
	"$DEST/usr/bin/clang-14" -### -x c /dev/null -o /tmp/x 2>&1 | grep -q "/usr/lib/ld-musl-$SERPENT_TARGET_MUSL_ARCH.so.1" ||
		{ echo "llvm: the accelerator's clang does not link with /usr/lib/ld-musl-$SERPENT_TARGET_MUSL_ARCH.so.1" >&2; exit 1; }
	"$DEST/usr/bin/lld" -flavor gnu --version
else
	log "proof: the cross-built clang and lld run for the target (through stage1's musl)"
	LOADER="$SYSROOT/usr/lib/libc.so"
	LIBS="$DEST/usr/lib:$SYSROOT/usr/lib"
	file "$DEST/usr/bin/clang-14" "$DEST/usr/bin/lld"
	"$LOADER" --library-path "$LIBS" "$DEST/usr/bin/clang-14" --version
	"$LOADER" --library-path "$LIBS" "$DEST/usr/bin/clang-14" -### -x c /dev/null -o /tmp/x 2>&1 | grep -q "/usr/lib/ld-musl-$SERPENT_TARGET_MUSL_ARCH.so.1" ||
		{ echo "llvm: clang does not link with /usr/lib/ld-musl-$SERPENT_TARGET_MUSL_ARCH.so.1" >&2; exit 1; }
	"$LOADER" --library-path "$LIBS" "$DEST/usr/bin/lld" -flavor gnu --version
fi

cd /
rm -rf "$W"
log "llvm done: $DEST/usr/bin/clang"
