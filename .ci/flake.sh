#!/usr/bin/env bash
# Runs the whole test suite N times, each in a new order (-shuffle=on), and reports every test
# that failed at least once, with how often. Exit status 1 when any run failed.
# Usage: .ci/flake.sh N [go test flags...]   (logs in $FLAKE_LOGS, default a temporary dir)
set -uo pipefail
n="${1:?usage: flake.sh N [go test flags...]}"
shift
go="${GO:-go}"
logs="${FLAKE_LOGS:-$(mktemp -d -t serpent-oci-flake-XXXXXX)}"
mkdir -p "$logs"
failed_runs=0
for i in $(seq 1 "$n"); do
	log="$logs/run-$i.log"
	start=$(date +%s)
	if "$go" test -count=1 -shuffle=on -timeout 30m "$@" ./... >"$log" 2>&1; then
		status=ok
	else
		status=FAIL
		failed_runs=$((failed_runs + 1))
	fi
	echo "flake: run $i/$n: $status ($(( $(date +%s) - start )) s; $log)"
done
# A failing test prints "--- FAIL: Name"; a package that died without one (panic, timeout,
# build failure) prints "FAIL<tab>package".
report=$(cat "$logs"/run-*.log | grep -hoE -- '--- FAIL: [^ ]+|^FAIL[[:space:]]+[^[:space:]]+' |
	sed -E 's/^--- FAIL: /test /; s/^FAIL[[:space:]]+/package /' | sort | uniq -c | sort -rn)
if [ "$failed_runs" -eq 0 ]; then
	echo "flake: $n passed, 0 failed"
	exit 0
fi
echo "flake: $((n - failed_runs)) passed, $failed_runs failed; failures (count, what):"
echo "$report"
exit 1
