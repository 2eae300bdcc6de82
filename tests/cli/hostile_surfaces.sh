#!/usr/bin/env bash
# The new surfaces tried as a hostile user would (issue #19): sockets and
# regions that are not ours to replace, successes that did not happen,
# damage that must stop gc, zombies that hold nothing, raw control
# characters, options that do not apply and messages naming the problem.
set -euo pipefail
source "$(dirname "$0")/lib.bash" "$1"
BUILD=$(cd "$BUILD" && pwd)
D() { "$BUILD/daxfs" "$@"; }
R=shm:/daxfs-hostile-$$
trap 'rm -f /dev/shm/daxfs-hostile-$$*; for d in "${cleanup_dirs[@]}"; do mountpoint -q "$d" 2>/dev/null && umount "$d"; done; rm -rf "$W" "$IO"' EXIT
mkdir -p "$W/src/d"; echo hello > "$W/src/a"; echo deep > "$W/src/d/b"
"$BUILD/mkdaxfs" -q "$W/img" "$W/src"

# --- serve / memfd: never replace what is not a stale socket of ours ---
echo precious > "$W/file"; mkfifo "$W/fifo"; ln -s "$W/file" "$W/link"; mkdir "$W/dir"
for p in file fifo link dir; do
  expect_rc 1 D serve "$W/img" "$W/$p"
  [ -e "$W/$p" ] || fail "serve removed the $p at its socket path"
  expect_rc 1 D branch init "$W/img" "memfd:$W/$p" --delta 4M
  [ -e "$W/$p" ] || fail "branch init memfd: removed the $p"
done
[ "$(cat "$W/file")" = precious ] || fail "the file was changed"
expect_rc 1 D serve "$W/img" "$W/dir"
expect_err "is a directory"
# A second server on a live socket is refused and the first keeps serving.
start_bg "$BUILD/daxfs" serve "$W/img" "$W/sock"
first=$pid
for _ in $(seq 100); do [ -S "$W/sock" ] && break; sleep 0.05; done
expect_rc 1 D serve "$W/img" "$W/sock"
expect_err "live server"
[ -S "$W/sock" ] || fail "the second serve removed the live socket"
D cat "memfd:$W/sock" /a | grep -qx hello || fail "the first server stopped serving"
kill "$first"; wait "$first" || true
[ ! -e "$W/sock" ] || fail "the server left its socket behind"
# A stale socket (its server was killed) is replaced.
start_bg "$BUILD/daxfs" serve "$W/img" "$W/sock"
for _ in $(seq 100); do [ -S "$W/sock" ] && break; sleep 0.05; done
kill -9 "$pid"; wait "$pid" || true
[ -S "$W/sock" ] || fail "no stale socket to test with"
start_bg "$BUILD/daxfs" serve "$W/img" "$W/sock"
for _ in $(seq 100); do D cat "memfd:$W/sock" /a >/dev/null 2>&1 && break; sleep 0.05; done
D cat "memfd:$W/sock" /a | grep -qx hello || fail "a stale socket was not replaced"
kill "$pid"; wait "$pid" || true

# --- load into memfd:SOCKET cannot be a success ---
expect_rc 1 D load "$W/img" "memfd:$W/nosuch"
expect_err "daxfs serve"
! grep -q loaded "$IO/out" || fail "load claimed a success"

# --- a live region is not replaced under its users ---
D branch init "$W/img" "$R" --delta 8M -q
expect_rc 1 D branch export "$R" main "/dev/shm/daxfs-hostile-$$"
expect_err "is the branch region"
D cat "$R" /a | grep -qx hello || fail "export destroyed its own region"
D branch create "$R" keepme -q
python3 - "$BUILD/daxfs" "$R" <<'PY' &
import subprocess, sys, time
# An attached process: a branch writer that waits on stdin.
p = subprocess.Popen([sys.argv[1], "branch", "write", sys.argv[2], "keepme", "/slow"], stdin=subprocess.PIPE)
time.sleep(3)
p.stdin.close(); p.wait()
PY
holder=$!
sleep 1
expect_rc 1 D branch init "$W/img" "$R" --delta 8M
expect_err "in use by"
D branch list "$R" | grep -q keepme || fail "init replaced a region in use"
wait "$holder"

# --- a zombie holds nothing: gc goes ahead ---
python3 - "$BUILD/daxfs" "$R" <<'PY'
import os, signal, subprocess, sys, time
p = subprocess.Popen([sys.argv[1], "branch", "write", sys.argv[2], "keepme", "/z"], stdin=subprocess.PIPE)
time.sleep(1)
os.kill(p.pid, signal.SIGKILL)
time.sleep(0.5)  # dead, not reaped: a zombie
state = open(f"/proc/{p.pid}/stat").read().rsplit(")", 1)[1].split()[0]
assert state == "Z", state
r = subprocess.run([sys.argv[1], "branch", "gc", sys.argv[2]], capture_output=True, text=True)
assert r.returncode == 0, r.stderr
p.wait()
PY

# --- damage stops gc ---
cp "/dev/shm/daxfs-hostile-$$" "$W/damaged"
python3 - "$W/damaged" <<'PY'
import mmap, struct, sys
with open(sys.argv[1], "r+b") as f:
    m = mmap.mmap(f.fileno(), 0)
    ctl = m.find(b"DRCH")
    assert ctl > 0 and ctl % 4096 == 0
    struct.pack_into("<I", m, ctl + 4096 + 256, 7)  # slot 1: an invalid state
PY
expect_rc 4 D branch check "$W/damaged"
expect_rc 1 D branch gc "$W/damaged"
expect_err "gc refused"

# --- control characters never reach the terminal raw ---
expect_rc 1 D branch create "$R" "$(printf 'e\x1b[31m')"
! grep -q $'\x1b' "$IO/err" || fail "an escape character reached stderr raw"
expect_err 'e\033[31m'
printf 'x' | D branch write "$R" keepme "/$(printf 'n\x1b]0;t\x07')"
D branch ls "$R" keepme / > "$IO/out"
! grep -q $'\x1b' "$IO/out" || fail "branch ls printed a raw escape"

# --- sizes and messages that name the real problem ---
expect_rc 1 D branch init "$W/img" "shm:/daxfs-hostile-$$-b" --delta 99999999999999999999
expect_err "too large"
expect_rc 1 D serve "$W/img" "$W/dir"
expect_err "is a directory"
expect_rc 1 "$BUILD/mkdaxfs" --tar "$W/o.img" "$W/src"
expect_err "--tar reads an archive"
seq 1 200000 > "$W/src/big"; tar czf "$W/t.tgz" -C "$W" src; head -c 100 "$W/t.tgz" > "$W/trunc.tgz"
expect_rc 1 "$BUILD/mkdaxfs" "$W/o.img" "$W/trunc.tgz"
expect_err "truncated gzip"
expect_rc 1 D stat "$W/img" "/$(printf 't%.0s' $(seq 256))"
expect_err "name longer than 255"

# --- options that do not apply are refused ---
expect_rc 2 "$BUILD/mkdaxfs" --objects '' "$W/o.img" "$W/src"
[ ! -e "$W/o.img" ] || fail "--objects '' built an image"
cd "$W"
expect_rc 1 "$BUILD/mkdaxfs" --objects X X src
[ ! -e X ] || fail "mkdaxfs --objects X X made X"
# A failed build leaves no object directory of its own behind.
expect_rc 1 "$BUILD/mkdaxfs" --objects "$W/newobjs" "$W/o.img" "$W/trunc.tgz"
[ ! -e "$W/newobjs" ] || fail "a failed build left the object directory it made"
mkdir "$W/mnt"
expect_rc 2 "$BUILD/daxfs-mount" -o overlay_lower "$R" "$W/mnt"
expect_err "needs an object-store image"
expect_rc 2 "$BUILD/daxfs-mount" -o objects="$W" "$W/img" "$W/mnt"
expect_err "needs an object-store image"
! mountpoint -q "$W/mnt" || fail "mounted anyway"
echo "PASS"
