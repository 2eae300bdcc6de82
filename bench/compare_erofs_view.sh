#!/usr/bin/env bash
# The EROFS view (#22), one run: the kernel's EROFS driver mounting a daxfs
# image (its EROFS view) against the same driver mounting mkfs.erofs's
# uncompressed image of the same tree, and daxfs-mount of the daxfs image;
# plus image size and build time. Both EROFS images through a loop device
# on tmpfs, as an image in shared memory is mounted. Workloads: find,
# ls -lR, tar c (all data) cold (after drop_caches) and warm, best of RUNS
# (default 3); 4 KiB random reads (fio, psync) of a 512 MiB file, warm.
# Ratios are against mkfs.erofs's image (below 1 = faster / smaller).
# Usage: sudo bench/compare_erofs_view.sh   (TREE=DIR to image another tree)
source "$(dirname "$0")/common.bash"
RUNS=${RUNS:-3}
stage_tree
TREE=${TREE:-$SRC}
E=$SHM/erofs-view; rm -rf "$E"; mkdir -p "$E/m"
cleanup() { for m in "$E"/m/*; do umount "$m" 2>/dev/null || umount -l "$m" 2>/dev/null || true; done; rm -rf "$E"; }
trap cleanup EXIT

t_dax=$(best_of 2 "$BUILD/mkdaxfs" -q "$E/dax.img" "$TREE")
t_ero=$(best_of 2 mkfs.erofs --quiet "$E/ero.img" "$TREE")
t_cmp=$(best_of 2 "$BUILD/mkdaxfs" -q --no-erofs "$E/compact.img" "$TREE")
s_dax=$(stat -c %s "$E/dax.img"); s_ero=$(stat -c %s "$E/ero.img"); s_cmp=$(stat -c %s "$E/compact.img")
rm -f "$E/compact.img"
n=$(find "$TREE" | wc -l)
echo "Tree: $TREE, $n entries, $(du -s --apparent-size -B1M "$TREE" | cut -f1) MiB; $(nproc) CPUs, images on tmpfs"
echo
echo "| image | build s | size MB | size vs mkfs.erofs | size vs daxfs without the view |"
echo "|---|---|---|---|---|"
printf '| mkdaxfs (default: with the EROFS view) | %s | %.1f | %s | %s |\n' "$t_dax" "$(echo "$s_dax / 1000000" | bc -l)" "$(ratio "$s_dax" "$s_ero")" "$(ratio "$s_dax" "$s_cmp")"
printf '| mkdaxfs --no-erofs | %s | %.1f | %s | 1.00 |\n' "$t_cmp" "$(echo "$s_cmp / 1000000" | bc -l)" "$(ratio "$s_cmp" "$s_ero")"
printf '| mkfs.erofs (uncompressed) | %s | %.1f | 1.00 | |\n' "$t_ero" "$(echo "$s_ero / 1000000" | bc -l)"
echo

mkdir -p "$E/m/dax-erofs" "$E/m/mkfs-erofs" "$E/m/daxfs-mount"
mount -t erofs -o ro,loop "$E/dax.img" "$E/m/dax-erofs"
mount -t erofs -o ro,loop "$E/ero.img" "$E/m/mkfs-erofs"
"$BUILD/daxfs-mount" "$E/dax.img" "$E/m/daxfs-mount"
peers=(mkfs-erofs dax-erofs daxfs-mount)
declare -A label=([mkfs-erofs]="kernel EROFS, mkfs.erofs image" [dax-erofs]="kernel EROFS, daxfs image" [daxfs-mount]="daxfs-mount, daxfs image")
run() {  # WORKLOAD DIR
  case $1 in
    find) find "$2" >/dev/null ;;
    ls) ls -lR "$2" >/dev/null ;;
    tar) tar c -C "$2" . 2>/dev/null | cat >/dev/null ;;
  esac
}
cold() { local best=""; for _ in $(seq "$RUNS"); do drop_caches; local t; t=$(seconds run "$1" "$2")
  if [ -z "$best" ] || [ "$(echo "$t < $best" | bc -l)" = 1 ]; then best=$t; fi; done; printf '%.3f' "$best"; }
warm() { run "$1" "$2"; best_of "$RUNS" run "$1" "$2"; }
declare -A base
echo "| workload | ${label[mkfs-erofs]} | ${label[dax-erofs]} | ${label[daxfs-mount]} |"
echo "|---|---|---|---|"
for w in find ls tar; do
  for mode in cold warm; do
    row="| $mode $(case $w in find) echo '`find`';; ls) echo '`ls -lR`';; tar) echo '`tar c`';; esac) |"
    for p in "${peers[@]}"; do
      t=$($mode "$w" "$E/m/$p")
      [ "$p" = mkfs-erofs ] && base=$t
      row+=" $t s ($(ratio "$t" "$base")x) |"
    done
    echo "$row"
  done
done
# 4 KiB random reads of the tree's largest file (the staged 512 MiB blob).
big=$(cd "$TREE" && find . -type f -printf '%s %p\n' | sort -n | tail -n 1 | cut -d' ' -f2-)
row="| 4 KiB random reads of ${big#./} (warm, fio psync, best of $RUNS x 5 s) |"
for p in "${peers[@]}"; do
  iops=0
  for _ in $(seq "$RUNS"); do  # best of RUNS: single runs vary by 10-20%
    i=$(fio --name=r --filename="$E/m/$p/${big#./}" --rw=randread --bs=4k --ioengine=psync --time_based \
        --runtime=5 --readonly --output-format=terse 2>/dev/null | cut -d';' -f8)
    [ "$i" -gt "$iops" ] && iops=$i
  done
  [ "$p" = mkfs-erofs ] && base_iops=$iops
  row+=" $iops IOPS ($(ratio "$base_iops" "$iops")x) |"
done
echo "$row"
echo
echo "(x: time, or 1/IOPS, relative to kernel EROFS on mkfs.erofs's image: below 1 is faster)"
