# stage3-base (full profile): stage3's own tools, built natively by stage2's clang inside
# stage2.5 (busybox's sh; under qemu on a foreign host). Each component is installed into a
# directory of its own, /pkgs/NAME (its package, with /pkgs/NAME.json), and merged into the
# new root, /out, as hard links (one copy of each file in the layer). A component that a later
# build here runs or links (zlib, xz, ncurses, m4, perl, libffi, python3, cmake) is installed
# into the build root too, as a support runtime's would be: the build root is this stage's
# scratch, and stage3 takes /out and /pkgs alone. Each component's manifest entry goes to
# $PARTS, which stage3 turns into components.json.
. /recipe/lib.sh
. /recipe/native.sh
clear_flags
OUT=/out
PKGS=/pkgs
W=/tmp/stage3-base
ARCH="$SERPENT_TARGET_ARCH"
CFLAGS="$SERPENT_TARGET_CFLAGS"
export CC=cc CXX=c++
mkdir -p "$W"
cd "$W"
PARTS="$OUT/usr/share/serpent/components.part"
BY="clang 14.0.6 (stage2, native)"
# built NAME VERSION SOURCE_FILE LICENSE [BUILT_BY] adds the component's manifest entry: what it
# was built from (the file in /sources, its sha256 as read here) and by what.
built() {
	_src="\"file\": \"$3\""
	[ -f "/sources/$3" ] && _src="$_src, \"sha256\": \"$(sha256sum "/sources/$3" | cut -d' ' -f1)\""
	printf '    {"name": "%s", "version": "%s", "stage": "stage3", "built_by": "%s", "native": true,\n     "source": {%s, "license": "%s"}},\n' \
		"$1" "$2" "${5:-$BY}" "$_src" "$4" >> "$PARTS"
}
# inst NAME DIR installs what DIR's `make install` installs into NAME's package.
inst() {
	quiet make -C "$2" DESTDIR="$PKGS/$1" install
}
# both NAME DIR installs it into NAME's package and into the build root.
both() {
	inst "$1" "$2"
	quiet make -C "$2" install
}
# prune NAME removes what a root of tools has no use for from NAME's package and the build
# root: manuals, info pages, libtool archives.
prune() {
	for r in "$PKGS/$1" ""; do
		rm -rf "$r/usr/share/man" "$r/usr/share/info" "$r/usr/share/doc" "$r"/usr/lib/*.la
	done
}
# merge NAME puts NAME's package into the new root, each file a hard link to the package's
# (replacing a busybox applet's link that the component installs for real).
merge() {
	cp -alf "$PKGS/$1/." "$OUT/"
}

log "usrmerge layout in $OUT"
usrmerge_root "$OUT"
mkdir -p "$PKGS"

log "musl 1.2.3"
unpack /sources/musl-1.2.3.tar.gz
package musl 1.2.3 musl ""
(
	cd musl-1.2.3
	quiet ./configure --prefix=/usr --syslibdir=/usr/lib CFLAGS="$CFLAGS"
	quiet make -j"$JOBS"
	inst musl .
)
ln -sf libc.so "$PKGS/musl/usr/lib/ld-musl-$SERPENT_TARGET_MUSL_ARCH.so.1"
merge musl
built musl 1.2.3 musl-1.2.3.tar.gz MIT

log "zlib 1.2.13"
unpack /sources/zlib_1.2.13.dfsg.orig.tar.bz2
package zlib 1.2.13 zlib ""
(
	cd zlib-1.2.13.dfsg
	CFLAGS="$CFLAGS -fPIC" quiet ./configure --prefix=/usr --libdir=/usr/lib
	quiet make -j"$JOBS"
	both zlib .
	prune zlib
)
merge zlib
built zlib 1.2.13 zlib_1.2.13.dfsg.orig.tar.bz2 Zlib

log "xz 5.4.1"
unpack /sources/xz-utils_5.4.1.orig.tar.xz
package xz 5.4.1 xz ""
(
	cd xz-5.4.1
	quiet ./configure --prefix=/usr --libdir=/usr/lib --disable-nls --disable-doc --disable-static CFLAGS="$CFLAGS"
	quiet make -j"$JOBS"
	both xz .
	prune xz
)
merge xz
built xz 5.4.1 xz-utils_5.4.1.orig.tar.xz "0BSD AND LGPL-2.1-or-later AND GPL-2.0-or-later"

log "busybox 1.35.0"
unpack /sources/busybox-1.35.0.tar.bz2
package busybox 1.35.0 busybox ""
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
	# The applets, all in /usr (usrmerge), but for those the root has already (xz's) and the
	# binary tools stage3-llvm installs; a component installed later replaces an applet's link
	# (and the package loses it: see the end).
	for f in "$W"/bb/bin/* "$W"/bb/sbin/* "$W"/bb/usr/bin/* "$W"/bb/usr/sbin/*; do
		name="${f##*/}"
		case "$name" in ar | strings | readelf | nm | size | strip) continue ;; esac
		dir=usr/bin; case "$f" in */sbin/*) dir=usr/sbin ;; esac
		mkdir -p "$PKGS/busybox/$dir"
		[ -e "$OUT/$dir/$name" ] || [ -L "$OUT/$dir/$name" ] || [ -L "$PKGS/busybox/$dir/$name" ] ||
			cp -a "$f" "$PKGS/busybox/$dir/"
	done
)
merge busybox
built busybox 1.35.0 busybox-1.35.0.tar.bz2 GPL-2.0-only

log "make 4.3"
cp -a /usr/src/make-4.3 "$W/make"
package make 4.3 "make make-debian-diff" ""
(
	cd "$W/make"
	quiet ./configure --prefix=/usr --disable-nls --without-guile CFLAGS="$CFLAGS"
	quiet make -j"$JOBS"
	inst make .
	prune make
)
merge make
# The source stage4 rebuilds make from, as stage2 prepared it: a package, not in the root.
package make-source 4.3 "make make-debian-diff" ""
mkdir -p "$PKGS/make-source/usr/src"
cp -a /usr/src/make-4.3 "$PKGS/make-source/usr/src/"
built make 4.3 "stage2.5:/usr/src/make-4.3 (make-dfsg_4.3.orig.tar.gz with Debian's patches)" GPL-3.0-or-later

log "pkgconf 1.8.1"
unpack /sources/pkgconf_1.8.1.orig.tar.xz
package pkgconf 1.8.1 pkgconf ""
(
	cd pkgconf-1.8.1
	quiet ./configure --prefix=/usr --libdir=/usr/lib --disable-static CFLAGS="$CFLAGS"
	quiet make -j"$JOBS"
	both pkgconf .
	ln -sf pkgconf "$PKGS/pkgconf/usr/bin/pkg-config"
	ln -sf pkgconf /usr/bin/pkg-config
	prune pkgconf
)
merge pkgconf
built pkgconf 1.8.1 pkgconf_1.8.1.orig.tar.xz ISC

log "ninja 1.11.1 (C++, built without its Python bootstrap)"
unpack /sources/ninja-build_1.11.1.orig.tar.gz
package ninja 1.11.1 ninja ""
(
	cd ninja-1.11.1/src
	objs=""
	for s in build build_log clean clparser debug_flags depfile_parser deps_log disk_interface dyndep \
		dyndep_parser edit_distance eval_env graph graphviz json lexer line_printer manifest_parser metrics \
		missing_deps parser state status string_piece_util util version subprocess-posix ninja; do
		c++ $CFLAGS -std=c++11 -DNDEBUG -D_FILE_OFFSET_BITS=64 -fno-rtti -fno-exceptions -c "$s.cc" -o "$W/$s.o"
		objs="$objs $W/$s.o"
	done
	mkdir -p "$PKGS/ninja/usr/bin"
	c++ -o "$PKGS/ninja/usr/bin/ninja" $objs
	cp "$PKGS/ninja/usr/bin/ninja" /usr/bin/ninja
)
merge ninja
built ninja 1.11.1 ninja-build_1.11.1.orig.tar.gz Apache-2.0 "clang++ 14.0.6 (stage2, native)"

log "ncurses 6.4 (wide characters; libncurses is libncursesw)"
unpack /sources/ncurses_6.4.orig.tar.gz
package ncurses 6.4 ncurses ""
(
	cd ncurses-6.4
	quiet ./configure --prefix=/usr --libdir=/usr/lib --with-shared --without-normal --without-debug \
		--without-ada --without-cxx-binding --without-manpages --without-tests --enable-widec \
		--enable-pc-files --with-pkg-config-libdir=/usr/lib/pkgconfig --disable-stripping CFLAGS="$CFLAGS"
	quiet make -j"$JOBS"
	both ncurses .
	for r in "$PKGS/ncurses" ""; do
		for l in ncurses form panel menu; do
			echo "INPUT(-l${l}w)" > "$r/usr/lib/lib$l.so"
			ln -sf "${l}w.pc" "$r/usr/lib/pkgconfig/$l.pc"
		done
		ln -sf ncursesw6-config "$r/usr/bin/ncurses6-config"
	done
	prune ncurses
)
merge ncurses
built ncurses 6.4 ncurses_6.4.orig.tar.gz X11

log "bash 5.2.15"
unpack /sources/bash_5.2.15.orig.tar.gz
package bash 5.2.15 bash ""
(
	cd bash-5.2.15
	quiet ./configure --prefix=/usr --without-bash-malloc --with-curses --disable-nls CFLAGS="$CFLAGS"
	quiet make -j"$JOBS"
	inst bash .
	rm -rf "$PKGS/bash/usr/lib/bash" "$PKGS/bash/usr/include/bash" "$PKGS/bash/usr/lib/pkgconfig/bash.pc"
	prune bash
)
merge bash
built bash 5.2.15 bash_5.2.15.orig.tar.gz GPL-3.0-or-later

log "m4 1.4.19"
unpack /sources/m4_1.4.19.orig.tar.xz
package m4 1.4.19 m4 ""
(
	cd m4-1.4.19
	quiet ./configure --prefix=/usr --disable-nls CFLAGS="$CFLAGS"
	quiet make -j"$JOBS"
	both m4 .
	prune m4
)
merge m4
built m4 1.4.19 m4_1.4.19.orig.tar.xz GPL-3.0-or-later

log "perl 5.36.0 (threads, shared libperl)"
unpack /sources/perl_5.36.0.orig.tar.xz
package perl 5.36.0 perl ""
(
	cd perl-5.36.0
	# The manuals go where prune removes them: Configure's man*dir=none installed them, named
	# NAME.0, at the top of the root.
	quiet ./Configure -des -Dprefix=/usr -Dvendorprefix=/usr -Dscriptdir=/usr/bin -Dsiteprefix=/usr/local \
		-Dman1dir=/usr/share/man/man1 -Dman3dir=/usr/share/man/man3 -Dsiteman1dir=/usr/local/share/man/man1 \
		-Dsiteman3dir=/usr/local/share/man/man3 \
		-Duseshrplib -Dusethreads -Dcc=cc -Doptimize="$CFLAGS" -Dcf_by=serpent -Dmyhostname=serpent \
		-Dcf_email=none -Dperladmin=root
	quiet make -j"$JOBS"
	both perl .
	prune perl
	rm -rf "$PKGS/perl/usr/local/share/man" /usr/local/share/man
)
merge perl
built perl 5.36.0 perl_5.36.0.orig.tar.xz "GPL-1.0-or-later OR Artistic-1.0-Perl"

log "autoconf 2.71"
unpack /sources/autoconf_2.71.orig.tar.gz
package autoconf 2.71 autoconf "perl m4"
(
	cd autoconf-2.71
	quiet ./configure --prefix=/usr
	quiet make
	both autoconf .
	prune autoconf
)
merge autoconf
built autoconf 2.71 autoconf_2.71.orig.tar.gz "GPL-3.0-or-later WITH Autoconf-exception-3.0" "perl 5.36.0 and m4 1.4.19 (stage3)"

log "automake 1.16.5"
unpack /sources/automake-1.16_1.16.5.orig.tar.xz
package automake 1.16.5 automake "perl autoconf"
(
	cd automake-1.16.5
	quiet ./configure --prefix=/usr
	quiet make
	both automake .
	prune automake
)
merge automake
built automake 1.16.5 automake-1.16_1.16.5.orig.tar.xz GPL-2.0-or-later "perl 5.36.0 and autoconf 2.71 (stage3)"

log "libffi 3.4.4"
unpack /sources/libffi_3.4.4.orig.tar.gz
package libffi 3.4.4 libffi ""
(
	cd libffi-3.4.4
	quiet ./configure --prefix=/usr --libdir=/usr/lib --disable-static --disable-docs --disable-multi-os-directory CFLAGS="$CFLAGS"
	quiet make -j"$JOBS"
	both libffi .
	prune libffi
)
merge libffi
built libffi 3.4.4 libffi_3.4.4.orig.tar.gz MIT

log "python 3.11.2"
unpack /sources/python3.11_3.11.2.orig.tar.gz
package python3 3.11.2 python ""
(
	cd Python-3.11.2
	# configure asks the compiler for its Debian multiarch name and refuses when it differs from
	# the triplet it derived: clang answers x86_64-linux-gnu even when it targets musl. The
	# triplet alone is right here.
	sed -i 's/MULTIARCH=$($CC --print-multiarch 2>\/dev\/null)/MULTIARCH=/' configure
	! grep -q 'print-multiarch' configure || { echo "python: configure's multiarch probe was not patched" >&2; exit 1; }
	quiet ./configure --prefix=/usr --enable-shared --with-system-ffi --without-ensurepip --disable-test-modules \
		--without-doc-strings --disable-ipv6 --with-computed-gotos CFLAGS="$CFLAGS" LDFLAGS="-Wl,-rpath,/usr/lib"
	quiet make -j"$JOBS"
	both python3 .
	for r in "$PKGS/python3" ""; do ln -sf python3 "$r/usr/bin/python"; done
	prune python3
	# Each module the builds here need is there: a missing one only warns in Python's build.
	python3 -c 'import ctypes, zlib, lzma, hashlib, json, subprocess, curses, multiprocessing'
)
merge python3
built python 3.11.2 python3.11_3.11.2.orig.tar.gz PSF-2.0

log "file 5.44"
unpack /sources/file_5.44.orig.tar.gz
package file 5.44 file ""
(
	cd file-5.44
	quiet ./configure --prefix=/usr --libdir=/usr/lib --disable-static --disable-libseccomp --disable-bzlib \
		--disable-zstdlib --disable-lzlib CFLAGS="$CFLAGS"
	quiet make -j"$JOBS"
	inst file .
	prune file
)
merge file
built file 5.44 file_5.44.orig.tar.gz BSD-2-Clause

log "patch 2.7.6"
unpack /sources/patch_2.7.6.orig.tar.xz
package patch 2.7.6 patch ""
(
	cd patch-2.7.6
	quiet ./configure --prefix=/usr CFLAGS="$CFLAGS"
	quiet make -j"$JOBS"
	inst patch .
	prune patch
)
merge patch
built patch 2.7.6 patch_2.7.6.orig.tar.xz GPL-3.0-or-later

log "diffutils 3.8"
unpack /sources/diffutils_3.8.orig.tar.xz
package diffutils 3.8 diffutils ""
(
	cd diffutils-3.8
	quiet ./configure --prefix=/usr --disable-nls CFLAGS="$CFLAGS"
	quiet make -j"$JOBS"
	inst diffutils .
	prune diffutils
)
merge diffutils
built diffutils 3.8 diffutils_3.8.orig.tar.xz GPL-3.0-or-later

log "cmake 3.25.1 (bootstrapped with make, its bundled libraries, no OpenSSL)"
unpack /sources/cmake_3.25.1.orig.tar.gz
package cmake 3.25.1 cmake ""
(
	cd cmake-3.25.1
	quiet ./bootstrap --prefix=/usr --parallel="$JOBS" --no-qt-gui -- -DCMAKE_USE_OPENSSL=OFF -DBUILD_TESTING=OFF \
		-DCMAKE_BUILD_TYPE=Release -DCMAKE_C_FLAGS="$CFLAGS" -DCMAKE_CXX_FLAGS="$CFLAGS"
	quiet make -j"$JOBS"
	both cmake .
	rm -rf "$PKGS/cmake/usr/doc" /usr/doc
	prune cmake
)
merge cmake
built cmake 3.25.1 cmake_3.25.1.orig.tar.gz BSD-3-Clause "clang++ 14.0.6 (stage2, native)"

log "busybox's package keeps only the applets no other package installs for real"
for dir in usr/bin usr/sbin; do
	for f in "$PKGS"/busybox/"$dir"/*; do
		name="${f##*/}"
		[ "$name" = busybox ] && continue
		for p in "$PKGS"/*/; do
			p="${p%/}"
			[ "$p" != "$PKGS/busybox" ] && { [ -e "$p/$dir/$name" ] || [ -L "$p/$dir/$name" ]; } && rm -f "$f" && break
		done
	done
done

cd /
rm -rf "$W"
log "stage3-base done"
