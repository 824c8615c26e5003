#!/usr/bin/env bash
# Install everything serpent-oci and its test suite need on a fresh Debian machine.
# Idempotent: safe to run twice. Needs root (it runs apt-get and mounts binfmt_misc).
set -euo pipefail

packages=(
	runc             # runs stage containers
	qemu-user-static # runs foreign-architecture stages through binfmt_misc
	umoci            # interop tests: reads and writes OCI layouts
	skopeo           # interop tests: reads layouts, copies images
	podman           # interop tests: runs exported images (oci-archive), both platforms
	docker-registry  # a real registry for end-to-end tests (loopback only)
	pigz             # the `make bench` peer: tar | pigz
	zstd
	file
	tar
	gzip
	util-linux       # mount, flock
	mmdebstrap       # builds the seed image from Debian packages
	curl             # CI scripts: waits for the registry they start
	python3          # CI scripts: reads inspect's JSON, picks a free port
	bash             # the completion scripts' tests run each shell they are for
	zsh
	fish
	redis-server     # the shared compiler cache's tests: a real Redis server (a Unix socket only)
	ccache           # and Debian's ccache, whose remote storage reaches it through the proxy
	distcc           # the compile farm's tests: distcc in a stage, distccd in a helper
	gcc              # oci/packages' tests compile the ELF files whose dependencies they read
	libc6-dev
)

if [ "$(id -u)" -ne 0 ]; then
	echo "deps.sh: must run as root (apt-get, mount)" >&2
	exit 1
fi

missing=()
for p in "${packages[@]}"; do
	if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed'; then
		missing+=("$p")
	fi
done
if [ "${#missing[@]}" -gt 0 ]; then
	echo "deps.sh: installing ${missing[*]}"
	export DEBIAN_FRONTEND=noninteractive
	apt-get update -qq
	apt-get install -y -qq --no-install-recommends "${missing[@]}"
fi

# docker-registry's package starts a system service listening on :5000; tests start their own
# instance on 127.0.0.1, so the packaged one is stopped where a service manager runs it.
for service in docker-registry redis-server; do # redis-server's listens on 127.0.0.1:6379
	if command -v systemctl >/dev/null 2>&1 && systemctl is-active --quiet "$service" 2>/dev/null; then
		systemctl stop "$service" || true
	fi
done

# Debian source packages (the origin of sources that exist only as Debian's repack) need
# deb-src entries: made from the machine's own deb entries, so apt reaches the same mirrors.
src_list=/etc/apt/sources.list.d/serpent-oci-src.sources
if [ ! -s "$src_list" ]; then
	{
		for f in /etc/apt/sources.list.d/*.sources; do
			[ -f "$f" ] && [ "$f" != "$src_list" ] || continue
			# Copy each enabled stanza of type deb as a deb-src stanza.
			awk 'BEGIN { RS=""; ORS="\n\n" }
				/(^|\n)Types:[^\n]*deb([ \n]|$)/ && !/(^|\n)Enabled: *no/ {
					sub(/(^|\n)Types:[^\n]*/, "\nTypes: deb-src"); sub(/^\n/, ""); print }' "$f"
		done
		if [ -f /etc/apt/sources.list ]; then
			# One-line format: "deb URI SUITE COMPONENTS" becomes a deb-src stanza.
			awk '$1 == "deb" { o = ""; if ($2 ~ /^\[/) { o = $2; $2 = "" ; $0 = $0 }
				n = split($0, f, " "); if (n < 4) next
				printf "Types: deb-src\nURIs: %s\nSuites: %s\nComponents:", f[2], f[3]
				for (i = 4; i <= n; i++) printf " %s", f[i]; printf "\n\n" }' /etc/apt/sources.list
		fi
	} > "$src_list.tmp"
	mv "$src_list.tmp" "$src_list"
	echo "deps.sh: added deb-src entries ($src_list)"
	apt-get update -qq
fi

# Test fixtures: Debian's busybox-static for both platforms the bootstrap targets, kept as .debs
# in a cache the tests read ($SERPENT_OCI_TESTDATA, default below).
testdata="${SERPENT_OCI_TESTDATA:-/var/cache/serpent-oci/testdata}"
mkdir -p "$testdata"
if ! dpkg --print-foreign-architectures | grep -qx arm64; then
	dpkg --add-architecture arm64
	apt-get update -qq
fi
for arch in amd64 arm64; do
	if ! ls "$testdata"/busybox-static_*_"$arch".deb >/dev/null 2>&1; then
		echo "deps.sh: downloading busybox-static:$arch into $testdata"
		(cd "$testdata" && apt-get download -qq -o APT::Sandbox::User=root "busybox-static:$arch") || {
			apt-get update -qq
			(cd "$testdata" && apt-get download -qq -o APT::Sandbox::User=root "busybox-static:$arch")
		}
	fi
done

if [ ! -e /proc/sys/fs/binfmt_misc/register ]; then
	mount -t binfmt_misc binfmt_misc /proc/sys/fs/binfmt_misc
fi
# qemu-user-static's interpreters, registered with the F flag (the kernel opens them now, so
# they work inside containers without being copied in): what `serpent-oci binfmt --install`
# does, for the machine that has no serpent-oci binary yet. Nothing starts systemd-binfmt here.
for conf in /usr/lib/binfmt.d/qemu-*.conf; do
	[ -f "$conf" ] || continue
	line="$(grep -v '^[#;]' "$conf" | grep -m1 .)" || continue
	name="$(echo "$line" | cut -d: -f2)"
	entry="/proc/sys/fs/binfmt_misc/$name"
	if [ -e "$entry" ] && grep -q '^flags:.*F' "$entry"; then
		continue
	fi
	[ -e "$entry" ] && echo -1 > "$entry"
	case "$line" in *F) ;; *) line="${line}F" ;; esac
	echo "$line" > /proc/sys/fs/binfmt_misc/register
done
echo "deps.sh: ok"
