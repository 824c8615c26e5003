# stage3-fixedpoint (full profile): stage3's clang rebuilds the toolchain inside stage3 with
# stage3-llvm.sh as it is, and each file is compared with stage3's own (see the recipe).
#
# stage3-llvm.sh runs in a build root and installs into /out (through its packages in /pkgs). Here the build root is stage3
# itself, and /out starts with the little that script's own proof needs of a root (musl's
# libc and loader, its crt objects, the manifest parts it appends to). The script swaps the
# runtimes it builds into the build root: stage3's /usr is copied to /reference first, and
# restored after.
. /recipe/lib.sh
OUT=/out
REF=/reference
REPORT=/usr/share/serpent/fixedpoint.txt
fail() { echo "stage3-fixedpoint: $*" >&2; exit 1; }
[ -f /usr/share/serpent/components.json ] && [ -x /usr/bin/clang-14 ] || fail "runs in stage3 (full profile)"
[ ! -e "$OUT" ] && [ ! -e /pkgs ] || fail "$OUT or /pkgs exists in stage3"

log "the reference: stage3's /usr as it is"
mkdir -p "$REF"
cp -a /usr "$REF/"

log "$OUT: what stage3-llvm's proof needs of a root"
mkdir -p "$OUT/usr/lib" "$OUT/usr/bin" "$OUT/usr/share/serpent" "$OUT/tmp"
ln -s usr/bin "$OUT/bin"
ln -s usr/lib "$OUT/lib"
seeded="usr/lib/libc.so usr/lib/ld-musl-$SERPENT_TARGET_MUSL_ARCH.so.1 usr/lib/crt1.o usr/lib/Scrt1.o usr/lib/rcrt1.o usr/lib/crti.o usr/lib/crtn.o"
for f in $seeded; do cp -a "/$f" "$OUT/$f"; done
: > "$OUT/usr/share/serpent/components.part"

log "stage3-llvm.sh, run by stage3's clang"
sh -e /recipe/profiles/full/stage3-llvm.sh

log "compare: every file installed into $OUT against stage3's own"
rm -f "$OUT/usr/share/serpent/components.part"
for f in $seeded; do rm -f "$OUT/$f"; done
same=0 differ=0 missing=0
: > /tmp/fixedpoint.diff
(cd "$OUT" && find usr ! -type d | sort) > /tmp/fixedpoint.files
while read -r f; do
	if [ -L "$OUT/$f" ]; then
		if [ -L "$REF/$f" ] && [ "$(readlink "$OUT/$f")" = "$(readlink "$REF/$f")" ]; then
			same=$((same + 1))
		else
			differ=$((differ + 1))
			echo "$f: a link to $(readlink "$OUT/$f"); stage3's: $(readlink "$REF/$f" 2>/dev/null || echo missing)" >> /tmp/fixedpoint.diff
		fi
		continue
	fi
	if [ ! -e "$REF/$f" ]; then
		missing=$((missing + 1))
		echo "$f: not in stage3" >> /tmp/fixedpoint.diff
		continue
	fi
	if cmp -s "$OUT/$f" "$REF/$f"; then
		same=$((same + 1))
		continue
	fi
	differ=$((differ + 1))
	{
		echo "$f: differs ($(wc -c < "$OUT/$f") bytes rebuilt, $(wc -c < "$REF/$f") in stage3; $(cmp -l "$OUT/$f" "$REF/$f" 2>/dev/null | wc -l) bytes differ)"
		if llvm-readelf -h "$REF/$f" >/dev/null 2>&1; then
			# The sections whose sizes differ, then the strings only one of them has (a path,
			# a date, a version).
			llvm-readelf -S -W "$OUT/$f" | awk '/^ *\[ *[0-9]+\]/ { print $2, $6 }' > /tmp/a.sec
			llvm-readelf -S -W "$REF/$f" | awk '/^ *\[ *[0-9]+\]/ { print $2, $6 }' > /tmp/b.sec
			diff /tmp/b.sec /tmp/a.sec | sed -n 's/^[<>] /  section (size, hex; < stage3, > rebuilt): /p' | head -n 10
		fi
		strings -n 8 "$OUT/$f" | sort -u > /tmp/a.str
		strings -n 8 "$REF/$f" | sort -u > /tmp/b.str
		diff /tmp/b.str /tmp/a.str | sed -n 's/^\([<>]\) /  string \1 /p' | head -n 10
	} >> /tmp/fixedpoint.diff
done < /tmp/fixedpoint.files
total=$(wc -l < /tmp/fixedpoint.files)

log "stage3's /usr restored"
# Only what differs, and each file by rename (running programs keep what they mapped): the
# runtimes and objects stage3-llvm.sh swapped in.
(cd "$REF" && find usr ! -type d) | while read -r f; do
	if [ -L "$REF/$f" ]; then
		[ "$(readlink "$REF/$f")" = "$(readlink "/$f" 2>/dev/null)" ] && continue
	elif cmp -s "$REF/$f" "/$f"; then
		continue
	fi
	cp -a "$REF/$f" "/$f.serpent-new"
	mv -f "/$f.serpent-new" "/$f"
	echo "restored /$f"
done
rm -rf "$REF" "$OUT" /pkgs

{
	echo "fixed point of the stage3 toolchain ($TARGET): $total files rebuilt by stage3's clang inside stage3"
	echo "$same identical to stage3's, $differ differ, $missing not in stage3"
	cat /tmp/fixedpoint.diff
} > "$REPORT"
rm -f /tmp/fixedpoint.* /tmp/a.sec /tmp/b.sec /tmp/a.str /tmp/b.str
cat "$REPORT"
[ "$differ" = 0 ] && [ "$missing" = 0 ] || fail "$differ files differ and $missing are not in stage3: not a fixed point"
log "stage3-fixedpoint done: a fixed point"
