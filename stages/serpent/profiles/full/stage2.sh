# stage2 (full profile): a minimal musl root for the target, cross-built on the host by stage1
# into /out (usrmerge), with the llvm stage's toolchain and stage1's runtimes: the chroot of
# Serpent's 2020 milestone, "a complete LLVM based toolchain" with C and C++.
. /recipe/lib.sh
clear_flags

PATH="/serpent/bin:$PATH"
for d in /usr/lib/llvm-*/bin; do [ -d "$d" ] && PATH="$PATH:$d"; done
export PATH
SYSROOT=/serpent/sysroot
LLVM=/serpent/llvm
OUT=/out
W=/tmp/stage2
CC="$TARGET-clang"
ARCH="$SERPENT_TARGET_ARCH"
command -v "$CC" >/dev/null || { echo "stage2: $CC is missing: stage2 runs in stage1" >&2; exit 1; }
[ -x "$LLVM/usr/bin/clang-14" ] || { echo "stage2: $LLVM has no clang: the full stage2 runs in the llvm stage" >&2; exit 1; }
mkdir -p "$W"
cd "$W"

log "usrmerge layout in $OUT"
mkdir -p "$OUT/usr/bin" "$OUT/usr/sbin" "$OUT/usr/lib" "$OUT/usr/include" "$OUT/usr/share" "$OUT/usr/src" \
	"$OUT/etc" "$OUT/dev" "$OUT/proc" "$OUT/sys" "$OUT/run" "$OUT/var/tmp" "$OUT/root" "$OUT/home"
install -d -m 1777 "$OUT/tmp"
ln -s usr/bin "$OUT/bin"
ln -s usr/sbin "$OUT/sbin"
ln -s usr/lib "$OUT/lib"

log "Linux UAPI headers (from stage1's sysroot)"
for d in "$SYSROOT"/usr/include/*; do
	case "${d##*/}" in linux | asm | asm-generic | mtd | rdma | scsi | sound | video | xen | drm | misc)
		cp -a "$d" "$OUT/usr/include/" ;;
	esac
done

log "musl 1.2.3 (dynamic loader in /usr/lib)"
unpack /sources/musl-1.2.3.tar.gz
mkdir -p musl-build
(
	cd musl-build
	quiet ../musl-1.2.3/configure --target="$TARGET" --prefix=/usr --syslibdir=/usr/lib \
		CC="$CC" CFLAGS="$SERPENT_TARGET_CFLAGS" \
		LIBCC="$("$CC" -print-libgcc-file-name)" AR="$TARGET-ar" RANLIB="$TARGET-ranlib"
	quiet make -j"$JOBS"
	quiet make DESTDIR="$OUT" install
)
ln -sf libc.so "$OUT/usr/lib/ld-musl-$SERPENT_TARGET_MUSL_ARCH.so.1"

log "the LLVM toolchain (clang, lld, libLLVM, binary tools) from the llvm stage"
cp -a "$LLVM/usr/." "$OUT/usr/"

log "runtimes from stage1's sysroot: libunwind, libc++abi, libc++, compiler-rt builtins and crt"
for lib in libunwind libc++abi libc++; do
	cp -a "$SYSROOT/usr/lib/$lib".* "$OUT/usr/lib/"
done
cp -a "$SYSROOT/usr/include/c++" "$OUT/usr/include/"
for h in unwind.h libunwind.h __libunwind_config.h; do
	[ -e "$SYSROOT/usr/include/$h" ] && cp -a "$SYSROOT/usr/include/$h" "$OUT/usr/include/"
done
resource=/usr/lib/clang/14.0.6 # the new clang's resource directory: its headers are there
[ -d "$OUT$resource/include" ] || { echo "stage2: the llvm stage installed no $resource/include" >&2; exit 1; }
builtins_dir="$(dirname "$("$CC" -print-libgcc-file-name)")"
mkdir -p "$OUT$resource/lib/linux"
for f in "libclang_rt.builtins-$ARCH.a" "clang_rt.crtbegin-$ARCH.o" "clang_rt.crtend-$ARCH.o"; do
	cp -a "$builtins_dir/$f" "$OUT$resource/lib/linux/"
done

log "zlib 1.2.13 (Debian's dfsg repack)"
unpack /sources/zlib_1.2.13.dfsg.orig.tar.bz2
(
	cd zlib-1.2.13.dfsg
	CHOST="$TARGET" CC="$CC" AR="$TARGET-ar" RANLIB="$TARGET-ranlib" CFLAGS="$SERPENT_TARGET_CFLAGS -fPIC" \
		quiet ./configure --prefix=/usr --libdir=/usr/lib
	quiet make -j"$JOBS"
	quiet make DESTDIR="$OUT" install
	rm -rf "$OUT/usr/share/man"
)

log "busybox 1.35.0 (shell and core utilities)"
unpack /sources/busybox-1.35.0.tar.bz2
(
	cd busybox-1.35.0
	quiet make -s defconfig HOSTCC=clang
	for opt in TC FEATURE_HAVE_RPC FEATURE_INETD_RPC FEATURE_MOUNT_NFS SELINUX PAM; do
		sed -i "s/^CONFIG_$opt=y/# CONFIG_$opt is not set/" .config
	done
	quiet make -s oldconfig HOSTCC=clang </dev/null
	bbflags="$SERPENT_TARGET_CFLAGS -Wno-ignored-optimization-argument -Wno-unused-command-line-argument"
	quiet make -j"$JOBS" HOSTCC=clang CROSS_COMPILE="$TARGET-" CC="$CC" EXTRA_CFLAGS="$bbflags" busybox
	# busybox's install links its applets; the LLVM tools keep their own names.
	quiet make HOSTCC=clang CROSS_COMPILE="$TARGET-" CC="$CC" EXTRA_CFLAGS="$bbflags" CONFIG_PREFIX="$W/bb" install
	for f in "$W"/bb/bin/* "$W"/bb/sbin/* "$W"/bb/usr/bin/* "$W"/bb/usr/sbin/*; do
		name="${f##*/}"
		case "$name" in ar | strings | readelf | nm | size | strip) continue ;; esac
		dir="$OUT/usr/bin"; case "$f" in */sbin/*) dir="$OUT/usr/sbin" ;; esac
		[ -e "$dir/$name" ] || cp -a "$f" "$dir/"
	done
)

log "make 4.3 (Debian's make-dfsg)"
mkdir -p make-src
cp /sources/make-dfsg_4.3-4.1.dsc /sources/make-dfsg_4.3.orig.tar.gz /sources/make-dfsg_4.3-4.1.diff.gz make-src/
(
	cd make-src
	quiet dpkg-source --no-check -x make-dfsg_4.3-4.1.dsc make-4.3
	cd make-4.3
	quiet autoreconf -fi
	rm -rf autom4te.cache
	cp -a . "$OUT/usr/src/make-4.3"
	quiet ./configure --host="$TARGET" --prefix=/usr --disable-nls --without-guile CC="$CC" CFLAGS="$SERPENT_TARGET_CFLAGS"
	quiet make -j"$JOBS"
	quiet make DESTDIR="$OUT" install
)

log "cc, c++, ld and the binutils names are the LLVM tools"
for pair in cc:clang c++:clang++ cpp:clang-cpp ld:ld.lld ar:llvm-ar ranlib:llvm-ranlib nm:llvm-nm \
	objcopy:llvm-objcopy objdump:llvm-objdump readelf:llvm-readelf strip:llvm-strip size:llvm-size \
	strings:llvm-strings; do
	ln -sf "${pair#*:}" "$OUT/usr/bin/${pair%%:*}"
done
[ -e "$OUT/usr/bin/clang-cpp" ] || ln -sf clang "$OUT/usr/bin/clang-cpp"

log "files a chroot needs"
cat > "$OUT/etc/passwd" <<'F'
root:x:0:0:root:/root:/bin/sh
nobody:x:65534:65534:nobody:/:/bin/false
F
cat > "$OUT/etc/group" <<'F'
root:x:0:
tty:x:5:
nogroup:x:65534:
F
echo "127.0.0.1 localhost" > "$OUT/etc/hosts"
cat > "$OUT/etc/os-release" <<F
NAME="Serpent OS bootstrap"
ID=serpent
VERSION_ID=stage2
PRETTY_NAME="Serpent OS bootstrap stage2, full profile ($ARCH)"
F
for n in "null c 1 3 666" "zero c 1 5 666" "full c 1 7 666" "random c 1 8 666" "urandom c 1 9 666" "tty c 5 0 666" "console c 5 1 600" "ptmx c 5 2 666"; do
	set -- $n
	mknod -m "$5" "$OUT/dev/$1" "$2" "$3" "$4"
done

log "proof: clang compiles and runs C and C++ inside the new root"
cat > "$OUT/tmp/hello.c" <<'C'
#include <stdio.h>
#include <zlib.h>
int main(void) { printf("hello from C, zlib %s\n", zlibVersion()); return 0; }
C
cat > "$OUT/tmp/hello.cpp" <<'CPP'
#include <iostream>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>
int main() {
	std::vector<std::string> words;
	std::thread worker([&] { words = {"hello", "from", "C++"}; });
	worker.join();
	try {
		throw std::runtime_error("exceptions unwind, threads join");
	} catch (const std::exception &e) {
		for (const auto &w : words) std::cout << w << ' ';
		std::cout << e.what() << '\n';
	}
	return 0;
}
CPP
chroot "$OUT" /usr/bin/cc -O2 -o /tmp/hello-c /tmp/hello.c -lz
chroot "$OUT" /usr/bin/c++ -O2 -o /tmp/hello-cpp /tmp/hello.cpp
out_c="$(chroot "$OUT" /tmp/hello-c)"; out_cpp="$(chroot "$OUT" /tmp/hello-cpp)"
echo "$out_c"; echo "$out_cpp"
[ "$out_c" = "hello from C, zlib 1.2.13" ] && [ "$out_cpp" = "hello from C++ exceptions unwind, threads join" ] || {
	echo "stage2: the proof programs printed the wrong thing" >&2; exit 1; }
file "$OUT/tmp/hello-c" "$OUT/tmp/hello-cpp" "$OUT/usr/bin/clang-14" "$OUT/usr/bin/busybox"
for p in "$OUT/tmp/hello-c" "$OUT/tmp/hello-cpp"; do
	file "$p" | grep -q "interpreter /usr/lib/ld-musl-$SERPENT_TARGET_MUSL_ARCH.so.1" ||
		{ echo "stage2: $p does not use musl's loader in /usr/lib" >&2; exit 1; }
done
rm -f "$OUT"/tmp/hello*
cd /
rm -rf "$W"
log "stage2 done"
