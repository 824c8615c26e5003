# stage4: the rebootstrap, natively on the target in a root assembled from stage3's packages
# (/recipe/packages/NAME.json and NAME.files say what each is, /packages/NAME holds its
# tree). tcc and make are rebuilt from the source packages; what tcc cannot build is carried,
# package by package; /out is the root of the rebuilt and carried packages, as stage3's is of
# its own.
. /recipe/lib.sh
. /recipe/native.sh
clear_flags
OUT=/out
PKGS=/pkgs
W=/tmp/stage4
mkdir -p "$W" "$PKGS"

log "usrmerge layout in $OUT"
usrmerge_root "$OUT"

log "tcc, generation 1: built by stage3's tcc (the package)"
tcc_gen 1 tcc
tcc_fixed_point stage4
if cmp -s "$W/gen-1/tcc" /usr/bin/tcc; then
	log "generation 1 is byte-identical to stage3's tcc"
else
	log "generation 1 differs from stage3's tcc"
fi
TCC="$W/tcc-$next"
package tcc "$tccver" tcc "musl"
(cd "$W/gen-$next" && quiet make DESTDIR="$PKGS/tcc" CONFIG_strip=no install)
cp -a /usr/bin/ar "$PKGS/tcc/usr/bin/ar" # the archiver is tcc's wrapper

log "make 4.3 by the fixed-point tcc"
make_by "$TCC"

# carry NAME: the package NAME of the root as it is: its tree (bound at /packages/NAME) and
# its NAME.json.
carry() {
	log "carried: $1 ($(wc -l < "/recipe/packages/$1.files") files)"
	mkdir -p "$PKGS/$1"
	cp -a "/packages/$1/." "$PKGS/$1/"
	cp "/recipe/packages/$1.json" "$PKGS/$1.json"
}
for p in musl busybox linux-uapi-headers tcc-source make-source; do
	carry "$p"
done

log "the root's /usr: the union of the packages but the sources"
for p in tcc make musl linux-uapi-headers busybox; do
	cp -a "$PKGS/$p/usr/." "$OUT/usr/"
done
cp -a /etc/passwd /etc/group /etc/hosts "$OUT/etc/"
ln -s /usr/bin/busybox "$OUT/linuxrc"
for n in "null 1 3 666" "zero 1 5 666" "full 1 7 666" "random 1 8 666" "urandom 1 9 666" "tty 5 0 666" "console 5 1 600" "ptmx 5 2 666"; do
	set -- $n
	mknod -m "$4" "$OUT/dev/$1" c "$2" "$3"
done

log "proof: stage4 compiles and runs a C program inside itself"
printf '#include <stdio.h>\nint main(void) { puts("rebootstrapped"); return 0; }\n' > "$OUT/tmp/t.c"
chroot "$OUT" /usr/bin/tcc -o /tmp/t /tmp/t.c
[ "$(chroot "$OUT" /tmp/t)" = rebootstrapped ]
chroot "$OUT" /usr/bin/make --version | head -n 1
rm -f "$OUT/tmp/t" "$OUT/tmp/t.c"
rm -rf "$W"
log "stage4 done"
