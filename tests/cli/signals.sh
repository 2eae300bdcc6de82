#!/usr/bin/env bash
# SIGINT, SIGTERM and SIGKILL at several points of mkdaxfs, `daxfs load`
# and `daxfs extract` of a large tree leave nothing behind: no temporary
# names, no partial image or tree, a previous image intact. Without
# O_TMPFILE (forced through the shim) the catchable signals still clean up.
set -euo pipefail
source "$(dirname "$0")/lib.bash"

# ~160 MiB in 3000 small and 40 large files: long enough to interrupt.
mkdir -p "$W/src" "$W/out"
for i in $(seq 1 3000); do echo "$i" > "$W/src/s$i"; done
head -c 4M /dev/urandom > "$W/r"
for i in $(seq 1 40); do cp "$W/r" "$W/src/r$i"; done
"$BUILD/mkdaxfs" -q "$W/ref.img" "$W/src"

# run_killed SIG DELAY CMD...: starts CMD, sends SIG after DELAY seconds,
# sets $rc to its exit status (128+SIG if the signal ended it).
run_killed() { local sig=$1 delay=$2; shift 2
  start_bg "$@"
  sleep "$delay"; kill -s "$sig" "$pid" 2>/dev/null || true
  set +e; wait "$pid"; rc=$?; set -e; }
declare -A num=([INT]=2 [TERM]=15 [HUP]=1 [KILL]=9)
hits=0

check_outcome() {  # WHAT SIG: killed by SIG, or finished cleanly
  local what=$1 sig=$2
  if [ "$rc" = $((128 + ${num[$sig]})) ]; then hits=$((hits + 1))
  elif [ "$rc" != 0 ]; then fail "$what: SIG$sig gave exit $rc: $(cat "$IO/err")"; fi
}

# complete_or_absent PATH: an output is either missing or whole (a signal may
# arrive after it was published); removes it.
complete_or_absent() {
  [ -e "$1" ] || return 0
  "$BUILD/daxfs" check -q "$1" || fail "$1: incomplete output left at the final name"
  rm -f "$1"; }

for sig in INT TERM KILL; do
  for delay in 0.05 0.2 0.45; do
    # A new image: nothing at all, or the complete image.
    snapshot "$W/out" out
    run_killed $sig $delay "$BUILD/mkdaxfs" -q "$W/out/new.img" "$W/src"
    check_outcome "mkdaxfs" $sig
    complete_or_absent "$W/out/new.img"
    no_debris "$W/out" out "mkdaxfs SIG$sig after ${delay}s"
    # Replacing an image: the old one stays intact until the new one is complete.
    echo old > "$W/out/old.img"; snapshot "$W/out" out
    run_killed $sig $delay "$BUILD/mkdaxfs" -q "$W/out/old.img" "$W/src"
    check_outcome "mkdaxfs over an image" $sig
    if ! grep -qx old "$W/out/old.img"; then "$BUILD/daxfs" check -q "$W/out/old.img" || fail "old image damaged by SIG$sig"; fi
    no_debris "$W/out" out "mkdaxfs (replacing) SIG$sig after ${delay}s"
    rm -f "$W/out/old.img"
    # daxfs load into a file.
    snapshot "$W/out" out
    run_killed $sig "$(python3 -c "print($delay / 4)")" "$BUILD/daxfs" load -q "$W/ref.img" "$W/out/loaded.img"
    check_outcome "load" $sig
    complete_or_absent "$W/out/loaded.img"
    no_debris "$W/out" out "load SIG$sig"
    # daxfs extract into a new directory and into an existing one.
    [ $sig = KILL ] && continue  # a directory tree cannot be unnamed: see README
    snapshot "$W/out" out
    run_killed $sig $delay "$BUILD/daxfs" extract --no-owners "$W/ref.img" "$W/out/tree"
    check_outcome "extract" $sig
    if [ -e "$W/out/tree" ]; then diff -r "$W/src" "$W/out/tree" >/dev/null || fail "partial tree at the final name"; fi
    rm -rf "$W/out/tree"
    no_debris "$W/out" out "extract SIG$sig"
    mkdir "$W/out/existing"; touch "$W/out/existing/mine"; snapshot "$W/out/existing" existing
    run_killed $sig $delay "$BUILD/daxfs" extract --no-owners "$W/ref.img" "$W/out/existing"
    check_outcome "extract into a directory" $sig
    [ "$rc" = 0 ] || no_debris "$W/out/existing" existing "extract into a directory SIG$sig"
    rm -rf "$W/out/existing"
  done
done
[ "$hits" -ge 12 ] || fail "only $hits runs were interrupted: the tree is too small to test this"

# No O_TMPFILE: the hidden temporary name is removed on catchable signals.
# The signal is sent once that name exists, so it hits the window that matters.
export DAXFS_FAULT_NO_TMPFILE=1
for sig in INT TERM HUP; do
  snapshot "$W/out" out
  start_bg env LD_PRELOAD="$SHIM" "$BUILD/mkdaxfs" -q "$W/out/new.img" "$W/src"
  for _ in $(seq 1 1000); do compgen -G "$W/out/.new.img.tmp.*" >/dev/null && break; sleep 0.01; done
  compgen -G "$W/out/.new.img.tmp.*" >/dev/null || fail "fallback: no hidden temporary name seen"
  kill -s $sig "$pid"
  set +e; wait "$pid"; rc=$?; set -e
  [ "$rc" = $((128 + ${num[$sig]})) ] || fail "fallback: SIG$sig did not interrupt (exit $rc): $(cat "$IO/err")"
  no_debris "$W/out" out "mkdaxfs without O_TMPFILE, SIG$sig"
done
# And the fallback still produces the image.
env LD_PRELOAD="$SHIM" "$BUILD/mkdaxfs" -q "$W/out/new.img" "$W/src"
cmp "$W/out/new.img" "$W/ref.img" >/dev/null || "$BUILD/daxfs" check -q "$W/out/new.img"
echo PASS
