#!/usr/bin/env bash
# -o option values are validated (exit 2 and a message naming the option),
# conflicting repeats are refused, requests that a read-only image cannot
# honour are reported, and suid/dev/noexec become mount flags. Odd
# mountpoints and images get clear messages and exit 1.
source "$(dirname "$0")/lib.bash" "${1:-}"
make_tree "$WORK/src"
"$MKDAXFS" -q "$WORK/img" "$WORK/src"
m=$WORK/m
mkdir -p "$m"

# refused OPTS PATTERN: exit 2, PATTERN in the message, nothing mounted.
refused() {
  local rc=0
  "$MOUNT" -o "$1" "$WORK/img" "$m" 2>"$WORK/err" || rc=$?
  [ $rc = 2 ] || { umount "$m" 2>/dev/null; fail "-o $1: exit $rc, want 2"; }
  grep -q -- "$2" "$WORK/err" || fail "-o $1: unclear message: $(cat "$WORK/err")"
  grep -q " $m " /proc/mounts && fail "-o $1 left a mount"
  return 0
}
refused threads=abc "threads=abc: expected a whole number"
refused threads=-1 "threads=-1: expected a whole number"
refused threads=0 "threads=0: expected a whole number"
refused threads=99999999999 "expected a whole number"
refused threads= "expected a whole number"
refused auto_threshold=-1 "auto_threshold=-1: expected a size"
refused auto_threshold=12Q "auto_threshold=12Q: expected a size"
refused auto_threshold=99999999999999999999 "expected a size"
refused cache=fast "cache=fast: expected cache=direct, cache=kernel or cache=auto"
refused cache=direct,cache=kernel "conflicting options -o cache=direct and -o cache=kernel"
refused threads=2,threads=3 "conflicting"
refused suid,nosuid "conflicting options -o suid and -o nosuid"
refused ro,rw "conflicting"
refused verify=yes "verify=yes: takes no value"
refused fsname= "fsname=: expected a name"
refused no_such_option "no_such_option: unknown option"

# accepted OPTS FLAGS WARNING: mounts, /proc/mounts shows FLAGS (a regex),
# stderr matches WARNING ('' for no output at all).
accepted() {
  "$MOUNT" -o "$1" "$WORK/img" "$m" 2>"$WORK/err" || fail "-o $1 refused: $(cat "$WORK/err")"
  MOUNTS=("$m")
  local line
  line=$(grep " $m fuse.daxfs " /proc/mounts) || fail "-o $1: not mounted"
  [[ $line =~ $2 ]] || fail "-o $1: mount flags '$line' do not match '$2'"
  if [ -z "$3" ]; then [ ! -s "$WORK/err" ] || fail "-o $1: unexpected output: $(cat "$WORK/err")"
  else grep -q -- "$3" "$WORK/err" || fail "-o $1: no warning matching '$3': $(cat "$WORK/err")"; fi
  cmp "$WORK/src/hello.txt" "$m/hello.txt" || fail "-o $1: content"
  umount "$m"
}
accepted cache=auto,auto_threshold=1M,threads=4 " ro,nosuid,nodev," ""
accepted cache=auto,cache=auto,threads=1,threads=1 " ro,nosuid,nodev," ""
accepted auto_threshold=64K " ro," "auto_threshold=64K ignored: it applies to cache=auto only"
accepted rw " ro," "rw ignored: a daxfs image is read-only"
accepted ro,defaults,nofail,_netdev,x-systemd.automount,comment=x " ro," ""
accepted suid,dev " ro,relatime" ""
accepted noexec " ro,nosuid,nodev,noexec," ""
accepted noatime " ro," "noatime ignored"
accepted sync " ro," "sync ignored: nothing is ever written"

# suid/dev really apply: a set-user-ID bit shows in the mount flags' effect.
"$MOUNT" -o suid "$WORK/img" "$m"
MOUNTS=("$m")
[ "$(stat -c %a "$m/sub/random.bin")" = 4755 ] || fail "mode of a set-user-ID file"
grep " $m " /proc/mounts | grep -q nosuid && fail "-o suid mounted nosuid"
umount "$m"

# As mount(8)'s helper: suid,dev are the defaults (as with mount.fuse3) and
# the rw mount(8) passes by default is reported.
helper=/sbin/mount.fuse.daxfs
installed=0
if [ ! -e "$helper" ]; then ln -s "$BUILD/mount.fuse.daxfs" "$helper"; installed=1; fi
trap 'cleanup; [ $installed = 1 ] && rm -f "$helper"' EXIT
mount -t fuse.daxfs "$WORK/img" "$m" 2>"$WORK/err" || fail "mount -t fuse.daxfs: $(cat "$WORK/err")"
grep " $m " /proc/mounts | grep -q "nosuid\|nodev" && fail "helper mount is not suid,dev by default"
grep -q "rw ignored" "$WORK/err" || fail "helper: implicit rw not reported"
umount "$m"
mount -t fuse.daxfs -o ro,nosuid,nodev "$WORK/img" "$m" 2>"$WORK/err" || fail "helper with nosuid,nodev"
grep " $m " /proc/mounts | grep -q " ro,nosuid,nodev," || fail "helper ignored nosuid,nodev"
[ ! -s "$WORK/err" ] || fail "helper with ro: unexpected output: $(cat "$WORK/err")"
umount "$m"
# mount(8) passes -f (fake), -n, -v, -s (sloppy) to helpers: as ours, -f
# would mean foreground and mount(8) would wait for the unmount.
timeout 20 mount -f -t fuse.daxfs -o ro "$WORK/img" "$m" || fail "mount -f failed or waited"
grep -q " $m " /proc/mounts && fail "mount -f (fake) mounted"
mount -n -v -t fuse.daxfs -o ro "$WORK/img" "$m" || fail "mount -n -v"
umount "$m"
mount -s -t fuse.daxfs -o ro,no_such_option "$WORK/img" "$m" 2>"$WORK/err" || fail "mount -s with an unknown option"
grep -q "no_such_option ignored" "$WORK/err" || fail "mount -s: unknown option not reported"
umount "$m"
if mount -t fuse.daxfs -o ro,no_such_option "$WORK/img" "$m" 2>/dev/null; then fail "unknown option accepted"; fi

# --help documents every option.
"$MOUNT" --help >"$WORK/help"
for o in cache=direct cache=kernel cache=auto auto_threshold allow_other verify threads fsname debug \
         suid nodev noexec ro rw noatime sync defaults; do
  grep -q -- "$o" "$WORK/help" || fail "--help does not mention $o"
done

# Odd mountpoints and images: exit 1 and a message that names the problem.
# bad_target IMAGE MOUNTPOINT PATTERN
bad_target() {
  local rc=0
  "$MOUNT" "$1" "$2" 2>"$WORK/err" || rc=$?
  [ $rc = 1 ] || fail "$1 on $2: exit $rc, want 1"
  grep -q -- "$3" "$WORK/err" || fail "$1 on $2: unclear message: $(cat "$WORK/err")"
}
mkfifo "$WORK/fifo"
: > "$WORK/file"
bad_target "$WORK/img" /dev/null "mountpoint /dev/null is a character device"
bad_target "$WORK/img" "$WORK/fifo" "is a FIFO"
bad_target "$WORK/img" "$WORK/file" "is a regular file"
bad_target "$WORK/img" "$WORK/nonexistent" "mountpoint .*nonexistent: No such file"
bad_target "$WORK/src" "$m" "src is a directory, not a daxfs image"
grep " $m " /proc/mounts && fail "a failed mount left a mount"

# A relative image path and a mountpoint that is itself a daxfs mount.
(cd "$WORK" && "$MOUNT" img m) || fail "relative image path"
MOUNTS=("$m")
cmp "$WORK/src/hello.txt" "$m/hello.txt" || fail "content via a relative image path"
grep -q "^$WORK/img $m " /proc/mounts || fail "fsname of a relative image is not absolute"
mkdir -p "$WORK/other"; printf 'top\n' > "$WORK/other/top.txt"
"$MKDAXFS" -q "$WORK/img2" "$WORK/other"
"$MOUNT" "$WORK/img2" "$m" || fail "mount on a daxfs mount"
MOUNTS=("$m" "$m")
grep -q "^top$" "$m/top.txt" || fail "top mount not visible"
umount "$m"
sleep 1
cmp "$WORK/src/hello.txt" "$m/hello.txt" || fail "lower daxfs gone after unmounting the top one"
umount "$m"
echo PASS
