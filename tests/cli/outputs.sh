#!/usr/bin/env bash
# mkdaxfs and `daxfs load` never replace what is not theirs (devices, FIFOs,
# sockets, directories, symlinks to those, the source itself), say what the
# output really is, and replace a previous image atomically.
set -euo pipefail
source "$(dirname "$0")/lib.bash"

mkdir -p "$W/src/d" "$W/out"; echo hi > "$W/src/d/f"
"$BUILD/mkdaxfs" -q "$W/good.img" "$W/src"

# Targets that are not regular files: refused, exit 1, untouched. The device
# is a private copy of /dev/null: a regression must not replace the real one.
cd "$W/out"
if [ "$(id -u)" = 0 ]; then mknod null c 1 3; else ln -s /dev/zero null; fi
mkfifo fifo
python3 -c "import socket; s=socket.socket(socket.AF_UNIX); s.bind('sock')"
mkdir dir; touch dir/keep
ln -s null to-null; ln -s dir to-dir; ln -s missing dangling
snapshot "$W/out" out
for t in null fifo sock dir to-null to-dir dangling; do
  expect_rc 1 "$BUILD/mkdaxfs" -q "$t" "$W/src"
  expect_err "$t: is "
  expect_rc 1 "$BUILD/daxfs" load -q "$W/good.img" "$t"
  expect_err "$t: is "
done
[ -c null ] && [ -p fifo ] && [ -S sock ] && [ -f dir/keep ] && [ -L to-null ] || fail "a target was touched"
no_debris "$W/out" out "refused outputs"

# The real problem is named.
expect_rc 1 "$BUILD/mkdaxfs" -q dir "$W/src";            expect_err "is a directory; give a file name"
expect_rc 1 "$BUILD/daxfs" load -q "$W/good.img" null; expect_err "is a character device"
expect_rc 1 "$BUILD/mkdaxfs" -q "$W/nodir/x.img" "$W/src"; expect_err "directory $W/nodir does not exist"
expect_rc 1 "$BUILD/daxfs" info "$W/src";                expect_err "is a directory, not an image"
expect_rc 1 "$BUILD/daxfs" info fifo;                    expect_err "is a FIFO, not an image"
expect_rc 1 "$BUILD/daxfs" info null;                    expect_err "character device of unknown size"
: > empty.img
expect_rc 1 "$BUILD/daxfs" info empty.img;               expect_err "is empty (0 bytes), not an image"

# The source itself is not replaced (tar source and image given twice).
tar -C "$W/src" -cf "$W/src.tar" .
cp "$W/src.tar" "$W/src.tar.orig"
expect_rc 1 "$BUILD/mkdaxfs" -q "$W/src.tar" "$W/src.tar"; expect_err "is the source itself"
cmp "$W/src.tar" "$W/src.tar.orig" || fail "source archive replaced"

# A previous image is replaced atomically: same inode never written in place,
# a reader holding the old one keeps its bytes.
echo changed > "$W/src/d/f"
cp "$W/good.img" old.img; ln old.img old-link.img
"$BUILD/mkdaxfs" -q old.img "$W/src"
[ "$("$BUILD/daxfs" cat old.img d/f)" = changed ] || fail "image not replaced"
[ "$("$BUILD/daxfs" cat old-link.img d/f)" = hi ] || fail "old image written in place"
# Through a symlink to a regular file: the target is replaced, the link kept.
ln -s old.img via-link.img
"$BUILD/mkdaxfs" -q via-link.img "$W/src"
[ -L via-link.img ] || fail "symlink replaced"
# daxfs load into a file: same rules, and the file appears complete or not at all.
"$BUILD/daxfs" load -q "$W/good.img" loaded.img
cmp -n "$(stat -c %s "$W/good.img")" loaded.img "$W/good.img" || fail "load copy differs"
"$BUILD/daxfs" load -q "$W/good.img" --to "shm:/daxfs-out-$$"
[ "$("$BUILD/daxfs" cat "shm:/daxfs-out-$$" d/f)" = hi ] || fail "load into shm:"
rm -f "/dev/shm/daxfs-out-$$"
echo PASS
