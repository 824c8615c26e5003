# Sourced by bootstrap-check.sh (after check.sh and registry.sh): check_publish BIN PLATFORM...
# publishes the small profile's stage4 as a user would: the image (one multi-platform index) and
# its package repository pushed to a docker-registry on loopback, then, with nothing of this
# store: podman runs the image from the registry for each platform, a fresh store assembles a
# root from the pushed repository, and a spin on that root
# adds packages from the repository; each compiles and runs C.
check_publish() {
	local bin="$1"
	shift
	local dir plats image repo fresh p hello
	dir="$(mktemp -d /var/tmp/serpent-oci-ci-publish.XXXXXX)"
	registry_start "$dir"
	plats="$(IFS=,; echo "$*")"
	image="$registry_addr/serpent/stage4:ci"
	repo="$registry_addr/serpent/packages:ci"
	"$bin" push stage4 "$image"
	"$bin" push stage4/packages "$repo"
	check "the public image in the registry is for $plats (one index of them when several)" \
		test "$(published_platforms "$image")" = "$(printf '%s\n' "$@" | sort | paste -sd,)"
	hello='printf "#include <stdio.h>\nint main(void){puts(\"published\");return 0;}\n" > /tmp/t.c && tcc -o /tmp/t /tmp/t.c && /tmp/t'
	fresh="$dir/fresh-store"
	cat > "$dir/spin.yaml" <<-SPIN
		from: published-base
		platforms: [$plats]
		steps:
		  - packages: [tcc, make]
		    from: $repo
	SPIN
	for p in "$@"; do
		check "stage4 for $p runs from the registry under podman and compiles C there" \
			sh -c "podman --root '$dir/podman/root' --runroot '$dir/podman/run' --storage-driver vfs --cgroup-manager cgroupfs --events-backend none run --rm --network none --tls-verify=false --platform '$p' --ulimit nofile=1024:1024 --ulimit nproc=1024:1024 'docker://$image' sh -c '$hello' 2>&1 | grep -qx published"
		check "a fresh store assembles busybox for $p from the pushed repository, and nothing else" \
			sh -c "'$bin' --store '$fresh' packages assemble --repo '$repo' --platform '$p' -t published-base busybox > /dev/null &&
				'$bin' --store '$fresh' images -q | grep -v '^published-base@' | { ! grep .; }"
	done
	"$bin" --store "$fresh" spin build "$dir/spin.yaml" --tag published-spin
	for p in "$@"; do
		check "the spin of busybox with tcc and make from the pushed repository compiles and runs C for $p" \
			sh -c "'$bin' --store '$fresh' run published-spin --platform '$p' -- sh -c '$hello && make --version | head -n 1' 2>&1 | grep -cxE 'published|GNU Make 4.3' | grep -qx 2"
	done
	registry_stop
}

# published_platforms REF: the platforms of an image or index in the registry, sorted, comma-separated.
published_platforms() {
	local raw
	raw="$(skopeo inspect --tls-verify=false --raw "docker://$1")"
	if grep -q '"manifests"' <<< "$raw"; then
		python3 -c 'import json, sys; print(",".join(sorted(m["platform"]["os"] + "/" + m["platform"]["architecture"] for m in json.load(sys.stdin)["manifests"])))' <<< "$raw"
	else
		skopeo inspect --tls-verify=false "docker://$1" | python3 -c 'import json, sys; i = json.load(sys.stdin); print(i["Os"] + "/" + i["Architecture"])'
	fi
}
