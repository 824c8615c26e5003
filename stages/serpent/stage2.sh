# stage2: a minimal musl root for the target, cross-built on the host by stage1 into /out
# (a usrmerge layout), which becomes a new image for the target: musl with its dynamic loader in
# /usr/lib, busybox (the shell and core utilities), make, and tcc as the native C compiler.
#
# The small profile departs from the original here: Serpent's 2020 stage2 cross-built LLVM
# itself, which costs hours on two cores; tcc builds in seconds and is enough to make the rest
# of the bootstrap native. The full profile cross-builds clang here.
. /recipe/lib.sh
clear_flags

PATH="/serpent/bin:$PATH"
for d in /usr/lib/llvm-*/bin; do [ -d "$d" ] && PATH="$PATH:$d"; done
export PATH
SYSROOT=/serpent/sysroot
OUT=/out
W=/tmp/stage2
CC="$TARGET-clang"
command -v "$CC" >/dev/null || { echo "stage2: $CC is missing: stage2 runs in stage1" >&2; exit 1; }
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
# musl links its loader to /usr/lib/libc.so by absolute path: make it relative, so that the
# root works wherever it is mounted.
ln -sf libc.so "$OUT/usr/lib/ld-musl-$SERPENT_TARGET_MUSL_ARCH.so.1"

log "busybox 1.35.0 (shell and core utilities)"
unpack /sources/busybox-1.35.0.tar.bz2
(
	cd busybox-1.35.0
	quiet make -s defconfig HOSTCC=clang
	# Not for a build root: network daemons and applets that need kernel headers musl lacks.
	for opt in TC FEATURE_HAVE_RPC FEATURE_INETD_RPC FEATURE_MOUNT_NFS SELINUX PAM; do
		sed -i "s/^CONFIG_$opt=y/# CONFIG_$opt is not set/" .config
	done
	quiet make -s oldconfig HOSTCC=clang </dev/null
	bbflags="$SERPENT_TARGET_CFLAGS -Wno-ignored-optimization-argument -Wno-unused-command-line-argument"
	quiet make -j"$JOBS" HOSTCC=clang CROSS_COMPILE="$TARGET-" CC="$CC" EXTRA_CFLAGS="$bbflags" busybox
	# The same variables again, or install rebuilds everything.
	quiet make HOSTCC=clang CROSS_COMPILE="$TARGET-" CC="$CC" EXTRA_CFLAGS="$bbflags" CONFIG_PREFIX="$OUT" install
)

log "make 4.3 (Debian's make-dfsg: its configure only regenerates with Debian's diff applied)"
mkdir -p make-src
cp /sources/make-dfsg_4.3-4.1.dsc /sources/make-dfsg_4.3.orig.tar.gz /sources/make-dfsg_4.3-4.1.diff.gz make-src/
(
	cd make-src
	quiet dpkg-source --no-check -x make-dfsg_4.3-4.1.dsc make-4.3
	cd make-4.3
	quiet autoreconf -fi
	# autom4te's cache is a Perl dump whose hash order changes from run to run (found by
	# comparing two builds): nothing needs it once configure exists.
	rm -rf autom4te.cache
	# Kept for stage2.5 and stage3, which rebuild make natively and have no autotools.
	cp -a . "$OUT/usr/src/make-4.3"
	quiet ./configure --host="$TARGET" --prefix=/usr --disable-nls --without-guile CC="$CC" CFLAGS="$SERPENT_TARGET_CFLAGS"
	quiet make -j"$JOBS"
	quiet make DESTDIR="$OUT" install
)

log "tcc 0.9.27+git20200814 (Debian's snapshot): the target's native C compiler"
mkdir tcc # Debian's snapshot tarball has no top directory
(
	cd tcc
	unpack /sources/tcc_0.9.27+git20200814.62c30a4a.orig.tar.bz2
	for p in /recipe/patches/tcc-*.patch; do quiet patch -p1 -i "$p"; done
	cp -a . "$OUT/usr/src/tcc"
	quiet ./configure --prefix=/usr --cc="$CC" --cpu="$SERPENT_TARGET_ARCH" --config-musl \
		--sysincludepaths=/usr/include --libpaths=/usr/lib --crtprefix=/usr/lib \
		--extra-cflags="$SERPENT_TARGET_CFLAGS" --extra-ldflags=-static
	quiet make tcc
	# The runtime library, compiled by the new tcc itself (a static binary: it runs here under
	# qemu) against the target's headers. Without the backtrace objects: their signal.h needs
	# __uint128_t on aarch64, which tcc lacks (tcc links them only for -bt).
	quiet make libtcc1.a BT_O= XCC="$PWD/tcc -nostdinc -I$PWD/include -I$SYSROOT/usr/include" XAR="$PWD/tcc -ar"
	quiet make DESTDIR="$OUT" CONFIG_strip=no install
)
# tcc is also the archiver; build systems call it ar.
cat > "$OUT/usr/bin/ar" <<'F'
#!/bin/sh
exec tcc -ar "$@"
F
chmod 755 "$OUT/usr/bin/ar"

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
PRETTY_NAME="Serpent OS bootstrap stage2 ($SERPENT_TARGET_ARCH)"
F
# Device nodes, for using the root with plain chroot (containers mount their own /dev).
for n in "null c 1 3 666" "zero c 1 5 666" "full c 1 7 666" "random c 1 8 666" "urandom c 1 9 666" "tty c 5 0 666" "console c 5 1 600" "ptmx c 5 2 666"; do
	set -- $n
	mknod -m "$5" "$OUT/dev/$1" "$2" "$3" "$4"
done

log "proof: tcc compiles and runs a C program inside the new root"
cat > "$OUT/tmp/hello.c" <<'C'
#include <stdio.h>
int main(void) { printf("hello from tcc\n"); return 0; }
C
chroot "$OUT" /usr/bin/tcc -o /tmp/hello /tmp/hello.c
out="$(chroot "$OUT" /tmp/hello)"
echo "$out"
[ "$out" = "hello from tcc" ] || { echo "stage2: tcc's program printed '$out'" >&2; exit 1; }
file "$OUT/tmp/hello" "$OUT/usr/bin/busybox" "$OUT/usr/bin/make"
rm -f "$OUT/tmp/hello" "$OUT/tmp/hello.c"
cd /
rm -rf "$W"
log "stage2 done"
