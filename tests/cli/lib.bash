# Shared by the tests/cli scenarios: a scratch directory, failure helpers,
# and a check that a failed or killed run left nothing behind.
BUILD=$1
W=$(mktemp -d /tmp/daxfs-cli.XXXXXX)
IO=$(mktemp -d /tmp/daxfs-cli-io.XXXXXX)  # a command's stdout and stderr, outside $W
cleanup_dirs=("$W")
trap 'for d in "${cleanup_dirs[@]}"; do mountpoint -q "$d" 2>/dev/null && umount "$d"; done; rm -rf "$W" "$IO"' EXIT
SHIM=$BUILD/tests/libdaxfs_fault_shim.so
# Sanitized builds: the shim is preloaded ahead of the sanitizer runtime.
export ASAN_OPTIONS=${ASAN_OPTIONS:+$ASAN_OPTIONS:}verify_asan_link_order=0

fail() { echo "FAIL: $*" >&2; exit 1; }
# expect_rc WANT CMD...: runs CMD with stdout in $IO/out, stderr in $IO/err.
expect_rc() { local want=$1; shift; set +e; "$@" >"$IO/out" 2>"$IO/err"; local rc=$?; set -e
  [ "$rc" = "$want" ] || fail "$* exited $rc, expected $want: $(cat "$IO/err")"; }
expect_err() { grep -qF -- "$1" "$IO/err" || fail "message lacks '$1': $(cat "$IO/err")"; }
# start_bg CMD...: starts CMD in the background with SIGINT and SIGQUIT at
# their default (a shell without job control starts background jobs with
# them ignored, and a script may inherit them ignored), stdout to /dev/null,
# stderr to $IO/err; sets $pid once CMD itself runs.
start_bg() {
  python3 -c 'import os, signal, sys
for s in (signal.SIGINT, signal.SIGQUIT): signal.signal(s, signal.SIG_DFL)
os.execvp(sys.argv[1], sys.argv[1:])' "$@" >/dev/null 2>"$IO/err" & pid=$!
  local comm
  for _ in $(seq 1 1000); do
    comm=$(cat /proc/$pid/comm 2>/dev/null) || return 0  # already gone
    case "$comm" in python3|env) sleep 0.005 ;; *) return 0 ;; esac
  done; }
# listing DIR: every path below DIR (hidden ones too), one per line.
listing() { (cd "$1" && find . -mindepth 1 | LC_ALL=C sort); }
# A snapshot of DIR's names to compare against after a run.
snapshot() { listing "$1" > "$IO/snap.$2"; }
no_debris() { listing "$1" | diff -u "$IO/snap.$2" - >&2 || fail "$3: names left behind in $1"; }
