# Shared by the stage scripts: sourced as /recipe/lib.sh. POSIX sh (stage2.5 and stage3 run it
# with busybox's sh).

# log prints a step heading, with the time since the stage started.
_stage_start=$(date +%s)
log() {
	echo "==> [$(( $(date +%s) - _stage_start ))s] $*"
}

# clear_flags drops inherited compiler flags: every package starts from the target table alone.
clear_flags() {
	unset CFLAGS CXXFLAGS CPPFLAGS LDFLAGS ASFLAGS CC CXX LD AR RANLIB NM STRIP OBJCOPY
}

# unpack ARCHIVE [MEMBER...] extracts (the members of) a source tarball into the current
# directory, whatever its compression.
unpack() {
	_a="$1"; shift
	case "$_a" in
	*.tar.xz) xz -dc "$_a" | tar -x -f - "$@" ;;
	*.tar.bz2) bzip2 -dc "$_a" | tar -x -f - "$@" ;;
	*.tar.gz) gzip -dc "$_a" | tar -x -f - "$@" ;;
	*) echo "unpack: unknown archive $_a" >&2; return 1 ;;
	esac
}

JOBS="${SERPENT_JOBS:-2}"
TARGET="$SERPENT_TARGET_TRIPLE"

# quiet CMD... runs a noisy build command with its output in a log file; on failure it shows
# the end of that log and fails the stage.
_quiet_n=0
quiet() {
	_quiet_n=$((_quiet_n + 1))
	_log="/tmp/quiet-$_quiet_n.log"
	if "$@" >"$_log" 2>&1; then
		tail -n 1 "$_log" | cut -c1-160
		rm -f "$_log"
	else
		_rc=$?
		echo "failed ($_rc): $*" >&2
		tail -n 60 "$_log" >&2
		exit "$_rc"
	fi
}
