#!/usr/bin/env bash
# Paths longer than PATH_MAX: an archive holding them builds, and extract
# recreates the whole tree (hard links included), working from directory
# descriptors. A failure part way leaves nothing behind.
set -euo pipefail
source "$(dirname "$0")/lib.bash"

# 30 levels of 204-byte names: a 6 KiB path (PATH_MAX is 4096).
python3 - "$W/deep.tar" <<'PY'
import io, sys, tarfile
t = tarfile.open(sys.argv[1], 'w', format=tarfile.PAX_FORMAT)
deep = '/'.join('d%03d' % i + 'x' * 200 for i in range(30))
data = b'deep file\n'
ti = tarfile.TarInfo(deep + '/leaf.txt'); ti.size = len(data); t.addfile(ti, io.BytesIO(data))
ti = tarfile.TarInfo(deep + '/hard'); ti.type = tarfile.LNKTYPE; ti.linkname = deep + '/leaf.txt'; t.addfile(ti)
ti = tarfile.TarInfo('top-link'); ti.type = tarfile.LNKTYPE; ti.linkname = deep + '/leaf.txt'; t.addfile(ti)
ti = tarfile.TarInfo(deep + '/sym'); ti.type = tarfile.SYMTYPE; ti.linkname = 'leaf.txt'; t.addfile(ti)
t.close()
PY
"$BUILD/mkdaxfs" -q "$W/deep.img" "$W/deep.tar"
"$BUILD/daxfs" check -q "$W/deep.img"
"$BUILD/daxfs" extract "$W/deep.img" "$W/tree"

# Walk it with descriptors (a full path is too long for any tool).
python3 - "$W/tree" <<'PY' || fail "extracted deep tree differs"
import os, stat, sys
fd = os.open(sys.argv[1], os.O_RDONLY); depth = 0
while True:
    sub = [e for e in os.listdir(fd) if e.startswith('d')]
    if not sub: break
    nfd = os.open(sub[0], os.O_RDONLY, dir_fd=fd); os.close(fd); fd = nfd; depth += 1
assert depth == 30, depth
assert sorted(os.listdir(fd)) == ['hard', 'leaf.txt', 'sym'], os.listdir(fd)
leaf = os.stat('leaf.txt', dir_fd=fd)
assert os.read(os.open('leaf.txt', os.O_RDONLY, dir_fd=fd), 100) == b'deep file\n'
assert leaf.st_nlink == 3 and os.stat('hard', dir_fd=fd).st_ino == leaf.st_ino
assert os.readlink('sym', dir_fd=fd) == 'leaf.txt'
assert os.stat(os.path.join(sys.argv[1], 'top-link')).st_ino == leaf.st_ino
PY

# Failing part way (no space for the last file's data): nothing is left.
mkdir "$W/out"; snapshot "$W/out" out
calls=$(DAXFS_FAULT_COUNT="$W/n" LD_PRELOAD="$SHIM" "$BUILD/daxfs" extract "$W/deep.img" "$W/out/t" >/dev/null && cat "$W/n")
rm -rf "$W/out/t"
expect_rc 1 env DAXFS_FAULT_AT=$((calls - 2)) LD_PRELOAD="$SHIM" "$BUILD/daxfs" extract "$W/deep.img" "$W/out/t"
no_debris "$W/out" out "extract failing part way"
echo PASS
