# stage3 (full profile): the root filesystem, built natively in /out by stage2's clang inside
# stage2.5 (busybox's sh; under qemu on a foreign host). Everything is built here except the
# LLVM toolchain and its runtimes, carried from stage2 and listed as carried.
. /recipe/lib.sh
clear_flags
OUT=/out
W=/tmp/stage3
ARCH="$SERPENT_TARGET_ARCH"
CFLAGS="$SERPENT_TARGET_CFLAGS"
export CC=cc CXX=c++
mkdir -p "$W"
cd "$W"
components=""
# built NAME VERSION BUILT_BY and carried NAME VERSION STAGE BUILT_BY WHY add an entry to the
# component manifest (the small profile's schema: carried components say why).
built() {
	components="$components
    {\"name\": \"$1\", \"version\": \"$2\", \"stage\": \"stage3\", \"built_by\": \"$3\", \"native\": true},"
}
carried() {
	components="$components
    {\"name\": \"$1\", \"version\": \"$2\", \"stage\": \"$3\", \"built_by\": \"$4\", \"native\": false,
     \"carried_because\": \"$5\"},"
}

log "usrmerge layout in $OUT"
mkdir -p "$OUT/usr/bin" "$OUT/usr/sbin" "$OUT/usr/lib" "$OUT/usr/include" "$OUT/usr/share/serpent" \
	"$OUT/etc" "$OUT/dev" "$OUT/proc" "$OUT/sys" "$OUT/run" "$OUT/var/tmp" "$OUT/root" "$OUT/home"
mkdir -p "$OUT/tmp" && chmod 1777 "$OUT/tmp"
ln -s usr/bin "$OUT/bin"
ln -s usr/sbin "$OUT/sbin"
ln -s usr/lib "$OUT/lib"

log "musl 1.2.3"
unpack /sources/musl-1.2.3.tar.gz
(
	cd musl-1.2.3
	quiet ./configure --prefix=/usr --syslibdir=/usr/lib CFLAGS="$CFLAGS"
	quiet make -j"$JOBS"
	quiet make DESTDIR="$OUT" install
)
ln -sf libc.so "$OUT/usr/lib/ld-musl-$SERPENT_TARGET_MUSL_ARCH.so.1"
built musl 1.2.3 "clang 14.0.6 (stage2, native)"

log "zlib 1.2.13"
unpack /sources/zlib_1.2.13.dfsg.orig.tar.bz2
(
	cd zlib-1.2.13.dfsg
	CFLAGS="$CFLAGS -fPIC" quiet ./configure --prefix=/usr --libdir=/usr/lib
	quiet make -j"$JOBS"
	quiet make DESTDIR="$OUT" install
	rm -rf "$OUT/usr/share/man"
)
built zlib 1.2.13 "clang 14.0.6 (stage2, native)"

log "xz 5.4.1"
unpack /sources/xz-utils_5.4.1.orig.tar.xz
(
	cd xz-5.4.1
	quiet ./configure --prefix=/usr --libdir=/usr/lib --disable-nls --disable-doc --disable-static CFLAGS="$CFLAGS"
	quiet make -j"$JOBS"
	quiet make DESTDIR="$OUT" install
	rm -rf "$OUT/usr/share/man" "$OUT/usr/share/doc" "$OUT"/usr/lib/*.la
)
built xz 5.4.1 "clang 14.0.6 (stage2, native)"

log "busybox 1.35.0"
unpack /sources/busybox-1.35.0.tar.bz2
(
	cd busybox-1.35.0
	quiet make -s defconfig HOSTCC=cc
	for opt in TC FEATURE_HAVE_RPC FEATURE_INETD_RPC FEATURE_MOUNT_NFS SELINUX PAM XZ UNXZ LZMA UNLZMA; do
		sed -i "s/^CONFIG_$opt=y/# CONFIG_$opt is not set/" .config
	done
	quiet make -s oldconfig HOSTCC=cc </dev/null
	bbflags="$CFLAGS -Wno-ignored-optimization-argument -Wno-unused-command-line-argument"
	quiet make -j"$JOBS" HOSTCC=cc CC=cc EXTRA_CFLAGS="$bbflags" busybox
	# The same flags again: kbuild rebuilds every object whose command line changed.
	quiet make HOSTCC=cc CC=cc EXTRA_CFLAGS="$bbflags" CONFIG_PREFIX="$W/bb" install
	for f in "$W"/bb/bin/* "$W"/bb/sbin/* "$W"/bb/usr/bin/* "$W"/bb/usr/sbin/*; do
		name="${f##*/}"
		case "$name" in ar | strings | readelf | nm | size | strip) continue ;; esac
		dir="$OUT/usr/bin"; case "$f" in */sbin/*) dir="$OUT/usr/sbin" ;; esac
		[ -e "$dir/$name" ] || [ -L "$dir/$name" ] || cp -a "$f" "$dir/"
	done
)
built busybox 1.35.0 "clang 14.0.6 (stage2, native)"

log "make 4.3"
cp -a /usr/src/make-4.3 "$W/make"
(
	cd "$W/make"
	quiet ./configure --prefix=/usr --disable-nls --without-guile CFLAGS="$CFLAGS"
	quiet make -j"$JOBS"
	quiet make DESTDIR="$OUT" install
	rm -rf "$OUT/usr/share/man" "$OUT/usr/share/info"
)
mkdir -p "$OUT/usr/src" && cp -a /usr/src/make-4.3 "$OUT/usr/src/"
built make 4.3 "clang 14.0.6 (stage2, native)"

log "pkgconf 1.8.1"
unpack /sources/pkgconf_1.8.1.orig.tar.xz
(
	cd pkgconf-1.8.1
	quiet ./configure --prefix=/usr --libdir=/usr/lib --disable-static CFLAGS="$CFLAGS"
	quiet make -j"$JOBS"
	quiet make DESTDIR="$OUT" install
	ln -sf pkgconf "$OUT/usr/bin/pkg-config"
	rm -rf "$OUT/usr/share/man" "$OUT/usr/share/doc" "$OUT"/usr/lib/*.la
)
built pkgconf 1.8.1 "clang 14.0.6 (stage2, native)"

log "ninja 1.11.1 (C++, built without its Python bootstrap)"
unpack /sources/ninja-build_1.11.1.orig.tar.gz
(
	cd ninja-1.11.1/src
	objs=""
	for s in build build_log clean clparser debug_flags depfile_parser deps_log disk_interface dyndep \
		dyndep_parser edit_distance eval_env graph graphviz json lexer line_printer manifest_parser metrics \
		missing_deps parser state status string_piece_util util version subprocess-posix ninja; do
		c++ $CFLAGS -std=c++11 -DNDEBUG -D_FILE_OFFSET_BITS=64 -fno-rtti -fno-exceptions -c "$s.cc" -o "$W/$s.o"
		objs="$objs $W/$s.o"
	done
	c++ -o "$OUT/usr/bin/ninja" $objs
)
built ninja 1.11.1 "clang++ 14.0.6 (stage2, native; the C++ self-hosting proof)"

log "the LLVM toolchain and its runtimes, carried from stage2"
for f in /usr/bin/clang* /usr/bin/lld /usr/bin/ld.lld /usr/bin/ld64.lld /usr/bin/lld-link /usr/bin/wasm-ld /usr/bin/llvm-*; do
	[ -e "$f" ] || [ -L "$f" ] && cp -a "$f" "$OUT/usr/bin/"
done
for pair in cc:clang c++:clang++ cpp:clang-cpp ld:ld.lld ar:llvm-ar ranlib:llvm-ranlib nm:llvm-nm \
	objcopy:llvm-objcopy objdump:llvm-objdump readelf:llvm-readelf strip:llvm-strip size:llvm-size strings:llvm-strings; do
	ln -sf "${pair#*:}" "$OUT/usr/bin/${pair%%:*}"
done
cp -a /usr/lib/libLLVM* /usr/lib/libclang-cpp* /usr/lib/libc++* /usr/lib/libunwind* "$OUT/usr/lib/"
cp -a /usr/lib/clang "$OUT/usr/lib/"
cp -a /usr/include/c++ "$OUT/usr/include/"
for h in unwind.h libunwind.h __libunwind_config.h; do [ -e "/usr/include/$h" ] && cp -a "/usr/include/$h" "$OUT/usr/include/"; done
for d in linux asm asm-generic mtd rdma scsi sound video xen drm misc; do
	[ -d "/usr/include/$d" ] && cp -a "/usr/include/$d" "$OUT/usr/include/"
done
carried llvm 14.0.6 llvm "clang 14.0.6 (stage1 cross toolchain, on the host)" \
	"clang, lld and libLLVM are 2,800 compile units: days under qemu on two cores, and the host cross build is the same source"
carried compiler-rt-libunwind-libcxxabi-libcxx 14.0.6 stage1 "clang 14.0.6 (stage1 cross toolchain)" \
	"the runtimes of the carried toolchain, built with it"
carried linux-uapi-headers 6.1.170 stage1 "make headers_install" "headers only: nothing to compile"

log "files a root needs"
cp -a /etc/passwd /etc/group /etc/hosts "$OUT/etc/"
cat > "$OUT/etc/os-release" <<F
NAME="Serpent OS bootstrap"
ID=serpent
VERSION_ID=stage3
PRETTY_NAME="Serpent OS bootstrap stage3, full profile ($ARCH)"
F
printf '{\n  "target": "%s",\n  "components": [%s\n  ]\n}\n' "$TARGET" "${components%,}" > "$OUT/usr/share/serpent/components.json"
# Device nodes, for using the root with plain chroot (the proof below; ninja's subprocesses
# read /dev/null); containers mount their own /dev.
for n in "null 1 3 666" "zero 1 5 666" "full 1 7 666" "random 1 8 666" "urandom 1 9 666" "tty 5 0 666" "console 5 1 600" "ptmx 5 2 666"; do
	set -- $n
	mknod -m "$4" "$OUT/dev/$1" c "$2" "$3"
done

log "proof: C and C++ compiled and run inside the new root, ninja driving the build"
mkdir -p "$OUT/tmp/proof"
cat > "$OUT/tmp/proof/hello.c" <<'C'
#include <stdio.h>
#include <zlib.h>
#include <lzma.h>
int main(void) { printf("hello from C, zlib %s, liblzma %s\n", zlibVersion(), lzma_version_string()); return 0; }
C
cat > "$OUT/tmp/proof/hello.cpp" <<'CPP'
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
cat > "$OUT/tmp/proof/build.ninja" <<'N'
rule cc
  command = cc -O2 $in -o $out -lz -llzma
rule cxx
  command = c++ -O2 $in -o $out
build hello-c: cc hello.c
build hello-cpp: cxx hello.cpp
N
chroot "$OUT" /usr/bin/ninja -C /tmp/proof
out_c="$(chroot "$OUT" /tmp/proof/hello-c)"; out_cpp="$(chroot "$OUT" /tmp/proof/hello-cpp)"
echo "$out_c"; echo "$out_cpp"
[ "$out_c" = "hello from C, zlib 1.2.13, liblzma 5.4.1" ] && [ "$out_cpp" = "C++ in stage3 3" ] || {
	echo "stage3: the proof programs printed the wrong thing" >&2; exit 1; }
rm -rf "$OUT/tmp/proof"
cd /
rm -rf "$W"
log "stage3 done"
