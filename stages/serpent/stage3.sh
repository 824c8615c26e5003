# stage3: the self-hosting root, built natively on the target inside stage2.5, into /out.
# - tcc rebuilt by itself until two generations are byte-identical (checked);
# - make rebuilt by that tcc;
# - what tcc cannot build is carried from stage2, and the manifest says so and why.
# Each component is installed into a directory of its own, /pkgs/NAME (its package, with
# /pkgs/NAME.json), and the root's /usr is their union (the image names what is in none); the
# sources stage4 rebuilds from are packages too (tcc-source, make-source), not in the root.
. /recipe/lib.sh
. /recipe/native.sh
clear_flags
OUT=/out
PKGS=/pkgs
W=/tmp/stage3
mkdir -p "$W" "$PKGS"

log "usrmerge layout in $OUT"
usrmerge_root "$OUT"

log "tcc, generation 1: built by stage2.5's tcc"
tcc_gen 1 tcc
tcc_fixed_point stage3
TCC="$W/tcc-$next"
package tcc "$tccver" tcc "musl"
(cd "$W/gen-$next" && quiet make DESTDIR="$PKGS/tcc" CONFIG_strip=no install)
# tcc is also the archiver (stage2's wrapper, carried as it is).
cp -a /usr/bin/ar "$PKGS/tcc/usr/bin/ar"

log "make 4.3 by the fixed-point tcc"
make_by "$TCC"

log "the sources stage4 rebuilds tcc and make from, as stage2 prepared them"
package tcc-source "$tccver" tcc ""
mkdir -p "$PKGS/tcc-source/usr/src" "$PKGS/make-source/usr/src"
cp -a /usr/src/tcc "$PKGS/tcc-source/usr/src/tcc"
package make-source 4.3 "make make-debian-diff" ""
cp -a /usr/src/make-4.3 "$PKGS/make-source/usr/src/make-4.3"

log "carried from stage2: musl, busybox, kernel headers"
# musl: libc, loader, start files, headers. tcc cannot build musl on aarch64 (no inline
# assembler for it) and needs patches for it on x86_64.
package musl 1.2.3 musl ""
mkdir -p "$PKGS/musl/usr/lib" "$PKGS/musl/usr/include"
for f in /usr/lib/libc.so /usr/lib/libc.a /usr/lib/crt1.o /usr/lib/crti.o /usr/lib/crtn.o /usr/lib/Scrt1.o /usr/lib/rcrt1.o \
	/usr/lib/libm.a /usr/lib/libpthread.a /usr/lib/librt.a /usr/lib/libdl.a /usr/lib/libutil.a /usr/lib/libxnet.a \
	/usr/lib/libresolv.a /usr/lib/libcrypt.a; do
	[ -e "$f" ] && cp -a "$f" "$PKGS/musl$f"
done
ln -sf libc.so "$PKGS/musl/usr/lib/ld-musl-$SERPENT_TARGET_MUSL_ARCH.so.1"
# The headers: the kernel's directories are what stage2 copied from stage1's sysroot (its
# list), but for the three scsi headers musl installs over them; the rest is musl's.
package linux-uapi-headers 6.1.170 linux ""
mkdir -p "$PKGS/linux-uapi-headers/usr/include"
for d in /usr/include/*; do
	case "${d##*/}" in
	linux | asm | asm-generic | mtd | rdma | scsi | sound | video | xen | drm | misc)
		cp -a "$d" "$PKGS/linux-uapi-headers/usr/include/" ;;
	libtcc.h | gnumake.h) ;; # tcc's and make's, in their packages
	*) cp -a "$d" "$PKGS/musl/usr/include/" ;;
	esac
done
mkdir -p "$PKGS/musl/usr/include/scsi"
for h in scsi.h scsi_ioctl.h sg.h; do
	mv "$PKGS/linux-uapi-headers/usr/include/scsi/$h" "$PKGS/musl/usr/include/scsi/$h"
done
# busybox: the shell and core utilities. tcc stops on its inline-assembly barriers (aarch64).
# Its applets' links are in /usr (usrmerge), but for /linuxrc, which only the root has.
package busybox 1.35.0 busybox "musl"
mkdir -p "$PKGS/busybox/usr/bin" "$PKGS/busybox/usr/sbin"
cp -a /usr/bin/busybox "$PKGS/busybox/usr/bin/busybox"
for applet in $(/usr/bin/busybox --list-full); do
	case "$applet" in
	bin/* | sbin/*) dst="usr/$applet" ;;
	usr/*) dst="$applet" ;;
	*) [ -e "$OUT/$applet" ] || [ -L "$OUT/$applet" ] || ln -s /usr/bin/busybox "$OUT/$applet"; continue ;;
	esac
	[ -e "$PKGS/tcc/$dst" ] || [ -e "$PKGS/make/$dst" ] || [ -e "$PKGS/busybox/$dst" ] || [ -L "$PKGS/busybox/$dst" ] ||
		ln -s /usr/bin/busybox "$PKGS/busybox/$dst"
done

log "the root's /usr: the union of the packages"
for p in tcc make musl linux-uapi-headers busybox; do
	cp -a "$PKGS/$p/usr/." "$OUT/usr/"
done
cp -a /etc/passwd /etc/group /etc/hosts "$OUT/etc/"
sed 's/^VERSION_ID=.*/VERSION_ID=stage3/; s/stage2/stage3/' /etc/os-release > "$OUT/etc/os-release"
for n in "null 1 3 666" "zero 1 5 666" "full 1 7 666" "random 1 8 666" "urandom 1 9 666" "tty 5 0 666" "console 5 1 600" "ptmx 5 2 666"; do
	set -- $n
	mknod -m "$4" "$OUT/dev/$1" c "$2" "$3"
done

log "component manifest"
cat > "$OUT/usr/share/serpent/components.json" <<J
{
  "target": "$TARGET",
  "components": [
    {"name": "tcc", "version": "$tccver", "stage": "stage3", "built_by": "tcc generation $gen (fixed point: generations $gen and $next byte-identical)", "native": true},
    {"name": "make", "version": "4.3", "stage": "stage3", "built_by": "tcc $tccver (stage3, fixed point)", "native": true},
    {"name": "musl", "version": "1.2.3", "stage": "stage2", "built_by": "clang 14.0.6 (stage1 cross toolchain)", "native": false,
     "carried_because": "tcc has no inline assembler for every architecture musl needs one for, and musl needs patches to build with tcc"},
    {"name": "busybox", "version": "1.35.0", "stage": "stage2", "built_by": "clang 14.0.6 (stage1 cross toolchain)", "native": false,
     "carried_because": "busybox's libbb.h uses inline-assembly barriers and array-size checks that tcc rejects"},
    {"name": "linux-uapi-headers", "version": "6.1.170", "stage": "stage1", "built_by": "make headers_install", "native": false,
     "carried_because": "headers only: nothing to compile"}
  ]
}
J

log "proof: stage3 compiles and runs a C program inside itself"
cat > "$OUT/tmp/selfhost.c" <<'C'
#include <stdio.h>
#include <string.h>
int main(void) { char buf[32]; strcpy(buf, "self-hosting"); printf("%s on %s\n", buf, TARGET); return 0; }
C
chroot "$OUT" /usr/bin/tcc -DTARGET="\"$TARGET\"" -o /tmp/selfhost /tmp/selfhost.c
out="$(chroot "$OUT" /tmp/selfhost)"
echo "$out"
[ "$out" = "self-hosting on $TARGET" ]
chroot "$OUT" /usr/bin/make --version | head -n 1
rm -f "$OUT/tmp/selfhost" "$OUT/tmp/selfhost.c"
rm -rf "$W"
log "stage3 done"
