#!/usr/bin/env bash
# What the multikernel/branching client expects of a branchfs mount, as its
# documentation describes it (issue #20): under -o fstype=branchfs main is
# writable at the mount root (the workspace is seeded and cleaned there),
# siblings are first-winner-commit, and branches are listed as @NAME.
source "$(dirname "$0")/lib.bash" "$1"
[ -x /usr/bin/python3 ] || skip "no /usr/bin/python3"
make_branch_region "$WORK/region"
mount_image "$WORK/region" "$WORK/m" -o fstype=branchfs
mount_image "$WORK/region" "$WORK/ro"   # fuse.daxfs defaults: main read-only
M=$WORK/m
ioctl() {  # ioctl CTLFILE create|commit|abort -> prints the name or "errno N"
  /usr/bin/python3 -c '
import ctypes, fcntl, os, sys
fd = os.open(sys.argv[1], os.O_RDWR)
try:
    if sys.argv[2] == "create":
        b = ctypes.create_string_buffer(128); fcntl.ioctl(fd, 0x80806200, b); print(b.value.decode())
    else:
        fcntl.ioctl(fd, 0x6201 if sys.argv[2] == "commit" else 0x6202, 0); print("ok")
except OSError as e:
    print("errno", e.errno)' "$1" "$2"
}

# --- seeding and cleaning main at the root ---
early=$(ioctl "$M/.branchfs_ctl" create)
mkdir "$M/work"; echo seed > "$M/work/seed.txt"; echo tmp > "$M/left-by-a-test"
mv "$M/work/seed.txt" "$M/work/seeded.txt"; ln -s seeded.txt "$M/work/link"
[ "$(cat "$WORK/ro/work/seeded.txt")" = seed ] || fail "another mount does not see main's write"
[ "$("$DAXFS" branch cat "$WORK/region" main /work/seeded.txt)" = seed ] || fail "the CLI does not see main's write"
[ ! -e "$M/@$early/work" ] || fail "a branch made before the write sees it (it must keep its snapshot)"
late=$(ioctl "$M/.branchfs_ctl" create)
[ "$(cat "$M/@$late/work/seeded.txt")" = seed ] || fail "a branch made after the write does not see it"
rm "$M/left-by-a-test"
[ ! -e "$WORK/ro/left-by-a-test" ] || fail "a file removed from main is still there"
(echo x > "$WORK/ro/nope") 2>/dev/null && fail "main=readonly mount wrote main"
# The read-only mount keeps main read-only; the CLI may write main too.
echo cli | "$DAXFS" branch write "$WORK/region" main /work/cli.txt
[ "$(cat "$M/work/cli.txt")" = cli ] || fail "main's write from the CLI is not seen at the root"

# --- branches are listed where the client looks ---
ls -a "$M" | grep -qx "@$early" || fail "the mount root does not list @$early: $(ls -a "$M")"
ls "$WORK/ro" | grep -q '^@' && fail "branches=hidden (fuse.daxfs default) lists branches"
child=$(ioctl "$M/@$late/.branchfs_ctl" create)
ls "$M/@$late" | grep -qx "@$child" || fail "a branch root does not list its child"
ls "$M/@$late" | grep -qx "@$early" && fail "a branch root lists a branch that is not its child"
[ "$(ioctl "$M/@$child/.branchfs_ctl" abort)" = ok ] || fail "abort child"
ls "$M/@$late" | grep -q "^@" && fail "an aborted branch is still listed"
[ "$(ioctl "$M/@$late/.branchfs_ctl" abort)" = ok ] || fail "abort late"
[ "$(ioctl "$M/@$early/.branchfs_ctl" abort)" = ok ] || fail "abort early"

# --- first-winner-commit among siblings, through the ioctls ---
a=$(ioctl "$M/.branchfs_ctl" create); b=$(ioctl "$M/.branchfs_ctl" create); c=$(ioctl "$M/.branchfs_ctl" create)
echo A > "$M/@$a/only-a"; echo B > "$M/@$b/only-b"; echo C > "$M/@$c/only-c"
"$DAXFS" branch list "$WORK/region" | grep -q "^$a .*first-wins$" || fail "a CREATE under branchfs is not first-wins"
[ "$(ioctl "$M/@$b/.branchfs_ctl" commit)" = ok ] || fail "the first sibling could not commit"
[ "$(ioctl "$M/@$a/.branchfs_ctl" commit)" = "errno 116" ] || fail "a second sibling committed (first-wins)"
[ "$(cat "$M/@$a/only-a")" = A ] || fail "the loser was not left intact"
echo commit > "$M/@$c/.branchfs_ctl" 2>/dev/null && fail "echo commit of a loser succeeded"
[ "$(ioctl "$M/@$a/.branchfs_ctl" abort)" = ok ] && [ "$(ioctl "$M/@$c/.branchfs_ctl" abort)" = ok ] || fail "abort losers"
[ "$(cat "$M/only-b")" = B ] && [ ! -e "$M/only-a" ] && [ ! -e "$M/only-c" ] || fail "main holds more than the winner"
# A nested branch is first-wins among its own siblings too.
p=$(ioctl "$M/.branchfs_ctl" create)
k1=$(ioctl "$M/@$p/.branchfs_ctl" create); k2=$(ioctl "$M/@$p/.branchfs_ctl" create)
echo 1 > "$M/@$k1/k1"; echo 2 > "$M/@$k2/k2"
[ "$(ioctl "$M/@$k2/.branchfs_ctl" commit)" = ok ] || fail "nested winner"
[ "$(ioctl "$M/@$k1/.branchfs_ctl" commit)" = "errno 116" ] || fail "nested loser committed"
[ "$(ioctl "$M/@$k1/.branchfs_ctl" abort)" = ok ] || fail "nested abort"
[ "$(ioctl "$M/@$p/.branchfs_ctl" commit)" = ok ] || fail "nested parent commit"
[ "$(cat "$M/k2")" = 2 ] || fail "the nested winner did not reach main"
# -o siblings=merge restores the sibling rule on another mount of the region.
mount_image "$WORK/region" "$WORK/mm" -o fstype=branchfs,siblings=merge
x=$(ioctl "$WORK/mm/.branchfs_ctl" create); y=$(ioctl "$WORK/mm/.branchfs_ctl" create)
echo x > "$WORK/mm/@$x/x"; echo y > "$WORK/mm/@$y/y"
[ "$(ioctl "$WORK/mm/@$x/.branchfs_ctl" commit)" = ok ] && [ "$(ioctl "$WORK/mm/@$y/.branchfs_ctl" commit)" = ok ] \
  || fail "siblings=merge: disjoint siblings did not both commit"

# --- main's writes survive the daemon's death like commits ---
echo durable > "$M/durable"
pkill -9 -f "daxfs-mount $WORK/region $M" || true
sleep 0.5
umount -l "$M" 2>/dev/null || true
[ "$("$DAXFS" branch cat "$WORK/region" main /durable)" = durable ] || fail "a write to main was lost with the daemon"
"$DAXFS" branch check "$WORK/region" -q || fail "check after killing the daemon"
echo PASS
