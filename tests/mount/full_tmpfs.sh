#!/usr/bin/env bash
# An image whose pages cannot be provided (a sparse file on a full tmpfs)
# never kills daxfs-mount with SIGBUS: before mounting it fails with a clear
# message and exit status 1, leaving nothing mounted; during service the
# region guard fails the read with EIO, unmounts and exits 1.
source "$(dirname "$0")/lib.bash" "${1:-}"
make_tree "$WORK/src"
"$MKDAXFS" -q "$WORK/img" "$WORK/src"
full=$WORK/full m=$WORK/m
mkdir -p "$full" "$m"
mount -t tmpfs -o size=8M daxfs-test-full "$full"
MOUNTS=("$full")
size=$(stat -c %s "$WORK/img")

# Images placed before the tmpfs fills up:
truncate -s 1M "$full/holes.img"                     # all holes
truncate -s "$size" "$full/head.img"                  # superblock only
dd if="$WORK/img" of="$full/head.img" bs=4096 count=1 conv=notrunc status=none
cp --sparse=always "$WORK/img" "$full/sparse.img"    # file data with holes
[ "$(stat -c %b "$full/sparse.img")" -lt $((size / 512)) ] || skip "the image has no holes to lose"
cat /dev/zero > "$full/fill" 2>/dev/null || true

# expect_refused IMAGE [options]: exit 1, a message, nothing mounted.
expect_refused() {
  local img=$1 rc=0; shift
  "$MOUNT" "$@" "$img" "$m" 2>"$WORK/err" || rc=$?
  [ $rc = 1 ] || fail "$img $*: exit $rc, want 1: $(cat "$WORK/err")"
  grep -q "cannot be read.*nothing mounted" "$WORK/err" || fail "$img: unclear message: $(cat "$WORK/err")"
  grep -q " $m " /proc/mounts && fail "$img: left a mount behind"
  return 0
}
expect_refused "$full/holes.img"
expect_refused "$full/head.img"
expect_refused "$full/head.img" -o verify
expect_refused "$full/holes.img" -f

# During service: metadata is there, a file's data is a hole that cannot be
# filled. The read fails, the daemon says why, unmounts and exits 1.
"$MOUNT" -f "$full/sparse.img" "$m" 2>"$WORK/err" & pid=$!
MOUNTS=("$m" "$full")
for _ in $(seq 100); do [ -e "$m/hello.txt" ] && break; sleep 0.1; done
cmp "$WORK/src/hello.txt" "$m/hello.txt" || fail "content of a file that is not a hole"
if timeout 20 cat "$m/sparse" >/dev/null 2>"$WORK/cat.err"; then fail "read of an unprovidable hole succeeded"; fi
for _ in $(seq 100); do kill -0 $pid 2>/dev/null || break; sleep 0.1; done
kill -0 $pid 2>/dev/null && fail "daemon still running"
rc=0; wait $pid || rc=$?
[ $rc = 1 ] || fail "daemon exit status $rc, want 1: $(cat "$WORK/err")"
grep -q "went away" "$WORK/err" || fail "no message from the daemon: $(cat "$WORK/err")"
grep -q " $m " /proc/mounts && fail "a dead mount was left behind"
echo PASS
