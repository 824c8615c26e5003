# Sourced by CI's check scripts: check DESCRIPTION COMMAND... runs COMMAND and counts it as
# passed or failed (the script goes on either way); checks_done NAME prints the count and fails
# when anything failed.
passed=0 failed=0
check() {
	if "${@:2}"; then echo "ok: $1"; passed=$((passed + 1)); else echo "FAILED: $1"; failed=$((failed + 1)); fi
}
checks_done() {
	echo "$1: $passed passed, $failed failed"
	[ "$failed" -eq 0 ]
}
