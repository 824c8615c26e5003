# stage1: a cross toolchain for the target, built on the host inside the seed image with the
# seed's clang: Linux UAPI headers, compiler-rt builtins, musl, then libunwind, libc++abi and
# libc++, all installed into a sysroot, and target-prefixed wrappers defaulting to
# compiler-rt, libc++ and lld. The seed's clang, lld and LLVM tools are the compiler; the
# wrappers aim them at the target.
. /recipe/lib.sh
clear_flags

# The seed's LLVM (Debian installs it under /usr/lib/llvm-N/bin).
for d in /usr/lib/llvm-*/bin; do [ -d "$d" ] && PATH="$d:$PATH"; done
export PATH
for tool in clang clang++ ld.lld llvm-ar llvm-ranlib llvm-nm llvm-strip llvm-objcopy cmake ninja make rsync; do
	command -v "$tool" >/dev/null || { echo "stage1: the seed lacks $tool" >&2; exit 1; }
done

SYSROOT=/serpent/sysroot
TOOLS=/serpent/bin
RESOURCE_DIR="$(clang -print-resource-dir)"
W=/tmp/stage1
mkdir -p "$W" "$SYSROOT/usr" "$TOOLS"
cd "$W"

# The flags every target compile gets, before the wrappers exist.
XFLAGS="--target=$TARGET --sysroot=$SYSROOT $SERPENT_TARGET_CFLAGS"

log "Linux $SERPENT_TARGET_KERNEL_ARCH UAPI headers"
case "$SERPENT_TARGET_KERNEL_ARCH" in
x86_64) karch_dir=x86 ;;
*) karch_dir="$SERPENT_TARGET_KERNEL_ARCH" ;;
esac
kv=6.1.170
unpack /sources/linux_$kv.orig.tar.xz "linux-$kv/Makefile" "linux-$kv/scripts" "linux-$kv/include" \
	"linux-$kv/arch/$karch_dir" "linux-$kv/arch/Kconfig" "linux-$kv/tools/include" "linux-$kv/usr"
make -C "linux-$kv" -s ARCH="$SERPENT_TARGET_KERNEL_ARCH" HOSTCC=clang INSTALL_HDR_PATH="$SYSROOT/usr" headers_install
rm -rf "linux-$kv"

log "musl 1.2.3 headers (compiler-rt's builtins include a few)"
unpack /sources/musl-1.2.3.tar.gz
make -C musl-1.2.3 -s ARCH="$SERPENT_TARGET_MUSL_ARCH" prefix=/usr DESTDIR="$SYSROOT" install-headers

log "LLVM 14.0.6 runtime sources"
llvm=llvm-toolchain-14_14.0.6
unpack /sources/$llvm.orig.tar.xz "$llvm/compiler-rt" "$llvm/libunwind" "$llvm/libcxx" "$llvm/libcxxabi" \
	"$llvm/runtimes" "$llvm/cmake" "$llvm/llvm/cmake" "$llvm/llvm/utils/llvm-lit" "$llvm/llvm/utils/lit"

log "compiler-rt builtins and crt objects for $TARGET (before musl: nothing to link against yet)"
# With --rtlib=compiler-rt, clang takes crtbegin/crtend from compiler-rt when they exist in its
# resource directory (clang_rt.crtbegin-ARCH.o); otherwise it asks for GCC's crtbeginT.o.
cmake -G Ninja -S "$llvm/compiler-rt" -B compiler-rt -Wno-dev \
	-DCMAKE_BUILD_TYPE=Release \
	-DCMAKE_C_COMPILER=clang -DCMAKE_CXX_COMPILER=clang++ -DCMAKE_ASM_COMPILER=clang \
	-DCMAKE_AR="$(command -v llvm-ar)" -DCMAKE_RANLIB="$(command -v llvm-ranlib)" \
	-DCMAKE_C_COMPILER_TARGET="$TARGET" -DCMAKE_CXX_COMPILER_TARGET="$TARGET" -DCMAKE_ASM_COMPILER_TARGET="$TARGET" \
	-DCMAKE_SYSROOT="$SYSROOT" -DCMAKE_TRY_COMPILE_TARGET_TYPE=STATIC_LIBRARY \
	-DCMAKE_C_FLAGS="$SERPENT_TARGET_CFLAGS" -DCMAKE_ASM_FLAGS="$SERPENT_TARGET_CFLAGS" \
	-DCOMPILER_RT_DEFAULT_TARGET_ONLY=ON \
	-DCOMPILER_RT_BUILD_BUILTINS=ON -DCOMPILER_RT_BUILD_CRT=ON \
	-DCOMPILER_RT_BUILD_SANITIZERS=OFF -DCOMPILER_RT_BUILD_XRAY=OFF -DCOMPILER_RT_BUILD_LIBFUZZER=OFF \
	-DCOMPILER_RT_BUILD_PROFILE=OFF -DCOMPILER_RT_BUILD_MEMPROF=OFF -DCOMPILER_RT_BUILD_ORC=OFF \
	-DCOMPILER_RT_BUILD_GWP_ASAN=OFF \
	-DCMAKE_INSTALL_PREFIX="$RESOURCE_DIR" >/dev/null 2>&1
quiet ninja -C compiler-rt -j "$JOBS"
quiet ninja -C compiler-rt install
BUILTINS="$(clang --target="$TARGET" --rtlib=compiler-rt -print-libgcc-file-name)"
test -f "$BUILTINS"

log "musl 1.2.3 (libc for the target, in the sysroot)"
mkdir -p musl-build
(
	cd musl-build
	../musl-1.2.3/configure --target="$TARGET" --prefix=/usr --syslibdir=/usr/lib \
		CC=clang CFLAGS="$XFLAGS" LDFLAGS="-fuse-ld=lld" \
		LIBCC="$BUILTINS" AR=llvm-ar RANLIB=llvm-ranlib >/dev/null
	make -j"$JOBS" >/dev/null
	make DESTDIR="$SYSROOT" install >/dev/null
)

log "libunwind, libc++abi, libc++ for $TARGET"
RT_LDFLAGS="-fuse-ld=lld --rtlib=compiler-rt --unwindlib=none"
cmake -G Ninja -S "$llvm/runtimes" -B runtimes -Wno-dev \
	-DLLVM_ENABLE_RUNTIMES="libunwind;libcxxabi;libcxx" \
	-DCMAKE_BUILD_TYPE=Release -DCMAKE_INSTALL_PREFIX=/usr \
	-DCMAKE_C_COMPILER=clang -DCMAKE_CXX_COMPILER=clang++ -DCMAKE_ASM_COMPILER=clang \
	-DCMAKE_C_COMPILER_TARGET="$TARGET" -DCMAKE_CXX_COMPILER_TARGET="$TARGET" -DCMAKE_ASM_COMPILER_TARGET="$TARGET" \
	-DCMAKE_SYSROOT="$SYSROOT" \
	-DCMAKE_AR="$(command -v llvm-ar)" -DCMAKE_RANLIB="$(command -v llvm-ranlib)" -DCMAKE_NM="$(command -v llvm-nm)" \
	-DCMAKE_C_FLAGS="$XFLAGS" -DCMAKE_CXX_FLAGS="$XFLAGS" -DCMAKE_ASM_FLAGS="$XFLAGS" \
	-DCMAKE_EXE_LINKER_FLAGS="$RT_LDFLAGS" -DCMAKE_SHARED_LINKER_FLAGS="$RT_LDFLAGS" \
	-DCMAKE_TRY_COMPILE_TARGET_TYPE=STATIC_LIBRARY \
	-DLLVM_INCLUDE_TESTS=OFF -DLIBCXX_INCLUDE_TESTS=OFF -DLIBCXX_INCLUDE_BENCHMARKS=OFF \
	-DLIBCXXABI_INCLUDE_TESTS=OFF -DLIBUNWIND_INCLUDE_TESTS=OFF \
	-DLIBUNWIND_USE_COMPILER_RT=ON \
	-DLIBCXXABI_USE_COMPILER_RT=ON -DLIBCXXABI_USE_LLVM_UNWINDER=ON \
	-DLIBCXXABI_HAS_CXA_THREAD_ATEXIT_IMPL=OFF \
	-DLIBCXX_USE_COMPILER_RT=ON -DLIBCXX_HAS_MUSL_LIBC=ON -DLIBCXX_HAS_ATOMIC_LIB=OFF -DLIBCXX_CXX_ABI=libcxxabi \
	-DLIBCXX_ENABLE_STATIC_ABI_LIBRARY=ON -DCMAKE_POSITION_INDEPENDENT_CODE=ON >/dev/null
quiet ninja -C runtimes -j "$JOBS"
DESTDIR="$SYSROOT" quiet ninja -C runtimes install

log "wrappers: $TARGET-clang and friends in $TOOLS"
CLANG="$(command -v clang)"
cat > "$TOOLS/$TARGET-clang" <<WRAP
#!/bin/sh
# The stage1 cross compiler for $TARGET: the seed's clang with the target's sysroot,
# compiler-rt, libunwind and lld.
exec "$CLANG" --target=$TARGET --sysroot=$SYSROOT --rtlib=compiler-rt --unwindlib=libunwind -fuse-ld=lld "\$@"
WRAP
cat > "$TOOLS/$TARGET-clang++" <<WRAP
#!/bin/sh
# The stage1 cross compiler for $TARGET (C++): as $TARGET-clang, with libc++.
exec "$CLANG++" --target=$TARGET --sysroot=$SYSROOT --rtlib=compiler-rt --unwindlib=libunwind --stdlib=libc++ -fuse-ld=lld "\$@"
WRAP
chmod 755 "$TOOLS/$TARGET-clang" "$TOOLS/$TARGET-clang++"
ln -sf "$TARGET-clang" "$TOOLS/$TARGET-cc"
ln -sf "$TARGET-clang++" "$TOOLS/$TARGET-c++"
for t in ar ranlib nm strip objcopy objdump readelf size strings; do
	ln -sf "$(command -v llvm-$t)" "$TOOLS/$TARGET-$t"
done
ln -sf "$(command -v ld.lld)" "$TOOLS/$TARGET-ld"

log "proof: static C and C++ programs for $TARGET, built and run"
mkdir -p proof
cat > proof/hello.c <<'C'
#include <stdio.h>
int main(void) { printf("hello from C on %s\n", TARGET); return 0; }
C
cat > proof/hello.cpp <<'CPP'
#include <iostream>
#include <stdexcept>
#include <string>
#include <vector>
int main() {
	std::vector<std::string> words{"hello", "from", "C++"};
	try {
		throw std::runtime_error("and exceptions unwind");
	} catch (const std::exception &e) {
		for (const auto &w : words) std::cout << w << ' ';
		std::cout << e.what() << '\n';
	}
	return 0;
}
CPP
"$TOOLS/$TARGET-clang" -DTARGET="\"$TARGET\"" -static -O2 proof/hello.c -o proof/hello-c
"$TOOLS/$TARGET-clang++" -static -O2 proof/hello.cpp -o proof/hello-cpp
for p in proof/hello-c proof/hello-cpp; do
	file "$p"
	file "$p" | grep -q "statically linked" || { echo "$p is not static" >&2; exit 1; }
done
out_c="$(./proof/hello-c)"; out_cpp="$(./proof/hello-cpp)"
echo "$out_c"; echo "$out_cpp"
[ "$out_c" = "hello from C on $TARGET" ] && [ "$out_cpp" = "hello from C++ and exceptions unwind" ] || {
	echo "stage1: the proof programs printed the wrong thing" >&2; exit 1; }

cd /
rm -rf "$W"
log "stage1 done: $TOOLS/$TARGET-clang"
