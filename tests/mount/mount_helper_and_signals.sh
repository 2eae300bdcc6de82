#!/usr/bin/env bash
# `mount -t fuse.daxfs IMAGE DIR` works through the mount.fuse.daxfs helper,
# and the daemon unmounts cleanly on SIGTERM and SIGINT.
source "$(dirname "$0")/lib.bash" "${1:-}"
make_tree "$WORK/src"
"$MKDAXFS" -q "$WORK/img" "$WORK/src"
helper=/sbin/mount.fuse.daxfs
installed=0
if [ ! -e "$helper" ]; then
  ln -s "$BUILD/mount.fuse.daxfs" "$helper"
  installed=1
fi
trap 'cleanup; [ $installed = 1 ] && rm -f "$helper"' EXIT
mkdir -p "$WORK/m"
mount -t fuse.daxfs -o cache=direct "$WORK/img" "$WORK/m"
MOUNTS=("$WORK/m")
cmp "$WORK/src/hello.txt" "$WORK/m/hello.txt" || fail "helper mount content"
umount "$WORK/m"
grep -q " $WORK/m " /proc/mounts && fail "still mounted after umount"
# Foreground daemon: SIGTERM and SIGINT (Ctrl-C) unmount.
for sig in TERM INT; do
  # A script's background jobs start with SIGINT ignored; undo that, as a
  # terminal's foreground process would have it.
  env --default-signal=INT "$MOUNT" -f "$WORK/img" "$WORK/m" & pid=$!
  for _ in $(seq 50); do grep -q " $WORK/m " /proc/mounts && break; sleep 0.1; done
  grep -q " $WORK/m " /proc/mounts || fail "foreground mount did not appear"
  kill -$sig $pid
  for _ in $(seq 100); do kill -0 $pid 2>/dev/null || break; sleep 0.1; done
  if kill -0 $pid 2>/dev/null; then kill -KILL $pid; fail "SIG$sig did not stop the daemon"; fi
  wait $pid || true
  grep -q " $WORK/m " /proc/mounts && fail "SIG$sig left the mount behind"
done
# Bad input gives a clear error and a non-zero exit.
printf 'not an image' > "$WORK/bad"
if "$MOUNT" "$WORK/bad" "$WORK/m" 2>"$WORK/err"; then fail "mounted garbage"; fi
grep -q "smaller than a superblock\|bad magic" "$WORK/err" || fail "unclear error: $(cat "$WORK/err")"
echo PASS
