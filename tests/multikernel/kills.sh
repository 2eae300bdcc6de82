#!/usr/bin/env bash
# Kernels dying at any instant (issue: many kernels, one region): a branch
# region in a host tmpfs file is the ivshmem BAR of a surviving guest s1 and
# of victim guests v1, v2, ... booted one after the other, each killed
# (kill -9 of its qemu: its kernel ends at once, whatever it holds in the
# shared memory) at a random moment of its work: creating, writing,
# committing into main, aborting, gc. The host works on the region
# meanwhile and kill -9s some of its own commits. Then:
#  * s1 and the host never waited longer than SLOW s for any call (the
#    lease timeout is TIMEOUT s: what a dead kernel held is taken over);
#  * daxfs branch check is clean;
#  * every acknowledged commit is in main whole, no acknowledged abort is;
#    a killed commit is in main whole or not at all (never torn), and
#    nothing of the survivors' that was not acknowledged is in main;
#  * the branches the dead left active can be aborted, gc reclaims them,
#    and the region checks clean again.
# Usage: kills.sh [BUILD_DIR]; exit 0 PASS, 1 FAIL, 77 SKIP.
# DAXFS_MK_KILLS: victim kernels killed (default 12; 50 for a long run).
set -euo pipefail
source "$(dirname "$0")/vm.bash" "${1:-}"
export LC_ALL=C
KILLS=${DAXFS_MK_KILLS:-12}
SIZE=64M
TIMEOUT=2
SLOW=$((4 * TIMEOUT + 10))
FILES=4
WORDS=$(( (64 << 20) - 4096 ))
mk_prepare
mk_initramfs_with_ctl
shm=$(mk_shm_file region $SIZE)
mk_branch_region "$shm" 40M $TIMEOUT
D() { "$BUILD/daxfs" "$@"; }

mk_boot s1 "$shm" $SIZE kill_worker files=$FILES words=$WORDS slow=$SLOW

# The host's own work, in the background until $WORK/stop appears: the
# same rounds, every fourth commit killed (kill -9) a random moment after
# it starts. Acks: commit/abort NAME; killed: "unknown NAME".
host_log=$WORK/host.log
: > "$host_log"
host_worker() {
  local r=0 b k t0 d pid
  while [ ! -e "$WORK/stop" ]; do
    r=$((r + 1)); b=host-$r
    t0=$EPOCHREALTIME
    D branch create "$shm" "$b" >/dev/null 2>>"$host_log.err" || { echo "fail create $b" >> "$host_log"; continue; }
    for k in $(seq 1 $FILES); do echo "$b file $k" | D branch write "$shm" "$b" "/$b-$k" 2>>"$host_log.err" || echo "fail write $b" >> "$host_log"; done
    if [ $((r % 4)) = 0 ]; then
      D branch commit "$shm" "$b" >/dev/null 2>&1 &
      pid=$!
      sleep "0.0$((RANDOM % 10))"
      kill -9 $pid 2>/dev/null || true
      wait $pid 2>/dev/null && echo "commit $b" >> "$host_log" || echo "unknown $b" >> "$host_log"
    elif [ $((r % 3)) != 0 ]; then
      D branch commit "$shm" "$b" >/dev/null 2>>"$host_log.err" && echo "commit $b" >> "$host_log" || echo "fail commit $b" >> "$host_log"
    else
      D branch abort "$shm" "$b" >/dev/null 2>>"$host_log.err" && echo "abort $b" >> "$host_log" || echo "fail abort $b" >> "$host_log"
    fi
    d=$(echo "$EPOCHREALTIME - $t0" | bc)
    echo "round $d" >> "$host_log"
    sleep 0.2
  done
}
host_worker &
host_pid=$!

start=$EPOCHREALTIME
for k in $(seq 1 "$KILLS"); do
  v=v$k
  mk_boot $v "$shm" $SIZE kill_worker files=$FILES words=$WORDS slow=$SLOW
  for _ in $(seq 600); do mk_console $v | grep -q '^MK-INFO working' && break; sleep 0.1; done
  mk_console $v | grep -q '^MK-INFO working' || { mk_tail $v; fail "victim $v never started working"; }
  sleep "$((RANDOM % 3)).$((RANDOM % 10))"
  mk_kill $v KILL
done
kill_phase=$(echo "$EPOCHREALTIME - $start" | bc)
touch "$WORK/stop"
"$MK_CTL_HOST" add "$shm" $WORDS 1 >/dev/null
wait $host_pid
mk_wait s1 300 || fail "survivor s1 failed: $(mk_console s1 | grep 'failed' | head -n 3)"

# --- checks ----------------------------------------------------------------
D branch check -q "$shm" || fail "daxfs branch check after $KILLS kernels died"
grep -q '^fail' "$host_log" && fail "host calls failed: $(grep '^fail' "$host_log" | head -n 3); $(head -n 3 "$host_log.err")"
slow_host=$(awk '/^round/ && $2 > m {m = $2} END {print m + 0}' "$host_log")
acks=$WORK/acks
grep -E '^(commit|abort|unknown) ' "$host_log" > "$acks" || true
for g in s1 $(seq -f 'v%g' 1 "$KILLS"); do mk_console $g | sed -n 's/^MK-INFO ack //p' >> "$acks"; done
D branch ls "$shm" main / | awk '{print $NF}' > "$WORK/main.ls"
# Branches with files in main, each whole (all FILES files, right bytes).
sed -n "s/^\(.*-[0-9]*\)-[0-9]*$/\1/p" "$WORK/main.ls" | sort | uniq -c > "$WORK/in_main"
torn=$(awk -v f=$FILES '$1 != f' "$WORK/in_main")
[ -z "$torn" ] || fail "commits in main that are not whole: $torn"
while read -r _ b; do
  for k in $(seq 1 $FILES); do
    [ "$(D branch cat "$shm" main "/$b-$k")" = "$b file $k" ] || fail "main's /$b-$k has the wrong bytes"
  done
  grep -qx "commit $b" "$acks" && continue
  case $b in
    v*) ;;                                          # a victim died before acknowledging
    host-*) grep -qx "unknown $b" "$acks" || fail "host's $b is in main but was not committed" ;;
    *) fail "$b is in main but was never acknowledged" ;;
  esac
done < "$WORK/in_main"
while read -r what b; do
  in=$(grep -c " $b\$" "$WORK/in_main" || true)
  if [ "$what" = commit ] && [ "$in" = 0 ]; then fail "acknowledged commit $b is not in main"; fi
  if [ "$what" = abort ] && [ "$in" != 0 ]; then fail "aborted $b is in main"; fi
done < "$acks"
commits=$(grep -c '^commit ' "$acks" || true)
aborts=$(grep -c '^abort ' "$acks" || true)
killed_commits=$(grep -c '^unknown ' "$acks" || true)

# What the dead left active: aborted by the host, each within SLOW s.
slow_abort=0
for b in $(D branch list "$shm" | awk 'NR > 1 && $2 == "active" && $1 != "main" {print $1}'); do
  t0=$EPOCHREALTIME
  if ! D branch abort "$shm" "$b" >/dev/null 2>"$WORK/abort.err"; then
    # A dead kernel's commit whose merge record it had published is
    # finished as committed (the abort then finds no active branch): fine
    # if main has the branch whole (checked above).
    state=$(D branch list "$shm" | awk -v b="$b" '$1 == b {s = $2} END {print s}')
    [ "$state" = committed ] && awk '{print $2}' "$WORK/in_main" | grep -qx -- "$b" ||
      fail "abort of $b, left by the dead: $(cat "$WORK/abort.err"); now: $(D branch list "$shm" | grep "^$b ")"
  fi
  slow_abort=$(echo "$EPOCHREALTIME - $t0" | bc | awk -v m="$slow_abort" '{print ($1 > m) ? $1 : m}')
done
left=$(D branch list "$shm" | awk 'NR > 1 && $2 == "active" && $1 != "main"' | wc -l)
[ "$left" = 0 ] || fail "$left branches still active after aborting all"
D branch gc "$shm" >/dev/null || fail "gc after the kills"
D branch check -q "$shm" || fail "daxfs branch check after gc"

maxop=$(mk_result s1 maxop)
for t in "$maxop" "$slow_host" "$slow_abort"; do
  [ "$(echo "$t <= $SLOW" | bc)" = 1 ] || fail "a call took $t s (s1's slowest $maxop, the host's slowest round $slow_host, abort $slow_abort; limit $SLOW)"
done
echo "$KILLS guest kernels killed at random moments in $kill_phase s, $killed_commits host commits kill -9ed;" \
     "$commits commits and $aborts aborts acknowledged, all as acknowledged in main, no commit torn;" \
     "slowest call of the survivor $maxop s, slowest host round $slow_host s, slowest abort of a dead kernel's branch $slow_abort s" \
     "(lease timeout $TIMEOUT s); region checks clean"
echo PASS
