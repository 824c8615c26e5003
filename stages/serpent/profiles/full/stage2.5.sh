# stage2.5 (full profile): natively, inside stage2, rebuild make with stage2's clang. Runs with
# busybox's sh, on the target (under qemu on a foreign host).
. /recipe/lib.sh
clear_flags
W=/tmp/stage2.5
mkdir -p "$W"

log "make 4.3 by clang"
cp -a /usr/src/make-4.3 "$W/make"
(
	cd "$W/make"
	quiet ./configure --prefix=/usr --disable-nls --without-guile CC=cc CFLAGS="$SERPENT_TARGET_CFLAGS"
	quiet make -j"$JOBS"
	quiet make install
)

log "proof: the new make, and clang for C and C++"
make --version | head -n 1
cc --version | head -n 1
printf '#include <stdio.h>\nint main(void) { puts("hello from stage2.5"); return 0; }\n' > "$W/hello.c"
cc -O2 -o "$W/hello" "$W/hello.c"
[ "$("$W/hello")" = "hello from stage2.5" ]
rm -rf "$W"
log "stage2.5 done"
