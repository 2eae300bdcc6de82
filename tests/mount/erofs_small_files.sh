#!/usr/bin/env bash
# The EROFS view of a tree of tiny files (the image-size bench's generator:
# files of 0-96 bytes in directories of 1,000): 1,000,000 files in the
# Release build, 20,000 under the sanitizers (much slower). mkdaxfs
# --erofs writes the view (the default leaves it out on such trees: it
# costs more than 5%); fsck.erofs reports it clean; daxfs check finds the
# two views equal; the kernel's EROFS mount equals the source tree (names,
# types, modes, owners, ns mtimes, sizes, contents).
source "$(dirname "$0")/lib.bash" "${1:-}"
grep -qw erofs /proc/filesystems || modprobe erofs 2>/dev/null || true
grep -qw erofs /proc/filesystems || skip "this kernel has no EROFS"
[ -x /usr/bin/python3 ] || skip "no /usr/bin/python3"
dirs=1000
case $BUILD in *asan*|*sanit*) dirs=20 ;; esac
# On tmpfs: a million files on a disk would measure the disk.
T=/dev/shm/daxfs-small-$$
trap 'umount "$WORK/erofs" 2>/dev/null || true; rm -rf "$T"; cleanup' EXIT
mkdir -p "$T"
/usr/bin/python3 - "$T/src" "$dirs" <<'EOF'
import os, random, sys
root, dirs = sys.argv[1], int(sys.argv[2])
rng = random.Random(1)
for d in range(dirs):
    p = os.path.join(root, "d%04d" % d)
    os.makedirs(p)
    for f in range(1000):
        with open(os.path.join(p, "f%04d" % f), "wb") as fh:
            fh.write(rng.randbytes(rng.randrange(0, 97)))
EOF
"$MKDAXFS" -q --erofs "$T/img" "$T/src" || fail "mkdaxfs --erofs"
if command -v fsck.erofs >/dev/null; then
  fsck.erofs "$T/img" > "$WORK/fsck.log" 2>&1 || { tail "$WORK/fsck.log" >&2; fail "fsck.erofs"; }
fi
"$DAXFS" check -q "$T/img" || fail "daxfs check: the views differ"
mkdir -p "$WORK/erofs"
mount -t erofs -o ro,loop "$T/img" "$WORK/erofs" || fail "mount -t erofs"
/usr/bin/python3 - "$T/src" "$WORK/erofs" <<'EOF' || fail "the kernel EROFS mount differs from the source"
import os, sys
a, b = sys.argv[1], sys.argv[2]
n = 0
for root, dirs, files in os.walk(a):
    rel = os.path.relpath(root, a)
    other = os.path.join(b, rel)
    if sorted(os.listdir(root)) != sorted(os.listdir(other)):  # (also checks the root)
        sys.exit(f"{rel}: entries differ")
    for name in dirs + files:
        x, y = os.lstat(os.path.join(root, name)), os.lstat(os.path.join(other, name))
        # (a directory's size is the filesystem's own business)
        fx = (x.st_mode, x.st_uid, x.st_gid, x.st_mtime_ns, x.st_size if name in files else 0)
        fy = (y.st_mode, y.st_uid, y.st_gid, y.st_mtime_ns, y.st_size if name in files else 0)
        if fx != fy:
            sys.exit(f"{rel}/{name}: (mode, uid, gid, mtime ns, size) {fx} in the source, {fy} in EROFS")
        if name in files:
            with open(os.path.join(root, name), "rb") as f1, open(os.path.join(other, name), "rb") as f2:
                if f1.read() != f2.read():
                    sys.exit(f"{rel}/{name}: contents differ")
        n += 1
print(f"{n} entries equal")
EOF
echo PASS
