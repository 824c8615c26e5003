# stage2.5: natively, inside stage2, rebuild what stage3 builds with: make and tcc, both by
# stage2's tcc. Runs with busybox's sh, on the target (under qemu on a foreign host).
. /recipe/lib.sh
clear_flags
W=/tmp/stage2.5
mkdir -p "$W"

log "make 4.3 by tcc"
cp -a /usr/src/make-4.3 "$W/make"
(
	cd "$W/make"
	quiet ./configure --prefix=/usr --disable-nls --without-guile CC=tcc LD=tcc CFLAGS=-O2
	quiet make -j"$JOBS"
	quiet make CONFIG_strip=no install
)

log "tcc by tcc"
cp -a /usr/src/tcc "$W/tcc"
(
	cd "$W/tcc"
	quiet ./configure --prefix=/usr --cc=tcc --config-musl --sysincludepaths=/usr/include --libpaths=/usr/lib --crtprefix=/usr/lib
	quiet make tcc && quiet make libtcc1.a BT_O= # no backtrace objects: see stage2.sh
	quiet make CONFIG_strip=no install
)

log "proof: the new make and tcc"
make --version | head -n 1
tcc -v
printf '#include <stdio.h>\nint main(void) { puts("hello from stage2.5"); return 0; }\n' > "$W/hello.c"
tcc -o "$W/hello" "$W/hello.c"
[ "$("$W/hello")" = "hello from stage2.5" ]
rm -rf "$W"
log "stage2.5 done"
