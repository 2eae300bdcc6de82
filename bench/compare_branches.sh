#!/usr/bin/env bash
# Branches (#11) side by side, in one run, on tmpfs (/dev/shm):
#   * making a writable copy of a tree of a 100 MB and a 2 GB image (one big
#     file + 1000 small ones): `daxfs branch create` (library call, from
#     daxfs_branch_bench; and the CLI, process start included) against
#     `cp -a` of the tree and against setting up an OverlayFS upper layer
#     (a fresh tmpfs for upper/work, then mount -t overlay over the plain
#     tree as lower);
#   * commit time against the number of changed files (1, 100, 1000);
#   * reading the big file of an unchanged branch against main, each read in
#     a fresh `daxfs branch cat | cat` (every page read), the two alternating, median of 7
#     (so neither side pays the other's page faults);
#   * bytes copied by a 4 KiB overwrite in the middle of a 1 GiB file.
# Prints a Markdown table (docs/PERFORMANCE.md, "Branches (#11)").
# Needs root (mounts) and about 8 GB free in /dev/shm for the 2 GB case.
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
BUILD=${BUILD:-$ROOT/build}
[ "$(id -u)" = 0 ] || { echo "needs root (mount -t overlay)"; exit 1; }
[ -x "$BUILD/daxfs" ] && [ -x "$BUILD/bench/daxfs_branch_bench" ] || { echo "build first (scripts/build.sh)"; exit 1; }
SIZES=${SIZES:-"100 2048"}
W=/dev/shm/daxfs-cmp-branches
cleanup() {
  for m in "$W/ovl" "$W/t"; do mountpoint -q "$m" 2>/dev/null && umount "$m"; done
  rm -rf "$W"
}
trap cleanup EXIT
cleanup
mkdir -p "$W"
# us CMD...: wall microseconds of one run of CMD in this shell
us() { local t0=$EPOCHREALTIME; "$@" >/dev/null 2>&1; local t1=$EPOCHREALTIME
  echo $(( (${t1/./} - ${t0/./}) )); }
best() { sort -n | head -1; }
median() { sort -n | awk '{a[NR]=$1} END{print a[int((NR+1)/2)]}'; }
fmt_us() { awk -v u="$1" 'BEGIN{ if (u >= 1e6) printf "%.2f s", u/1e6; else if (u >= 1e3) printf "%.1f ms", u/1e3; else printf "%.0f µs", u }'; }

overlay_setup() {
  mkdir -p "$W/t" "$W/ovl"
  mount -t tmpfs none "$W/t" && mkdir "$W/t/upper" "$W/t/work" &&
    mount -t overlay overlay -o "lowerdir=$W/src,upperdir=$W/t/upper,workdir=$W/t/work" "$W/ovl"
}
overlay_teardown() { umount "$W/ovl"; umount "$W/t"; }
cp_tree() { cp -a "$W/src" "$W/copy"; }
# Through a pipe, so that every page is read (a write to /dev/null is not).
read_big() { "$BUILD/daxfs" branch cat "$W/region" "$1" /big | cat >/dev/null; }

declare -A R
for MB in $SIZES; do
  echo "== $MB MB image ==" >&2
  mkdir -p "$W/src/files"
  head -c "${MB}M" /dev/urandom > "$W/src/big"
  for i in $(seq 0 999); do echo "file $i" > "$W/src/files/f$i"; done
  "$BUILD/mkdaxfs" -q "$W/img" "$W/src"
  # cp -a (best of 3; the copy is removed between runs, untimed)
  t=$(for _ in 1 2 3; do us cp_tree; rm -rf "$W/copy"; done | best); R[$MB,cp]=$t
  # OverlayFS upper layer setup (best of 5)
  t=$(for _ in 1 2 3 4 5; do us overlay_setup; overlay_teardown; done | best); R[$MB,ovl]=$t
  rm -rf "$W/src"
  # CLI: the region, then `daxfs branch create` as a user runs it (best of 5)
  "$BUILD/daxfs" branch init "$W/img" "$W/region" --delta 256M -q
  t=$(for i in 1 2 3 4 5; do us "$BUILD/daxfs" branch create "$W/region" "cli$i" -q; done | best); R[$MB,cli]=$t
  # Read an unchanged branch vs main: fresh processes, alternating order.
  main_t=(); br_t=()
  for i in 1 2 3 4 5 6 7; do
    if (( i % 2 )); then
      main_t+=("$(us read_big main)")
      br_t+=("$(us read_big cli1)")
    else
      br_t+=("$(us read_big cli1)")
      main_t+=("$(us read_big main)")
    fi
  done
  R[$MB,rmain]=$(printf '%s\n' "${main_t[@]}" | median)
  R[$MB,rbr]=$(printf '%s\n' "${br_t[@]}" | median)
  rm -f "$W/region" "$W/img"
  # The library numbers: create, commit vs changed files.
  "$BUILD/bench/daxfs_branch_bench" "$MB" "$W" > "$W/bb.$MB"
  cat "$W/bb.$MB" >&2
  R[$MB,create]=$(awk '/branch create/{print $(NF-4)}' "$W/bb.$MB")
  for n in 1 100 1000; do
    R[$MB,c$n]=$(awk -v n="$n" '$0 ~ "commit with *"n" changed files" {sub(/:/,""); print $(NF-8) " / " $(NF-4)}' "$W/bb.$MB")
  done
done
# 4 KiB overwrite in the middle of a 1 GiB file.
"$BUILD/bench/daxfs_branch_bench" 1024 "$W" > "$W/bb.1024"
cow=$(awk '/4 KiB overwrite/{print $(NF-5)}' "$W/bb.1024")

echo
line() { printf '| %s |' "$1"; }
hdr="| |"; sep="|---|"
for MB in $SIZES; do hdr+=" $MB MB image |"; sep+="---|"; done
echo "$hdr"; echo "$sep"
line "branch create, library (mean of 100)"; for MB in $SIZES; do printf ' %s µs |' "${R[$MB,create]}"; done; echo
line "branch create, CLI process (best of 5)"; for MB in $SIZES; do printf ' %s |' "$(fmt_us "${R[$MB,cli]}")"; done; echo
line "cp -a of the tree (best of 3)"; for MB in $SIZES; do printf ' %s |' "$(fmt_us "${R[$MB,cp]}")"; done; echo
line "OverlayFS upper layer: tmpfs + mount -t overlay (best of 5)"; for MB in $SIZES; do printf ' %s |' "$(fmt_us "${R[$MB,ovl]}")"; done; echo
for n in 1 100 1000; do
  line "commit, $n changed file(s): parent unchanged / parent moved (µs)"; for MB in $SIZES; do printf ' %s |' "${R[$MB,c$n]}"; done; echo
done
line "read /big in a fresh process: main / unchanged branch (median of 7)"
for MB in $SIZES; do
  printf ' %s / %s (%sx) |' "$(fmt_us "${R[$MB,rmain]}")" "$(fmt_us "${R[$MB,rbr]}")" \
    "$(awk -v a="${R[$MB,rbr]}" -v b="${R[$MB,rmain]}" 'BEGIN{printf "%.2f", a/b}')"
done; echo
echo "| 4 KiB overwrite in the middle of a 1 GiB file copies | $cow bytes |"
