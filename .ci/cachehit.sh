# Sourced by bootstrap-check.sh (after check.sh and registry.sh): check_cache_hit BIN STAGE TAG PLATFORM...
# pushes the store's build of STAGE (tagged TAG) for the platforms to a cache in a docker-registry on loopback
# (--cache-to), then builds STAGE into an empty store from that cache (--cache-from) and checks
# that the registry served only the target images' blobs (and the small configs the keys need):
# no seed, no stage1, nothing run, the same digests. CACHEHIT_BUILD_ARGS are given to plan and
# build (a --stages set, for trying it on the test recipes).
digest_of() { # STORE STAGE PLATFORM
	SERPENT_OCI_STORE="$1" "$bin" inspect "$2" --platform "$3" --format json | python3 -c 'import json, sys; print(json.load(sys.stdin)["descriptor"]["digest"])'
}
check_cache_hit() {
	local bin="$1" stage="$2" tag="$3"
	shift 3
	local plats
	plats="$(IFS=,; echo "$*")"
	local empty out served dir
	dir="$(mktemp -d /var/tmp/serpent-oci-ci-cache.XXXXXX)"
	registry_start "$dir"
	local cache="$registry_addr/serpent/cache"

	"$bin" build "$stage" ${CACHEHIT_BUILD_ARGS:-} --platform "$plats" --cache-to "$cache" --progress plain > "$dir/to.txt"
	local mark
	mark=$(wc -l < "$registry_log")
	empty="$dir/empty-store"
	out="$dir/from.txt"
	SERPENT_OCI_STORE="$empty" "$bin" plan "$stage" ${CACHEHIT_BUILD_ARGS:-} --platform "$plats" --cache-from "$cache" | tee "$dir/plan.txt"
	local t0
	t0=$(date +%s.%N)
	SERPENT_OCI_STORE="$empty" "$bin" build "$stage" ${CACHEHIT_BUILD_ARGS:-} --platform "$plats" --cache-from "$cache" --progress plain > "$out"
	cat "$out"
	served=$(tail -n +"$((mark + 1))" "$registry_log" | grep -oE '"GET /v2/[^ ]*/blobs/[^ ]* HTTP/[0-9.]+" 200 [0-9]+' | awk '{s += $NF} END {print s + 0}')
	local want=0 n=0
	for p in "$@"; do
		n=$((n + 1))
		want=$((want + $(SERPENT_OCI_STORE="$empty" "$bin" inspect "$tag" --platform "$p" --format json | python3 -c 'import json, sys; m = json.load(sys.stdin)["manifest"]; print(m["config"]["size"] + sum(l["size"] for l in m["layers"]))')))
	done
	echo "cache hit of $stage for $plats into an empty store: $(python3 -c "print(round($(date +%s.%N) - $t0, 1))")s, registry served $served blob bytes; the targets' images are $want bytes"
	check "the plan of $stage from the cache resolves all but $n stages and downloads those" \
		sh -c "[ \$(grep -c ' resolve  *0 B ' '$dir/plan.txt') -gt 0 ] && [ \$(grep -cE ' pull  *[0-9.]+ [KMG]iB ' '$dir/plan.txt') = $n ]"
	check "$stage from the cache: nothing built, $n pulled, the rest resolved only" \
		grep -qE "stages, 0 built, $n pulled \([0-9.]+ [KMG]iB\), [1-9][0-9]* resolved only" "$out"
	check "the registry served the targets' blobs and no more than 1 MiB besides" \
		sh -c "[ '$served' -ge '$want' ] && [ '$served' -le $((want + 1048576)) ]"
	check "the empty store has $stage alone: no seed, no stage1" \
		sh -c "SERPENT_OCI_STORE='$empty' '$bin' images -q | grep -v '^$tag@' | { ! grep .; }"
	check "no container ran in the build served by the cache" sh -c "[ ! -d '$empty/.serpent/logs' ] || [ -z \"\$(ls -A '$empty/.serpent/logs')\" ]"
	for p in "$@"; do
		check "$stage for $p from the cache is the image built here" \
			test "$(digest_of "$SERPENT_OCI_STORE" "$tag" "$p")" = "$(digest_of "$empty" "$tag" "$p")"
	done
	registry_stop
}

