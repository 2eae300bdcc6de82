#!/usr/bin/env bash
# FUSE over io_uring (-o uring=...): with fuse.enable_uring=Y the ring serves
# image mounts (cache=direct, cache=kernel), object-store mounts
# (passthrough) and branch mounts (writes, commits while others read); every
# one matches its source; the ring's completion counts grow (on the queue of
# each CPU that reads); umount and SIGTERM end the daemon, kill -9 leaves
# ENOTCONN; uring=on fails clearly when the kernel has the ring switched off;
# a bad value is a usage error.
source "$(dirname "$0")/lib.bash" "${1:-}"
PARAM=/sys/module/fuse/parameters/enable_uring
[ -e "$PARAM" ] || skip "this kernel has no FUSE over io_uring ($PARAM missing; needs 6.14+, CONFIG_FUSE_IO_URING)"
OLD=$(cat "$PARAM")
FUSECTL_MOUNTED=
readers=()
restore() {
  # Readers left by a failed check would outlive the test and hold its output.
  for p in "${readers[@]}"; do kill "$p" 2>/dev/null || true; done
  echo "$OLD" > "$PARAM" 2>/dev/null || true
  cleanup
  [ -z "$FUSECTL_MOUNTED" ] || umount /sys/fs/fuse/connections 2>/dev/null || true
}
trap restore EXIT
echo Y > "$PARAM" 2>/dev/null || skip "cannot set $PARAM"
[ "$(cat "$PARAM")" = Y ] || skip "cannot set $PARAM"
# The daemon sets up a ring per possible CPU; the test can run on ALLOWED.
POSSIBLE=$(python3 -c '
import re
n = 0
for part in open("/sys/devices/system/cpu/possible").read().strip().split(","):
    a, _, b = part.partition("-")
    n += int(b or a) - int(a) + 1
print(n)')
read -ra ALLOWED <<<"$(python3 -c 'import os; print(*sorted(os.sched_getaffinity(0)))')"

mkdir -p "$WORK/src"
make_tree "$WORK/src/rich"
cp -a /usr/include/linux "$WORK/src/"
head -c 8000000 /dev/urandom > "$WORK/src/big.bin"
"$MKDAXFS" -q "$WORK/img" "$WORK/src"
"$MKDAXFS" -q --objects "$WORK/objs" "$WORK/oimg" "$WORK/src"
want_tar=$(tar --sort=name --numeric-owner -C "$WORK/src" -cf - . | sha256sum)
want_meta=$(describe_tree "$WORK/src")

# A usage error: exit status 2, naming the option.
rc=0; "$MOUNT" "$WORK/img" "$WORK/bogus" -o uring=bogus 2>"$WORK/err" || rc=$?
[ "$rc" = 2 ] || fail "uring=bogus: exit status $rc, expected 2"
grep -q "uring=bogus" "$WORK/err" || fail "uring=bogus: message does not name it: $(cat "$WORK/err")"

# abort_connection DIR: ends the FUSE connection of the mount at DIR.
abort_connection() {
  local dev
  dev=$(awk -v d="$1" '$5 == d {print $3}' /proc/self/mountinfo | head -1)
  [ -n "$dev" ] || return 0
  if [ ! -d /sys/fs/fuse/connections/"${dev#*:}" ] &&
    mount -t fusectl fusectl /sys/fs/fuse/connections 2>/dev/null; then
    FUSECTL_MOUNTED=1
  fi
  echo 1 > /sys/fs/fuse/connections/"${dev#*:}"/abort 2>/dev/null || true
}

# The completions the daemon's rings posted, one number per ring.
ring_cqes() {
  local pid=$1 f
  for f in /proc/"$pid"/fd/*; do
    [ "$(readlink "$f" 2>/dev/null)" = "anon_inode:[io_uring]" ] || continue
    sed -n 's/^CqTail:[[:space:]]*//p' "/proc/$pid/fdinfo/${f##*/}"
  done
}
sum() { local s=0 x; for x in "$@"; do s=$((s + x)); done; echo $s; }

# fg_mount IMAGE DIR LOG [options]: daxfs-mount -f in the background; PID set.
fg_mount() {
  local img=$1 dir=$2 log=$3; shift 3
  mkdir -p "$dir"
  "$MOUNT" -f "$img" "$dir" "$@" 2>"$log" &
  PID=$!
  MOUNTS=("$dir" "${MOUNTS[@]}")
  for _ in $(seq 100); do
    if grep -qE " $dir fuse\.(daxfs|branchfs) " /proc/mounts; then
      # INIT is answered in the loop after the mount: the transport line
      # follows the first request.
      stat "$dir" >/dev/null
      for _ in $(seq 100); do grep -q "transport:" "$log" && return 0; sleep 0.1; done
      fail "$dir: no transport line: $(cat "$log")"
    fi
    kill -0 "$PID" 2>/dev/null || fail "$dir: daxfs-mount exited: $(cat "$log")"
    sleep 0.1
  done
  fail "$dir: not mounted after 10 s"
}

# umount_and_wait DIR LOG: umount ends the daemon, status 0, and it reports
# how many requests the ring served (SERVED).
umount_and_wait() {
  local dir=$1 log=$2 rc=0
  umount "$dir" || fail "$dir: umount failed"
  timeout 10 tail --pid="$PID" -f /dev/null || fail "$dir: daemon still running 10 s after umount"
  wait "$PID" || rc=$?
  [ "$rc" = 0 ] || fail "$dir: daemon exit status $rc: $(cat "$log")"
  SERVED=$(sed -n 's/^daxfs-mount: io_uring served \([0-9]*\) requests$/\1/p' "$log")
}

check_tree() {  # check_tree DIR WHAT
  local dir=$1 what=$2
  diff -r --no-dereference "$WORK/src" "$dir" >/dev/null 2>&1 ||
    diff -r --no-dereference "$WORK/src" "$dir" | grep -v '^File .* is a \(fifo\|character special file\|block special file\)' | grep . &&
    fail "$what: contents differ"
  [ "$(describe_tree "$dir")" = "$want_meta" ] || fail "$what: metadata differs"
  [ "$(tar --sort=name --numeric-owner -C "$dir" -cf - . | sha256sum)" = "$want_tar" ] || fail "$what: tar differs"
}

n=0
for mode in "img cache=direct" "img cache=kernel" "oimg cache=direct" "oimg cache=kernel"; do
  set -- $mode
  img=$1 opt=$2 dir=$WORK/m$n log=$WORK/log$n; n=$((n + 1))
  fg_mount "$WORK/$img" "$dir" "$log" -o uring=on,$opt
  grep -q "transport: FUSE over io_uring" "$log" || fail "$img $opt: $(cat "$log")"
  grep -q passthrough "$log" && fail "$img $opt: passthrough lost: $(cat "$log")"
  before=$(sum $(ring_cqes "$PID"))
  [ "$(ring_cqes "$PID" | wc -l)" = "$POSSIBLE" ] || fail "$img $opt: expected one io_uring per possible CPU ($POSSIBLE)"
  check_tree "$dir" "$img $opt"
  after=$(sum $(ring_cqes "$PID"))
  [ "$after" -gt $((before + 100)) ] || fail "$img $opt: the rings completed $((after - before)) requests"
  # Readers on every CPU at once: each CPU's queue serves its callers.
  read -ra q0 <<<"$(ring_cqes "$PID" | tr '\n' ' ')"
  pids=()
  for cpu in "${ALLOWED[@]}"; do
    for i in 1 2; do
      (taskset -c "$cpu" tar --sort=name --numeric-owner -C "$dir" -cf - . | sha256sum > "$WORK/sum.$cpu.$i") &
      pids+=($!)
    done
  done
  for p in "${pids[@]}"; do wait "$p"; done
  for f in "$WORK"/sum.*; do [ "$(cat "$f")" = "$want_tar" ] || fail "$img $opt: concurrent tar differs ($f)"; done
  rm -f "$WORK"/sum.*
  read -ra q1 <<<"$(ring_cqes "$PID" | tr '\n' ' ')"
  # cache=kernel may serve it all from the page cache; a queue of a CPU the
  # test may not run on gets nothing.
  if [ "$opt" = cache=direct ] && [ "${#ALLOWED[@]}" = "$POSSIBLE" ]; then
    for i in "${!q0[@]}"; do
      [ "${q1[$i]}" -gt "${q0[$i]}" ] || fail "$img $opt: ring $i served none of the concurrent readers"
    done
  fi
  umount_and_wait "$dir" "$log"
  [ -n "$SERVED" ] && [ "$SERVED" -gt 100 ] || fail "$img $opt: daemon says the ring served '${SERVED}' requests"
  MOUNTS=("${MOUNTS[@]:1}")
done

# A branch mount on the ring: writes travel in the payload buffers; commits
# (a write to the control file) run off the ring threads, because they
# invalidate the kernel's entries, which waits for directory locks that
# callers on the same CPU may hold while their lookup waits on the ring.
make_branch_region "$WORK/region"
fg_mount "$WORK/region" "$WORK/b" "$WORK/blog" -o uring=on
grep -q "transport: FUSE over io_uring" "$WORK/blog" || fail "branch: $(cat "$WORK/blog")"
head -c 3000000 /dev/urandom > "$WORK/wdata"
stop_readers=$WORK/stop_readers
for cpu in "${ALLOWED[@]}"; do
  # Lookups of names never seen (nothing cached) in the root, whose entries
  # a commit invalidates, and a walk of the tree.
  taskset -c "$cpu" python3 -c '
import os, random, sys
root, stop = sys.argv[1:]
while not os.path.exists(stop):
    for _ in range(200):
        os.path.exists("%s/nx%d" % (root, random.getrandbits(48)))
    for d, _, _ in os.walk(root):
        pass
' "$WORK/b" "$stop_readers" &
  readers+=($!)
done
for i in 1 2 3 4 5; do
  "$DAXFS" branch create "$WORK/region" "w$i" >/dev/null
  cp "$WORK/wdata" "$WORK/b/@w$i/written$i.bin"
  printf 'appended %s\n' "$i" >> "$WORK/b/@w$i/hello.txt"
  mkdir "$WORK/b/@w$i/newdir$i"
  # A deadlocked commit cannot be killed (the request is with the daemon):
  # abort the connection then, so that the test ends.
  (printf commit > "$WORK/b/@w$i/.branchfs_ctl") &
  commit=$!
  for _ in $(seq 200); do kill -0 "$commit" 2>/dev/null || break; sleep 0.1; done
  if kill -0 "$commit" 2>/dev/null; then
    touch "$stop_readers"
    abort_connection "$WORK/b"
    fail "branch: commit $i hung (deadlock on the ring)"
  fi
  wait "$commit" || fail "branch: commit $i failed"
  cmp "$WORK/wdata" "$WORK/b/written$i.bin" || fail "branch: written$i.bin in main reads back different"
  [ -d "$WORK/b/newdir$i" ] || fail "branch: newdir$i missing in main after the commit"
done
touch "$stop_readers"
for p in "${readers[@]}"; do wait "$p"; done
[ "$(tail -1 "$WORK/b/hello.txt")" = "appended 5" ] || fail "branch: appends lost: $(cat "$WORK/b/hello.txt")"
umount_and_wait "$WORK/b" "$WORK/blog"
[ -n "$SERVED" ] && [ "$SERVED" -gt 10 ] || fail "branch: the ring served '${SERVED}' requests"
MOUNTS=("${MOUNTS[@]:1}")

# SIGTERM ends a ring daemon (the signal must not get lost in a ring thread)
# and it unmounts; -s (one /dev/fuse thread) too.
for extra in "" "-s"; do
  fg_mount "$WORK/img" "$WORK/t" "$WORK/tlog" -o uring=on $extra
  cmp "$WORK/src/big.bin" "$WORK/t/big.bin" || fail "sigterm $extra: reads differ"
  kill -TERM "$PID"
  timeout 10 tail --pid="$PID" -f /dev/null || fail "SIGTERM $extra: daemon still running after 10 s"
  # (Status 1, as with /dev/fuse: libfuse's loop reports the signal.)
  rc=0; wait "$PID" || rc=$?
  [ "$rc" -le 1 ] || fail "SIGTERM $extra: exit status $rc: $(cat "$WORK/tlog")"
  grep -q "io_uring served" "$WORK/tlog" || fail "SIGTERM $extra: ring not stopped: $(cat "$WORK/tlog")"
  grep -q " $WORK/t " /proc/mounts && fail "SIGTERM $extra: still mounted"
  MOUNTS=("${MOUNTS[@]:1}")
done

# kill -9 of a ring daemon: the mount answers ENOTCONN at once, no hang.
fg_mount "$WORK/img" "$WORK/k" "$WORK/klog" -o uring=on
cat "$WORK/k/big.bin" >/dev/null
kill -9 "$PID"
wait "$PID" 2>/dev/null || true
# A request caught in the ring's teardown (asynchronous, io_uring's exit
# work holds /dev/fuse a moment longer) ends ECONNABORTED; later ones find
# the connection gone: ENOTCONN.
out=$(timeout 10 cat "$WORK/k/big.bin" 2>&1 >/dev/null) && fail "read after kill -9 succeeded"
case "$out" in
  *"not connected"* | *"connection abort"*) ;;
  *) fail "after kill -9: expected ENOTCONN, got: $out" ;;
esac
# The teardown's length depends on the machine's load: retry for 5 s.
for _ in $(seq 50); do
  sleep 0.1
  out=$(timeout 10 cat "$WORK/k/big.bin" 2>&1 >/dev/null) && fail "read after kill -9 succeeded"
  case "$out" in *"not connected"*) break ;; esac
done
case "$out" in
  *"not connected"*) ;;
  *) fail "after kill -9: expected ENOTCONN within 5 s, got: $out" ;;
esac
umount "$WORK/k"
MOUNTS=("${MOUNTS[@]:1}")

# A daemonized mount (the default) serves through the ring too.
mount_image "$WORK/img" "$WORK/d" -o uring=on
cmp "$WORK/src/big.bin" "$WORK/d/big.bin" || fail "daemonized uring mount reads differ"
umount "$WORK/d"
MOUNTS=("${MOUNTS[@]:1}")

# The ring switched off in the kernel.
echo N > "$PARAM"
mkdir -p "$WORK/off"
rc=0; "$MOUNT" "$WORK/img" "$WORK/off" -o uring=on 2>"$WORK/err" || rc=$?
[ "$rc" != 0 ] || fail "uring=on mounted with enable_uring=N"
grep -q "$PARAM" "$WORK/err" || fail "uring=on with enable_uring=N: message does not name $PARAM: $(cat "$WORK/err")"
grep -q " $WORK/off " /proc/mounts && fail "uring=on with enable_uring=N left a mount"
# uring=auto falls back to /dev/fuse and says so with -f.
fg_mount "$WORK/img" "$WORK/a" "$WORK/alog" -o uring=auto
cmp "$WORK/src/big.bin" "$WORK/a/big.bin" || fail "uring=auto fallback reads differ"
grep -q "transport: /dev/fuse" "$WORK/alog" || fail "uring=auto fallback not reported: $(cat "$WORK/alog")"
[ -z "$(ring_cqes "$PID")" ] || fail "uring=auto with enable_uring=N set up rings"
umount_and_wait "$WORK/a" "$WORK/alog"
MOUNTS=("${MOUNTS[@]:1}")
# uring=off (the default) with the ring available: /dev/fuse.
echo Y > "$PARAM"
fg_mount "$WORK/img" "$WORK/o" "$WORK/olog"
cmp "$WORK/src/big.bin" "$WORK/o/big.bin" || fail "uring=off reads differ"
grep -q "transport: /dev/fuse (uring=off)" "$WORK/olog" || fail "uring=off not reported: $(cat "$WORK/olog")"
umount_and_wait "$WORK/o" "$WORK/olog"
MOUNTS=("${MOUNTS[@]:1}")
echo PASS
