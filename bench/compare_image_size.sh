#!/usr/bin/env bash
# Image size and build time, side by side in one run: mkdaxfs (compact, the
# default), mkdaxfs --upstream-readable, mkfs.erofs and mksquashfs (both
# uncompressed) on two trees staged on tmpfs:
#   small: 1,000,000 files of 0-96 bytes in 1,000 directories
#   system: /usr/share + /usr/include + /usr/lib
# Sizes are the images' apparent sizes (what a region must hold); times the
# best of RUNS (default 2). Prints Markdown tables.
# Usage: sudo bench/compare_image_size.sh [small|system|both]
source "$(dirname "$0")/common.bash"
WHICH=${1:-both}
RUNS=${RUNS:-2}
out=$SHM/size-out

make_small_tree() {
  local dir=$SHM/small1m
  if [ ! -f "$dir/.staged" ]; then
    rm -rf "$dir"
    /usr/bin/python3 - "$dir" <<'EOF'
import os, random, sys
root = sys.argv[1]
rng = random.Random(1)
for d in range(1000):
    p = os.path.join(root, "d%04d" % d)
    os.makedirs(p)
    for f in range(1000):
        n = rng.randrange(0, 97)
        with open(os.path.join(p, "f%04d" % f), "wb") as fh:
            fh.write(rng.randbytes(n))
EOF
    touch "$dir/.staged"
  fi
  echo "$dir"
}

make_system_tree() {
  local dir=$SHM/system
  if [ ! -f "$dir/.staged" ]; then
    rm -rf "$dir"; mkdir -p "$dir"
    cp -a /usr/share /usr/include /usr/lib "$dir/"
    touch "$dir/.staged"
  fi
  echo "$dir"
}

bytes() { stat -c %s "$1"; }
mb() { echo "scale=1; $1 / 1000000" | bc -l; }

compare() {
  local name=$1 src=$2
  rm -rf "$out"; mkdir -p "$out"
  local n size
  n=$(find "$src" | wc -l); size=$(du -s --apparent-size -B1 "$src" | cut -f1)
  local d u e s
  d=$(best_of "$RUNS" "$BUILD/mkdaxfs" -q "$out/compact.daxfs" "$src")
  u=$(best_of "$RUNS" "$BUILD/mkdaxfs" -q --upstream-readable "$out/v5.daxfs" "$src")
  e=$(best_of "$RUNS" mkfs.erofs "$out/img.erofs" "$src")
  s=$(best_of "$RUNS" mksquashfs "$src" "$out/img.sqfs" -noI -noD -noF -noX -no-progress -noappend -quiet)
  local eb; eb=$(bytes "$out/img.erofs")
  echo "### $name: $n entries, $(mb "$size") MB of file data ($(nproc) CPUs)"
  echo
  echo "| builder | seconds | time vs mkfs.erofs | image MB | size vs EROFS |"
  echo "|---|---|---|---|---|"
  for row in "mkdaxfs (compact, default)|$d|$out/compact.daxfs" \
             "mkdaxfs --upstream-readable|$u|$out/v5.daxfs" \
             "mkfs.erofs (uncompressed)|$e|$out/img.erofs" \
             "mksquashfs -noI -noD -noF -noX|$s|$out/img.sqfs"; do
    IFS='|' read -r label t f <<<"$row"
    local b; b=$(bytes "$f")
    echo "| $label | $t | $(ratio "$t" "$e") | $(mb "$b") | $(ratio "$b" "$eb") |"
  done
  echo
  "$BUILD/mkdaxfs" "$out/compact.daxfs" "$src" | sed -n 3p | sed 's/^ */mkdaxfs: /'
  echo
  rm -rf "$out"
}

case $WHICH in
  small) compare "1M small files" "$(make_small_tree)" ;;
  system) compare "system tree" "$(make_system_tree)" ;;
  both) compare "1M small files" "$(make_small_tree)"; compare "system tree" "$(make_system_tree)" ;;
  *) echo "usage: $0 [small|system|both]" >&2; exit 2 ;;
esac
