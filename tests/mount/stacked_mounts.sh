#!/usr/bin/env bash
# The daemon unmounts only its own mount, and only while it is the top one at
# the mountpoint: an external `umount` of a daxfs mount stacked on a tmpfs or
# on another daxfs mount leaves the lower one alone; so do `umount -l` and a
# signal to a daemon whose mount was covered later.
source "$(dirname "$0")/lib.bash" "${1:-}"
make_tree "$WORK/src"
"$MKDAXFS" -q "$WORK/img" "$WORK/src"
mkdir -p "$WORK/other" && printf 'other\n' > "$WORK/other/only-in-other"
"$MKDAXFS" -q "$WORK/img2" "$WORK/other"
d=$WORK/d
mkdir -p "$d"

# count_at DIR: how many mounts sit at DIR (stacked ones count each).
count_at() { awk -v d="$1" '$5 == d' /proc/self/mountinfo | wc -l; }
# wait_gone PID: the daemon exits within 10 s.
wait_gone() {
  for _ in $(seq 100); do kill -0 "$1" 2>/dev/null || return 0; sleep 0.1; done
  fail "daemon $1 still running"
}
# start DIR IMG FILE: a foreground daemon, up once FILE shows; sets $pid.
start() {
  "$MOUNT" -f "$2" "$1" 2>>"$WORK/err" & pid=$!
  for _ in $(seq 100); do [ -e "$1/$3" ] && return; sleep 0.1; done
  fail "mount of $2 on $1 did not appear"
}

# 1. daxfs on a tmpfs; external umount; the tmpfs and its file stay.
mount -t tmpfs -o size=1M daxfs-test-tmpfs "$d"
MOUNTS=("$d")
printf 'keep\n' > "$d/keep"
start "$d" "$WORK/img" hello.txt
[ "$(count_at "$d")" = 2 ] || fail "expected 2 mounts at $d"
umount "$d"
wait_gone $pid; wait $pid || true
sleep 1   # the old daemon detached the tmpfs shortly after its session ended
[ "$(count_at "$d")" = 1 ] || fail "umount of daxfs took the tmpfs below with it"
grep -q "^keep$" "$d/keep" || fail "tmpfs contents gone"

# 2. The same after `umount -l` (lazy), also with a reader inside.
start "$d" "$WORK/img" hello.txt
exec 7<"$d/hello.txt"
umount -l "$d"
[ "$(count_at "$d")" = 1 ] || fail "umount -l left the daxfs mount at $d"
cmp - "$WORK/src/hello.txt" <&7 || fail "reader inside a lazily unmounted mount"
exec 7<&-
wait_gone $pid; wait $pid || true
sleep 1
[ "$(count_at "$d")" = 1 ] || fail "lazy umount of daxfs took the tmpfs below with it"
grep -q "^keep$" "$d/keep" || fail "tmpfs contents gone after umount -l"

# 3. daxfs on daxfs: unmounting the top one leaves the lower one serving.
start "$d" "$WORK/img" hello.txt; lower=$pid
start "$d" "$WORK/img2" only-in-other; upper=$pid
[ -e "$d/only-in-other" ] || fail "upper daxfs is not on top"
umount "$d"
wait_gone $upper; wait $upper || true
sleep 1
[ "$(count_at "$d")" = 2 ] || fail "umount of the upper daxfs took the lower daxfs with it"
cmp "$WORK/src/hello.txt" "$d/hello.txt" || fail "lower daxfs no longer serves"

# 4. A signal to a daemon whose mount was covered later: it must not unmount
#    the mount on top of it.
start "$d" "$WORK/img2" only-in-other; upper=$pid
kill -TERM $lower
wait_gone $lower; wait $lower || true
[ -e "$d/only-in-other" ] || fail "SIGTERM to the covered daemon unmounted the mount on top"
grep -q "no longer the top one" "$WORK/err" || fail "no word on leaving a covered mount: $(cat "$WORK/err")"
# And the top daemon still unmounts itself on SIGTERM.
kill -TERM $upper
wait_gone $upper; wait $upper || true
[ -e "$d/only-in-other" ] && fail "SIGTERM did not unmount the top daxfs"
# What is left under it is the covered (now dead) daxfs, then the tmpfs.
umount "$d" 2>/dev/null || umount -l "$d"
[ "$(count_at "$d")" = 1 ] || fail "expected only the tmpfs at $d"
grep -q "^keep$" "$d/keep" || fail "tmpfs contents gone at the end"

# 5. Through fusermount3: a user's daemon whose mount was lazily unmounted
#    (and is kept alive by a reader) must not, on SIGTERM, unmount the mount
#    the user made at the same path since (fusermount3 -u would: it is that
#    user's FUSE mount).
if id nobody >/dev/null 2>&1 && fm=$(command -v fusermount3) && [ -u "$fm" ] && command -v setpriv >/dev/null; then
  # An array, not a function: `cmd &` must give the daemon's own pid.
  as_nobody=(setpriv --reuid=nobody --regid="$(id -g nobody)" --clear-groups)
  old_mode=$(stat -c %a /dev/fuse)
  reader= first=
  trap 'kill $reader $first 2>/dev/null || true; cleanup; chmod "$old_mode" /dev/fuse' EXIT
  chmod 666 /dev/fuse
  chmod 755 "$WORK"
  chmod 644 "$WORK/img" "$WORK/img2"
  u=$WORK/u
  mkdir -p "$u"
  chown nobody "$u"
  MOUNTS=("$u" "${MOUNTS[@]}")
  "${as_nobody[@]}" "$MOUNT" -f "$WORK/img" "$u" 2>>"$WORK/err" & first=$!
  for _ in $(seq 100); do "${as_nobody[@]}" test -e "$u/hello.txt" && break; sleep 0.1; done
  "${as_nobody[@]}" sh -c "exec 3<'$u/hello.txt'; exec sleep 60" & reader=$!
  sleep 0.5
  "${as_nobody[@]}" "$fm" -u -z "$u" || fail "user: fusermount3 -u -z"
  "${as_nobody[@]}" "$MOUNT" "$WORK/img2" "$u" || fail "user: second mount at the same path"
  "${as_nobody[@]}" test -e "$u/only-in-other" || fail "user: second mount not visible"
  kill -TERM $first
  wait_gone $first; wait $first || true
  "${as_nobody[@]}" test -e "$u/only-in-other" || fail "user: SIGTERM to the lazily unmounted daemon unmounted the new mount"
  kill $reader; wait $reader 2>/dev/null || true
  "${as_nobody[@]}" "$fm" -u "$u" || fail "user: fusermount3 -u of the new mount"
fi
echo PASS
