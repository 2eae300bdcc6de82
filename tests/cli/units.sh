#!/usr/bin/env bash
# The systemd units in dist/systemd: systemd-analyze verify accepts them,
# and their commands do what they say when run (paths redirected into a
# scratch directory): the serve unit serves the image on its socket, the
# region unit makes a branch region and, run again, keeps it.
set -euo pipefail
source "$(dirname "$0")/lib.bash" "$1"
UNITS=$(cd "$(dirname "$0")/../../dist/systemd" && pwd)
BUILD=$(cd "$BUILD" && pwd)  # units name absolute paths
command -v systemd-analyze >/dev/null || { echo "SKIP: no systemd-analyze"; exit 77; }
mkdir -p "$W/units" "$W/lib" "$W/run" "$W/shm" "$W/src/d"
echo hello > "$W/src/d/f"
"$BUILD/mkdaxfs" -q "$W/lib/test.img" "$W/src"
# Copies that name this build's tools and this scratch directory.
redirect() {
  sed -e "s|/usr/bin/daxfs|$BUILD/daxfs|g" -e "s|/var/lib/daxfs|$W/lib|g" -e "s|/run/daxfs|$W/run|g" \
      -e "s|/dev/shm/|$W/shm/|g" -e "s|/etc/daxfs|$W/etc|g" "$1"
}
redirect "$UNITS/daxfs-serve@.service" > "$W/units/daxfs-serve@test.service"
redirect "$UNITS/daxfs-region@.service" > "$W/units/daxfs-region@test.service"
cp "$UNITS/srv-app.mount" "$W/units/srv-app.mount"
for u in "$W"/units/*; do
  systemd-analyze verify --man=no "$u" > "$IO/out" 2>&1 || fail "systemd-analyze verify $(basename "$u"): $(cat "$IO/out")"
  # (verify also reports problems of other units on this machine: only ours count)
  ! grep -qF "$(basename "$u")" "$IO/out" || fail "$(basename "$u"): $(grep -F "$(basename "$u")" "$IO/out")"
done
# ExecStart= lines of a unit, %i expanded, in order.
execs() { sed -n 's/^ExecStart=//p' "$1" | sed "s/%i/test/g; s/\$SERVE_OPTS//"; }
# The serve unit: its command serves the image on its socket.
cmd=$(execs "$W/units/daxfs-serve@test.service")
eval "exec $cmd" > /dev/null 2>&1 < /dev/null & pid=$!
trap 'kill "$pid" 2>/dev/null || true; for d in "${cleanup_dirs[@]}"; do mountpoint -q "$d" 2>/dev/null && umount "$d"; done; rm -rf "$W" "$IO"' EXIT
for _ in $(seq 100); do [ -S "$W/run/test.sock" ] && break; sleep 0.05; done
[ -S "$W/run/test.sock" ] || fail "daxfs-serve@: no socket ($cmd)"
[ "$("$BUILD/daxfs" cat "memfd:$W/run/test.sock" /d/f)" = hello ] || fail "daxfs-serve@: the served image does not read"
kill "$pid"; wait "$pid" 2>/dev/null || true
# The region unit: made once, kept (with its branches) when run again.
run_region() { while IFS= read -r line; do DELTA=16M eval "$line" || return 1; done < <(execs "$W/units/daxfs-region@test.service"); }
run_region || fail "daxfs-region@ failed"
"$BUILD/daxfs" branch create "$W/shm/daxfs-test.region" kept > /dev/null
run_region || fail "daxfs-region@ failed the second time"
"$BUILD/daxfs" branch list "$W/shm/daxfs-test.region" | grep -q '^kept ' || fail "daxfs-region@ replaced an existing region"
echo PASS
