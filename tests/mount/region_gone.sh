#!/usr/bin/env bash
# When the image's memory goes away under a mount (here: the image file is
# truncated, which is what a removed device or revoked buffer looks like to
# the mapping), readers get EIO and the daemon unmounts and exits non-zero
# with a message, instead of crashing and leaving a dead mount behind.
source "$(dirname "$0")/lib.bash" "${1:-}"
make_tree "$WORK/src"
"$MKDAXFS" -q "$WORK/img" "$WORK/src"

# start_mount: foreground daemon with its stderr kept.
start_mount() {
  mkdir -p "$WORK/m"
  "$MOUNT" -f "$WORK/img.live" "$WORK/m" 2>"$WORK/err" & pid=$!
  MOUNTS=("$WORK/m")
  for _ in $(seq 100); do grep -q " $WORK/m " /proc/mounts && return; sleep 0.1; done
  fail "mount did not appear"
}
# expect_clean_exit: the daemon exits non-zero, says why, and unmounts.
expect_clean_exit() {
  local rc=0
  for _ in $(seq 100); do kill -0 $pid 2>/dev/null || break; sleep 0.1; done
  kill -0 $pid 2>/dev/null && fail "daemon still running after the region went away"
  wait $pid || rc=$?
  [ $rc -ne 0 ] || fail "daemon exited 0 after losing its image"
  grep -q "went away" "$WORK/err" || fail "no message on losing the image: $(cat "$WORK/err")"
  grep -q " $WORK/m " /proc/mounts && fail "a dead mount was left behind"
  return 0
}

# 1. Everything gone: the next lookup faults inside the daemon.
cp "$WORK/img" "$WORK/img.live"
start_mount
cmp "$WORK/src/hello.txt" "$WORK/m/hello.txt" || fail "content before truncation"
truncate -s 0 "$WORK/img.live"
if timeout 20 cat "$WORK/m/sub/random.bin" >/dev/null 2>"$WORK/cat.err"; then fail "read succeeded with no image"; fi
expect_clean_exit

# 2. Metadata intact, file data gone: the read itself must fail, not return
#    zeros or stale bytes.
cp "$WORK/img" "$WORK/img.live"
data_at=$("$DAXFS" stat "$WORK/img" /sub/random.bin | awk '/data: region offset/{sub(",", "", $4); print $4}')
[ -n "$data_at" ] || fail "daxfs stat shows no data offset"
start_mount
truncate -s "$data_at" "$WORK/img.live"
if timeout 20 cat "$WORK/m/sub/random.bin" >/dev/null 2>"$WORK/cat.err"; then fail "read of lost data succeeded"; fi
grep -q "Input/output error" "$WORK/cat.err" || fail "expected EIO, got: $(cat "$WORK/cat.err")"
expect_clean_exit
echo PASS
