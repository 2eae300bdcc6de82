# The .branchfs_ctl protocol as multikernel/branching's client drives it
# (tests/mount/branch_protocol.py), under -o fstype=branchfs; and two mounts
# of one region seeing each other's commits.
source "$(dirname "$0")/lib.bash" "$1"
[ -x /usr/bin/python3 ] || skip "no /usr/bin/python3"
make_branch_region "$WORK/region"

# The merge sibling policy and a read-only main, which branchfs does not
# have (tests/mount/branchfs_defaults.sh covers its own defaults).
mount_image "$WORK/region" "$WORK/m" -o fstype=branchfs,siblings=merge,main=readonly,branches=hidden
grep -q " $WORK/m fuse.branchfs rw," /proc/mounts || fail "/proc/mounts does not show fuse.branchfs rw"
/usr/bin/python3 "$(dirname "$0")/branch_protocol.py" "$WORK/m"

# A second mount of the same region (default type) sees the first one's commits.
mount_image "$WORK/region" "$WORK/m2"
name=$(/usr/bin/python3 -c '
import ctypes, fcntl, os, sys
fd = os.open(sys.argv[1] + "/.branchfs_ctl", os.O_RDWR)
buf = ctypes.create_string_buffer(128)
fcntl.ioctl(fd, 0x80806200, buf)
print(buf.value.decode())' "$WORK/m")
[ -d "$WORK/m2/@$name" ] || fail "a branch made through one mount is not visible in the other"
echo "from m2" > "$WORK/m2/@$name/cross.txt"
[ "$(cat "$WORK/m/@$name/cross.txt")" = "from m2" ] || fail "a write through m2 is not seen in m"
echo commit > "$WORK/m2/@$name/.branchfs_ctl"
[ "$(cat "$WORK/m/cross.txt")" = "from m2" ] || fail "m does not see a commit made through m2"
[ "$(cat "$WORK/m2/cross.txt")" = "from m2" ] || fail "m2 does not see its own commit"
echo "PASS"
