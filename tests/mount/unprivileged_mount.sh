#!/usr/bin/env bash
# A normal user mounts through fusermount3: contents match, mmap works with
# MAP_SHARED as well as MAP_PRIVATE on direct-I/O files, `fusermount3 -u`
# unmounts.
source "$(dirname "$0")/lib.bash" "${1:-}"
user=nobody
id "$user" >/dev/null 2>&1 || skip "no user $user"
fm=$(command -v fusermount3) || skip "no fusermount3"
[ -u "$fm" ] || skip "fusermount3 is not setuid"
command -v setpriv >/dev/null || skip "no setpriv"
[ -x /usr/bin/python3 ] || skip "no /usr/bin/python3"
as_user() { setpriv --reuid="$user" --regid="$(id -g "$user")" --clear-groups "$@"; }
# Debian's udev makes /dev/fuse 0666; minimal machines may not.
old_mode=$(stat -c %a /dev/fuse)
trap 'cleanup; chmod "$old_mode" /dev/fuse' EXIT
chmod 666 /dev/fuse

chmod 755 "$WORK"
make_tree "$WORK/src"
"$MKDAXFS" -q "$WORK/img" "$WORK/src"
chmod 644 "$WORK/img"
mkdir -p "$WORK/m"
chown "$user" "$WORK/m"
as_user "$MOUNT" "$WORK/img" "$WORK/m" || fail "unprivileged mount failed"
MOUNTS=("$WORK/m")
grep -q " $WORK/m fuse.daxfs " /proc/mounts || fail "not mounted"
as_user cmp "$WORK/src/sub/deeper/numbers.txt" "$WORK/m/sub/deeper/numbers.txt" || fail "content"
as_user /usr/bin/python3 - "$WORK/m/sub/deeper/numbers.txt" "$WORK/src/sub/deeper/numbers.txt" <<'PY' || fail "mmap"
import mmap, os, sys
want = open(sys.argv[2], "rb").read()
for flags in (mmap.MAP_SHARED, mmap.MAP_PRIVATE):
    fd = os.open(sys.argv[1], os.O_RDONLY)
    m = mmap.mmap(fd, 0, flags, mmap.PROT_READ)
    assert m[:] == want, flags
    m.close(); os.close(fd)
PY
as_user "$fm" -u "$WORK/m" || fail "fusermount3 -u"
grep -q " $WORK/m " /proc/mounts && fail "still mounted"
echo PASS
