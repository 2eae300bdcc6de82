# Shared helpers for the FUSE mount scenarios (sourced, not run).
# Usage in a script: source "$(dirname "$0")/lib.bash" "$1"   ($1 = build dir)
set -euo pipefail
BUILD=${1:-$(cd "$(dirname "${BASH_SOURCE[0]}")/../../build" && pwd)}
MKDAXFS=$BUILD/mkdaxfs
DAXFS=$BUILD/daxfs
MOUNT=$BUILD/daxfs-mount

skip() { echo "SKIP: $*"; exit 77; }
fail() { echo "FAIL: $*" >&2; exit 1; }
[ "$(id -u)" = 0 ] || skip "needs root"
[ -c /dev/fuse ] || skip "no /dev/fuse"
[ -x "$MOUNT" ] || skip "daxfs-mount not built"

# The FUSE control filesystem (waiting counts, abort) for the guardian.
if [ -d /sys/fs/fuse/connections ] && ! grep -q " /sys/fs/fuse/connections fusectl " /proc/mounts; then
  mount -t fusectl fusectl /sys/fs/fuse/connections 2>/dev/null || true
fi

WORK=$(mktemp -d /tmp/daxfs-mount-test.XXXXXX)
MOUNTS=()
cleanup() {
  for m in "${MOUNTS[@]}"; do umount "$m" 2>/dev/null || umount -l "$m" 2>/dev/null || true; done
  rm -rf "$WORK"
}
trap cleanup EXIT
# Python tests print every thread's traceback on SIGABRT (the guardian's).
export PYTHONFAULTHANDLER=1

# The guardian: a process of its own that (1) shortly before ctest's timeout
# (DAXFS_TEST_TIMEOUT, default 570 s of ctest's 600) prints what a hang
# needs to be diagnosed (every process of the test and of its daemons with
# state, wait channel and kernel stack, every daemon thread, the FUSE
# connections' waiting requests, Python tracebacks), then kills the test;
# and (2) unmounts whatever the test mounted and removes $WORK once the test
# is gone, however it ended (ctest's SIGKILL runs no trap).
DAXFS_MOUNT_LIST=$WORK/.mounts
: > "$DAXFS_MOUNT_LIST"
guardian_dump() {
  local test_pid=$1
  echo "=== guardian: $(basename "$0") still running after ${DAXFS_TEST_TIMEOUT:-570} s: state for diagnosis ===" >&2
  local pids=() p
  # The test's descendants, and every process naming $WORK (the daemons,
  # which detach from the test).
  collect() { local c; for c in $(ps -o pid= --ppid "$1" 2>/dev/null); do
    [ "$c" = "$BASHPID" ] && continue  # not the guardian itself
    pids+=("$c"); collect "$c"; done; }
  pids=("$test_pid"); collect "$test_pid"
  for p in $(pgrep -f "$WORK" 2>/dev/null); do [ "$p" = "$BASHPID" ] || pids+=("$p"); done
  for p in $(printf '%s\n' "${pids[@]}" | sort -un); do
    [ -d "/proc/$p" ] || continue
    echo "--- pid $p: $(tr '\0' ' ' < "/proc/$p/cmdline" 2>/dev/null | cut -c1-300)" >&2
    for t in /proc/$p/task/*; do
      echo "  thread ${t##*/} $(awk '{print "state", $3}' "$t/stat" 2>/dev/null) wchan $(cat "$t/wchan" 2>/dev/null)" >&2
      sed 's/^/    /' "$t/stack" >&2 2>/dev/null || true
    done
  done
  for c in /sys/fs/fuse/connections/*; do
    [ -e "$c/waiting" ] && echo "fuse connection ${c##*/}: $(cat "$c/waiting") request(s) waiting" >&2
  done
  grep -E " fuse\.[a-z]+ " /proc/mounts >&2 || true
  # Python tracebacks (faulthandler), then everything goes.
  for p in "${pids[@]}"; do
    case "$(cat "/proc/$p/comm" 2>/dev/null)" in python*) kill -ABRT "$p" 2>/dev/null || true ;; esac
  done
  sleep 2
  echo "=== guardian: killing the test ===" >&2
  for p in "${pids[@]}"; do kill -9 "$p" 2>/dev/null || true; done
}
# Aborts the FUSE connection of every mount whose path, or whose source (an
# image of the test's), starts with one of the prefixes given
# (/sys/fs/fuse/connections/DEV/abort; DEV from /proc/self/mountinfo,
# which, unlike stat, does not ask the daemon).
abort_fuse_under() {
  local dev mp fstype source prefix ours
  while read -r dev mp fstype source; do
    case "$fstype" in fuse|fuse.*) ;; *) continue ;; esac
    ours=0
    for prefix in "$@"; do
      [ "${mp#"$prefix"}" != "$mp" ] || [ "${source#"$prefix"}" != "$source" ] && ours=1
    done
    [ "$ours" = 1 ] || continue
    local minor=${dev#*:} major=${dev%%:*}
    local id=$(( (major << 20) | minor ))
    [ -e "/sys/fs/fuse/connections/$id/abort" ] && echo 1 > "/sys/fs/fuse/connections/$id/abort" 2>/dev/null || true
  done < <(awk '{for (i = 7; $i != "-"; i++); print $3, $5, $(i + 1), $(i + 2)}' /proc/self/mountinfo)
}
guardian() {
  local test_pid=$1 deadline=$((SECONDS + ${DAXFS_TEST_TIMEOUT:-570})) dumped=0
  exec </dev/null >/dev/null  # keep no pipe of ctest's but stderr, released at exit
  while kill -0 "$test_pid" 2>/dev/null; do
    if [ "$dumped" = 0 ] && [ "$SECONDS" -ge "$deadline" ]; then
      guardian_dump "$test_pid"
      dumped=1
    fi
    sleep 0.5
  done
  # The test is gone: nothing of it may stay mounted. A mount still here
  # was left by a test that was killed, perhaps hung: its FUSE connection is
  # aborted first, so that every caller and daemon thread waiting on it
  # (even in uninterruptible sleep) is released and the unmount and the
  # kill below cannot wait too.
  # Mounts elsewhere of the test's images count too (daxfs-podman-run
  # mounts under /run; tests keep images in /dev/shm/daxfs-test-PID).
  local shm=/dev/shm/daxfs-test-$test_pid/
  abort_fuse_under "$WORK/" "$shm"
  local m
  while read -r m; do
    [ -n "$m" ] || continue
    # (no mountpoint -q: a mount whose daemon died fails its stat)
    umount "$m" 2>/dev/null || umount -l "$m" 2>/dev/null || true
  done < <(tac "$DAXFS_MOUNT_LIST" 2>/dev/null
           awk -v w="$WORK/" -v s="$shm" 'index($2, w) == 1 || index($1, w) == 1 || index($1, s) == 1 {print $2}' \
             /proc/mounts | sort -r)
  pkill -9 -f "daxfs-mount .*$WORK" 2>/dev/null || true
  rm -rf "$WORK" "${shm%/}"
}
guardian $$ &
disown
# Remembers a mount for the guardian (mount_image and debug_mount do; mounts
# under $WORK are found in /proc/mounts anyway).
remember_mount() { echo "$1" >> "$DAXFS_MOUNT_LIST"; }

# mount_image IMAGE DIR [daxfs-mount options...]
mount_image() {
  local img=$1 dir=$2; shift 2
  mkdir -p "$dir"
  remember_mount "$dir"
  "$MOUNT" "$img" "$dir" "$@"
  MOUNTS=("$dir" "${MOUNTS[@]}")
  grep -qE " $dir fuse\.(daxfs|branchfs) " /proc/mounts || fail "$dir is not mounted"
}

# debug_mount IMAGE DIR LOG: daxfs-mount -d in the background (pid in $pid),
# its request log appended to LOG.
debug_mount() {
  mkdir -p "$2"
  remember_mount "$2"
  "$MOUNT" -d "$1" "$2" 2>>"$3" &
  pid=$!
  for _ in $(seq 100); do grep -q " $2 fuse.daxfs " /proc/mounts && break; sleep 0.1; done
  grep -q " $2 fuse.daxfs " /proc/mounts || fail "debug mount of $1 did not come up"
  MOUNTS=("$2" "${MOUNTS[@]}")
}

# A tree with every file type, hard links, xattrs, odd names and mtimes.
make_tree() {
  local d=$1
  mkdir -p "$d/sub/deeper" "$d/empty"
  printf 'hello\n' > "$d/hello.txt"
  : > "$d/empty_file"
  head -c 3000000 /dev/urandom > "$d/sub/random.bin"
  seq 1 200000 > "$d/sub/deeper/numbers.txt"
  printf 'x' > "$d/name with spaces"
  ln "$d/hello.txt" "$d/sub/hardlink"
  ln -s hello.txt "$d/symlink"
  ln -s /nonexistent "$d/dangling"
  mkfifo "$d/fifo"
  mknod "$d/null" c 1 3
  mknod "$d/loop9" b 7 9
  chmod 4755 "$d/sub/random.bin"
  chown 1000:2000 "$d/sub/deeper/numbers.txt"
  truncate -s 20M "$d/sparse"
  printf 'tail' >> "$d/sparse"
  setfattr -n user.note -v "an xattr" "$d/hello.txt"
  setfattr -n security.capability -v 0sAQAAAgAgAAAAAAAAAAAAAAAAAAA= "$d/sub/random.bin"
  setfattr -n trusted.overlay.opaque -v y "$d/sub/deeper"
  touch -h -d '2001-02-03 04:05:06.123456789' "$d/symlink"
  touch -d '1999-12-31 23:59:59.5' "$d/hello.txt"
}

# One line per entry with everything stat shows that daxfs must preserve.
describe_tree() {
  (cd "$1" && find . -printf '%p|%y|%m|%U|%G|%T@|%n|%l\n' | sort
   find . ! -type d -printf '%p|%s\n' | sort
   find . \( -type c -o -type b \) -exec stat -c '%n|%t|%T' {} + | sort
   getfattr -R -h -d -m - --absolute-names . 2>/dev/null | { grep -v '^$' || true; } | sort)
}

# kernel_at_least MAJOR MINOR: whether the running kernel is that or newer.
kernel_at_least() {
  local v; v=$(uname -r)
  local major=${v%%.*} rest=${v#*.}
  local minor=${rest%%[!0-9]*}
  [ "$major" -gt "$1" ] || { [ "$major" = "$1" ] && [ "$minor" -ge "$2" ]; }
}

# overlay_view_xattrs: filters describe_tree's output of an OverlayFS view
# on kernels older than 6.7, which do not unescape a layer's escaped
# trusted.overlay.overlay.* xattrs (they show neither those nor the
# originals): the tree's own trusted.overlay.* are then left out of the
# comparison. On 6.7+ it filters nothing.
overlay_view_xattrs() {
  if kernel_at_least 6 7; then cat; else grep -v -e '^trusted\.overlay\.' -e '^# file: \./sub/deeper$' || true; fi
}

# make_branch_region REGION: a branch region whose main holds a small tree.
make_branch_region() {
  local region=$1
  mkdir -p "$WORK/base/dir/sub"
  printf 'hello\n' > "$WORK/base/hello.txt"
  printf 'shared\n' > "$WORK/base/shared.txt"
  printf 'f3\n' > "$WORK/base/f3"
  seq 1 1000 > "$WORK/base/dir/numbers.txt"
  "$MKDAXFS" -q "$WORK/base.img" "$WORK/base"
  "$DAXFS" branch init "$WORK/base.img" "$region" --delta 64M >/dev/null
}
