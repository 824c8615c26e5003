# Helpers of the native stages, stage3 and stage4 (sourced after lib.sh; they use $W, $PKGS
# and lib.sh's log and quiet): the usrmerge root, tcc's generations, packages.

# usrmerge_root DIR: the root's layout: /usr's directories, /bin, /sbin and /lib as links
# into /usr, the directories a process expects, /tmp and /var/tmp world-writable and sticky.
usrmerge_root() {
	mkdir -p "$1/usr/bin" "$1/usr/sbin" "$1/usr/lib" "$1/usr/include" "$1/usr/share/serpent" \
		"$1/etc" "$1/dev" "$1/proc" "$1/sys" "$1/run" "$1/var/tmp" "$1/root" "$1/home"
	chmod 1777 "$1/var/tmp"
	mkdir -p -m 1777 "$1/tmp"
	ln -s usr/bin "$1/bin"
	ln -s usr/sbin "$1/sbin"
	ln -s usr/lib "$1/lib"
}

# package NAME VERSION SOURCES DEPENDS: write NAME.json beside the package's tree (SOURCES
# and DEPENDS are space-separated names: sources of the recipes this stage is built on).
package() {
	mkdir -p "$PKGS/$1/usr"
	{
		printf '{"version": "%s", "sources": [' "$2"
		sep=
		for s in $3; do printf '%s"%s"' "$sep" "$s"; sep=', '; done
		printf '], "depends": ['
		sep=
		for d in $4; do printf '%s"%s"' "$sep" "$d"; sep=', '; done
		printf ']}\n'
	} > "$PKGS/$1.json"
}

# tcc_gen N CC: build tcc from /usr/src/tcc with CC in $W/gen-N.
tcc_gen() {
	rm -rf "$W/gen-$1"
	cp -a /usr/src/tcc "$W/gen-$1"
	(
		cd "$W/gen-$1"
		quiet ./configure --prefix=/usr --cc="$2" --config-musl --sysincludepaths=/usr/include --libpaths=/usr/lib --crtprefix=/usr/lib
		quiet make tcc && quiet make libtcc1.a BT_O= # no backtrace objects: see stage2.sh
	)
}
# tcc_wrap N: a command that runs generation N with its own runtime library and headers
# (-B), and keeps `-ar` first, where tcc wants it.
tcc_wrap() {
	cat > "$W/tcc-$1" <<WRAP
#!/bin/sh
case "\$1" in -ar) exec "$W/gen-$1/tcc" "\$@" ;; esac
exec "$W/gen-$1/tcc" -B"$W/gen-$1" "\$@"
WRAP
	chmod 755 "$W/tcc-$1"
}

# tcc_fixed_point STAGE: from generation 1 (built already), each generation built by the one
# before until two are byte-identical (tcc and its runtime library), at most 4; sets gen and
# next (the identical pair) and wraps generation $next.
tcc_fixed_point() {
	gen=1
	while :; do
		next=$((gen + 1))
		log "tcc, generation $next: built by generation $gen"
		tcc_wrap "$gen"
		tcc_gen "$next" "$W/tcc-$gen"
		if cmp -s "$W/gen-$gen/tcc" "$W/gen-$next/tcc" && cmp -s "$W/gen-$gen/libtcc1.a" "$W/gen-$next/libtcc1.a"; then
			log "fixed point: generations $gen and $next are byte-identical"
			break
		fi
		[ "$next" -lt 4 ] || { echo "$1: tcc reached no fixed point in 4 generations" >&2; exit 1; }
		gen=$next
	done
	tcc_wrap "$next"
}

# Versions of what the native stages build (their sources are named in stage2.yaml).
tccver="0.9.27+git20200814.62c30a4a"

# make_by CC: make 4.3 from /usr/src/make-4.3, built by CC, as the package make.
make_by() {
	rm -rf "$W/make"
	cp -a /usr/src/make-4.3 "$W/make"
	(
		cd "$W/make"
		quiet ./configure --prefix=/usr --disable-nls --without-guile CC="$1" LD="$1" CFLAGS=-O2
		quiet make -j"$JOBS"
		package make 4.3 make "musl"
		quiet make DESTDIR="$PKGS/make" install
	)
}
