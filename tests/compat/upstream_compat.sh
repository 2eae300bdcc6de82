#!/usr/bin/env bash
# Compatibility with upstream daxfs v5, both ways, through an independent
# model of upstream's tools (upstream_v5.py):
#  1. an image written by mkdaxfs reads back correctly under the upstream
#     module's rules (default output and --upstream);
#  2. an image laid out like upstream's mkdaxfs (unsorted, one block per
#     symlink, the 271/272 spill) reads back correctly with daxfs, and
#     daxfs check finds no problems in it.
set -euo pipefail
BUILD=$1
HERE=$(cd "$(dirname "$0")" && pwd)
W=$(mktemp -d /tmp/daxfs-compat.XXXXXX)
trap 'rm -rf "$W"' EXIT
src=$W/src
mkdir -p "$src/sub/deeper" "$src/spill" "$src/empty"
printf 'hello\n' > "$src/hello.txt"
: > "$src/empty_file"
head -c 100000 /dev/urandom > "$src/sub/random.bin"
ln "$src/hello.txt" "$src/sub/hardlink"
ln -s hello.txt "$src/link"
ln -s ../../hello.txt "$src/sub/deeper/uplink"
# 241 entries: ALIGN(241 * 271, 4096) = 65536 < 241 * 272, the spill case,
# followed in scan order by file data that overwrites the spilled bytes.
for i in $(seq 1 241); do printf '%s' "$i" > "$src/spill/entry_$(printf %03d "$i")"; done
head -c 5000 /dev/urandom > "$src/zz_after_spill"

"$BUILD/mkdaxfs" -q --upstream-readable "$W/ours.img" "$src"
python3 "$HERE/upstream_v5.py" read "$W/ours.img" "$src"
"$BUILD/mkdaxfs" -q --upstream "$W/ours-plain.img" "$src"
python3 "$HERE/upstream_v5.py" read "$W/ours-plain.img" "$src"
# Without dedup and packing too (every file on its own blocks).
"$BUILD/mkdaxfs" -q --upstream-readable --no-pack --no-dedup "$W/ours-aligned.img" "$src"
python3 "$HERE/upstream_v5.py" read "$W/ours-aligned.img" "$src"
# The default (compact directories) is refused by upstream, which checks only
# magic and version at mount: version 6 makes it refuse instead of misread.
"$BUILD/mkdaxfs" -q "$W/compact.img" "$src"
if python3 "$HERE/upstream_v5.py" read "$W/compact.img" "$src" 2>"$W/err"; then
  echo "FAIL: the upstream model read a compact image" >&2; exit 1
fi
grep -q superblock "$W/err" || { echo "FAIL: compact image not refused at the superblock" >&2; cat "$W/err"; exit 1; }

python3 "$HERE/upstream_v5.py" write "$src" "$W/theirs.img"
"$BUILD/daxfs" check -q --no-data "$W/theirs.img"
"$BUILD/daxfs" extract --no-owners "$W/theirs.img" "$W/out"
diff -r --no-dereference "$src" "$W/out"
for i in 1 120 241; do
  [ "$("$BUILD/daxfs" cat "$W/theirs.img" "spill/entry_$(printf %03d "$i")")" = "$i" ]
done
echo PASS
