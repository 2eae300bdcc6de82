#!/usr/bin/env bash
# The main job, end to end: build daxfs, make an image of a real directory,
# verify it, mount it with FUSE, read from it, and show what was shared.
# Usage: scripts/demo.sh [SOURCE_DIR]   (default /usr/share/doc; run as root)
set -euo pipefail
cd "$(dirname "$0")/.."
SRC=${1:-/usr/share/doc}
scripts/deps.sh
scripts/build.sh >/dev/null
IMG=/dev/shm/daxfs-demo.img          # the image lives in shared memory (tmpfs)
MNT=$(mktemp -d /tmp/daxfs-demo.XXXXXX)
trap 'umount "$MNT" 2>/dev/null; rmdir "$MNT"' EXIT
echo "== mkdaxfs $IMG $SRC"
build/mkdaxfs "$IMG" "$SRC"
echo "== daxfs check $IMG"
build/daxfs check "$IMG"
echo "== daxfs-mount $IMG $MNT"
build/daxfs-mount "$IMG" "$MNT"
echo "== reading every file through the mount and comparing with the source"
diff -r --no-dereference "$SRC" "$MNT" && echo "identical: $(find "$MNT" | wc -l) entries"
# The first text file of a few KiB or more (binary files make poor reading).
f=$(find "$MNT" -type f -size +4k -exec grep -Il . {} + 2>/dev/null | head -1 || true)
[ -n "$f" ] || f=$(find "$MNT" -type f -size +0 -print -quit)
echo "== first lines of ${f#$MNT} through the mount:"
head -3 "$f" | cut -c1-120
echo "== the same file read zero-copy through the library (daxfs cat):"
build/daxfs cat "$IMG" "${f#$MNT}" > "$MNT.cat"
head -3 "$MNT.cat" | cut -c1-120
cmp "$f" "$MNT.cat" && echo "identical bytes"
rm -f "$MNT.cat"
echo "== done: the image stays in $IMG (remove it with rm)"
