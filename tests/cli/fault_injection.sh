#!/usr/bin/env bash
# Every write-like call of mkdaxfs, `daxfs load` and `daxfs extract` is made
# to fail in turn (ENOSPC, then EIO) through an LD_PRELOAD shim: each run
# must end with a message naming the failure, a non-zero exit, and nothing
# left behind (a previous image unchanged).
set -euo pipefail
source "$(dirname "$0")/lib.bash"
[ -f "$SHIM" ] || fail "no shim at $SHIM"

mkdir -p "$W/src/d/e" "$W/out"
echo hi > "$W/src/d/f"; head -c 200K /dev/urandom > "$W/src/d/e/big"
truncate -s 64K "$W/src/sparse"; ln -s d/f "$W/src/sym"; ln "$W/src/d/f" "$W/src/hard"
mkfifo "$W/src/fifo"; setfattr -n user.k -v v "$W/src/d/f" 2>/dev/null || true
"$BUILD/mkdaxfs" -q "$W/ref.img" "$W/src"
echo previous > "$W/out/old.img"

# count CMD...: how many calls the shim sees in a successful run.
count() { DAXFS_FAULT_COUNT="$W/n" LD_PRELOAD="$SHIM" "$@" >/dev/null 2>&1 || fail "$* fails without faults"; cat "$W/n"; }
# sweep NAME CLEANUP CMD...: fails call 1..N of CMD with each errno.
sweep() { local name=$1 cleanup=$2; shift 2
  local n; n=$(count "$@"); eval "$cleanup"
  [ "$n" -ge 3 ] || fail "$name: only $n calls seen: is the shim interposing?"
  for err in 28 5; do  # ENOSPC, EIO
    local text; text=$([ $err = 28 ] && echo "No space left on device" || echo "Input/output error")
    for i in $(seq 1 "$n"); do
      snapshot "$W/out" out
      set +e; DAXFS_FAULT_AT=$i DAXFS_FAULT_ERRNO=$err LD_PRELOAD="$SHIM" "$@" >/dev/null 2>"$W/err"; rc=$?; set -e
      [ "$rc" -ne 0 ] || fail "$name: call $i failing with errno $err still exited 0"
      [ "$rc" -lt 128 ] || fail "$name: call $i: died of signal $((rc - 128))"
      grep -q "$text" "$W/err" || fail "$name: call $i (errno $err): unclear message: $(cat "$W/err")"
      no_debris "$W/out" out "$name with call $i failing (errno $err)"
      [ "$(cat "$W/out/old.img")" = previous ] || fail "$name: previous image damaged"
    done
    echo "$name: $n calls x errno $err: all clean"
  done; }

sweep mkdaxfs 'rm "$W/out/new.img"' "$BUILD/mkdaxfs" -q "$W/out/new.img" "$W/src"
sweep "mkdaxfs replacing" 'echo previous > "$W/out/old.img"' "$BUILD/mkdaxfs" -q "$W/out/old.img" "$W/src"
tar -C "$W/src" -cf "$W/src.tar" .
sweep "mkdaxfs from tar" 'rm "$W/out/new.img"' "$BUILD/mkdaxfs" -q "$W/out/new.img" "$W/src.tar"
sweep "daxfs load" 'rm "$W/out/new.img"' "$BUILD/daxfs" load -q "$W/ref.img" "$W/out/new.img"
sweep "daxfs load replacing" 'echo previous > "$W/out/old.img"' "$BUILD/daxfs" load -q "$W/ref.img" "$W/out/old.img"
sweep "daxfs extract" 'rm -rf "$W/out/tree"' "$BUILD/daxfs" extract "$W/ref.img" "$W/out/tree"
mkdir "$W/out/existing"; touch "$W/out/existing/mine"
sweep "daxfs extract into a directory" 'rm -rf "$W/out/existing"/[!m]*' "$BUILD/daxfs" extract "$W/ref.img" "$W/out/existing"
echo PASS
