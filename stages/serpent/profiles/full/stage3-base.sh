# stage3-base (full profile): stage3's own tools, built natively in /out by stage2's clang inside
# stage2.5 (busybox's sh; under qemu on a foreign host). A component that a later build here
# runs or links (zlib, xz, ncurses, m4, perl, libffi, python3, cmake) is installed into the
# build root too, as a support runtime's would be: the build root is this stage's scratch,
# and stage3 takes /out alone. Each component's manifest entry goes to $PARTS, which stage3
# turns into components.json.
. /recipe/lib.sh
clear_flags
OUT=/out
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
# both DIR installs what DIR's `make install` installs into /out and into the build root.
both() {
	quiet make -C "$1" DESTDIR="$OUT" install
	quiet make -C "$1" install
}
# prune removes what a root of tools has no use for: manuals, info pages, libtool archives.
prune() {
	for r in "$OUT" ""; do
		rm -rf "$r/usr/share/man" "$r/usr/share/info" "$r/usr/share/doc" "$r"/usr/lib/*.la
	done
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
built musl 1.2.3 musl-1.2.3.tar.gz MIT

log "zlib 1.2.13"
unpack /sources/zlib_1.2.13.dfsg.orig.tar.bz2
(
	cd zlib-1.2.13.dfsg
	CFLAGS="$CFLAGS -fPIC" quiet ./configure --prefix=/usr --libdir=/usr/lib
	quiet make -j"$JOBS"
	quiet make DESTDIR="$OUT" install
	quiet make install
	rm -rf "$OUT/usr/share/man"
)
built zlib 1.2.13 zlib_1.2.13.dfsg.orig.tar.bz2 Zlib

log "xz 5.4.1"
unpack /sources/xz-utils_5.4.1.orig.tar.xz
(
	cd xz-5.4.1
	quiet ./configure --prefix=/usr --libdir=/usr/lib --disable-nls --disable-doc --disable-static CFLAGS="$CFLAGS"
	quiet make -j"$JOBS"
	quiet make DESTDIR="$OUT" install
	quiet make install
	prune
)
built xz 5.4.1 xz-utils_5.4.1.orig.tar.xz "0BSD AND LGPL-2.1-or-later AND GPL-2.0-or-later"

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
built busybox 1.35.0 busybox-1.35.0.tar.bz2 GPL-2.0-only

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
built make 4.3 "stage2.5:/usr/src/make-4.3 (make-dfsg_4.3.orig.tar.gz with Debian's patches)" GPL-3.0-or-later

log "pkgconf 1.8.1"
unpack /sources/pkgconf_1.8.1.orig.tar.xz
(
	cd pkgconf-1.8.1
	quiet ./configure --prefix=/usr --libdir=/usr/lib --disable-static CFLAGS="$CFLAGS"
	quiet make -j"$JOBS"
	both .
	ln -sf pkgconf "$OUT/usr/bin/pkg-config"
	ln -sf pkgconf /usr/bin/pkg-config
	prune
)
built pkgconf 1.8.1 pkgconf_1.8.1.orig.tar.xz ISC

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
	cp "$OUT/usr/bin/ninja" /usr/bin/ninja
)
built ninja 1.11.1 ninja-build_1.11.1.orig.tar.gz Apache-2.0 "clang++ 14.0.6 (stage2, native)"

log "ncurses 6.4 (wide characters; libncurses is libncursesw)"
unpack /sources/ncurses_6.4.orig.tar.gz
(
	cd ncurses-6.4
	quiet ./configure --prefix=/usr --libdir=/usr/lib --with-shared --without-normal --without-debug \
		--without-ada --without-cxx-binding --without-manpages --without-tests --enable-widec \
		--enable-pc-files --with-pkg-config-libdir=/usr/lib/pkgconfig --disable-stripping CFLAGS="$CFLAGS"
	quiet make -j"$JOBS"
	both .
	for r in "$OUT" ""; do
		for l in ncurses form panel menu; do
			echo "INPUT(-l${l}w)" > "$r/usr/lib/lib$l.so"
			ln -sf "${l}w.pc" "$r/usr/lib/pkgconfig/$l.pc"
		done
		ln -sf ncursesw6-config "$r/usr/bin/ncurses6-config"
	done
	prune
)
built ncurses 6.4 ncurses_6.4.orig.tar.gz X11

log "bash 5.2.15"
unpack /sources/bash_5.2.15.orig.tar.gz
(
	cd bash-5.2.15
	quiet ./configure --prefix=/usr --without-bash-malloc --with-curses --disable-nls CFLAGS="$CFLAGS"
	quiet make -j"$JOBS"
	quiet make DESTDIR="$OUT" install
	rm -rf "$OUT/usr/lib/bash" "$OUT/usr/include/bash" "$OUT/usr/lib/pkgconfig/bash.pc"
	prune
)
built bash 5.2.15 bash_5.2.15.orig.tar.gz GPL-3.0-or-later

log "m4 1.4.19"
unpack /sources/m4_1.4.19.orig.tar.xz
(
	cd m4-1.4.19
	quiet ./configure --prefix=/usr --disable-nls CFLAGS="$CFLAGS"
	quiet make -j"$JOBS"
	both .
	prune
)
built m4 1.4.19 m4_1.4.19.orig.tar.xz GPL-3.0-or-later

log "perl 5.36.0 (threads, shared libperl)"
unpack /sources/perl_5.36.0.orig.tar.xz
(
	cd perl-5.36.0
	quiet ./Configure -des -Dprefix=/usr -Dvendorprefix=/usr -Dscriptdir=/usr/bin -Dsiteprefix=/usr/local \
		-Dman1dir=none -Dman3dir=none -Dsiteman1dir=none -Dsiteman3dir=none \
		-Duseshrplib -Dusethreads -Dcc=cc -Doptimize="$CFLAGS" -Dcf_by=serpent -Dmyhostname=serpent \
		-Dcf_email=none -Dperladmin=root
	quiet make -j"$JOBS"
	both .
	prune
)
built perl 5.36.0 perl_5.36.0.orig.tar.xz "GPL-1.0-or-later OR Artistic-1.0-Perl"

log "autoconf 2.71"
unpack /sources/autoconf_2.71.orig.tar.gz
(
	cd autoconf-2.71
	quiet ./configure --prefix=/usr
	quiet make
	both .
	prune
)
built autoconf 2.71 autoconf_2.71.orig.tar.gz "GPL-3.0-or-later WITH Autoconf-exception-3.0" "perl 5.36.0 and m4 1.4.19 (stage3)"

log "automake 1.16.5"
unpack /sources/automake-1.16_1.16.5.orig.tar.xz
(
	cd automake-1.16.5
	quiet ./configure --prefix=/usr
	quiet make
	both .
	prune
)
built automake 1.16.5 automake-1.16_1.16.5.orig.tar.xz GPL-2.0-or-later "perl 5.36.0 and autoconf 2.71 (stage3)"

log "libffi 3.4.4"
unpack /sources/libffi_3.4.4.orig.tar.gz
(
	cd libffi-3.4.4
	quiet ./configure --prefix=/usr --libdir=/usr/lib --disable-static --disable-docs --disable-multi-os-directory CFLAGS="$CFLAGS"
	quiet make -j"$JOBS"
	both .
	prune
)
built libffi 3.4.4 libffi_3.4.4.orig.tar.gz MIT

log "python 3.11.2"
unpack /sources/python3.11_3.11.2.orig.tar.gz
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
	both .
	for r in "$OUT" ""; do ln -sf python3 "$r/usr/bin/python"; done
	prune
	# Each module the builds here need is there: a missing one only warns in Python's build.
	python3 -c 'import ctypes, zlib, lzma, hashlib, json, subprocess, curses, multiprocessing'
)
built python 3.11.2 python3.11_3.11.2.orig.tar.gz PSF-2.0

log "file 5.44"
unpack /sources/file_5.44.orig.tar.gz
(
	cd file-5.44
	quiet ./configure --prefix=/usr --libdir=/usr/lib --disable-static --disable-libseccomp --disable-bzlib \
		--disable-zstdlib --disable-lzlib CFLAGS="$CFLAGS"
	quiet make -j"$JOBS"
	quiet make DESTDIR="$OUT" install
	prune
)
built file 5.44 file_5.44.orig.tar.gz BSD-2-Clause

log "patch 2.7.6"
unpack /sources/patch_2.7.6.orig.tar.xz
(
	cd patch-2.7.6
	quiet ./configure --prefix=/usr CFLAGS="$CFLAGS"
	quiet make -j"$JOBS"
	quiet make DESTDIR="$OUT" install
	prune
)
built patch 2.7.6 patch_2.7.6.orig.tar.xz GPL-3.0-or-later

log "diffutils 3.8"
unpack /sources/diffutils_3.8.orig.tar.xz
(
	cd diffutils-3.8
	quiet ./configure --prefix=/usr --disable-nls CFLAGS="$CFLAGS"
	quiet make -j"$JOBS"
	quiet make DESTDIR="$OUT" install
	prune
)
built diffutils 3.8 diffutils_3.8.orig.tar.xz GPL-3.0-or-later

log "cmake 3.25.1 (bootstrapped with make, its bundled libraries, no OpenSSL)"
unpack /sources/cmake_3.25.1.orig.tar.gz
(
	cd cmake-3.25.1
	quiet ./bootstrap --prefix=/usr --parallel="$JOBS" --no-qt-gui -- -DCMAKE_USE_OPENSSL=OFF -DBUILD_TESTING=OFF \
		-DCMAKE_BUILD_TYPE=Release -DCMAKE_C_FLAGS="$CFLAGS" -DCMAKE_CXX_FLAGS="$CFLAGS"
	quiet make -j"$JOBS"
	both .
	rm -rf "$OUT/usr/doc" /usr/doc
	prune
)
built cmake 3.25.1 cmake_3.25.1.orig.tar.gz BSD-3-Clause "clang++ 14.0.6 (stage2, native)"

cd /
rm -rf "$W"
log "stage3-base done"
