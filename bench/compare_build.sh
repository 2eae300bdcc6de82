#!/usr/bin/env bash
# Image build time: mkdaxfs vs mkfs.erofs (uncompressed) vs mksquashfs
# (-noI -noD -noF -noX: no compression) on the same tree, source and output
# on tmpfs. Prints a Markdown table (best of 3 runs).
source "$(dirname "$0")/common.bash"
stage_tree
out=$SHM/out; mkdir -p "$out"
n_entries=$(find "$SRC" | wc -l); size=$(du -sh "$SRC" | cut -f1)
d=$(best_of 3 "$BUILD/mkdaxfs" -q "$out/img.daxfs" "$SRC")
e=$(best_of 3 mkfs.erofs "$out/img.erofs" "$SRC")
s=$(best_of 3 mksquashfs "$SRC" "$out/img.sqfs" -noI -noD -noF -noX -no-progress -noappend -quiet)
s1=$(best_of 3 mksquashfs "$SRC" "$out/img.sqfs" -noI -noD -noF -noX -no-progress -noappend -quiet -processors 1)
echo "Tree: $n_entries entries, $size ($(nproc) CPUs)"
echo
echo "| builder | seconds | vs mkfs.erofs | image size |"
echo "|---|---|---|---|"
echo "| mkdaxfs | $d | $(ratio "$d" "$e") | $(du -h "$out/img.daxfs" | cut -f1) |"
echo "| mkfs.erofs (uncompressed) | $e | 1.00 | $(du -h "$out/img.erofs" | cut -f1) |"
echo "| mksquashfs -noI -noD -noF -noX | $s | $(ratio "$s" "$e") | $(du -h "$out/img.sqfs" | cut -f1) |"
echo "| mksquashfs ... -processors 1 | $s1 | $(ratio "$s1" "$e") | |"
rm -rf "$out"
