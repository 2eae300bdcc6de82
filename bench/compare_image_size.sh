#!/usr/bin/env bash
# Image size and build time, side by side in one run: mkdaxfs (compact, the
# default), mkdaxfs --erofs (the dual view), mkdaxfs --upstream-readable, mkfs.erofs and mksquashfs (both
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

# build LABEL OUTPUT CMD...: one table row; the image is removed afterwards
# so that only one image of a large tree is in memory at a time.
build_row() {
  local label=$1 img=$2; shift 2
  local t
  if [[ $label == mksquashfs* ]]; then
    # mksquashfs's duplicate check goes quadratic on a million tiny random
    # files (minutes): one run, bounded by SQUASHFS_TIMEOUT seconds.
    local ok=$out/finished
    t=$(seconds sh -c 'ok=$0 limit=$1; shift 2; timeout "$limit" "$@" && touch "$ok"' \
        "$ok" "${SQUASHFS_TIMEOUT:-300}" "$@")
    if [ ! -f "$ok" ]; then
      echo "| $label (killed after ${SQUASHFS_TIMEOUT:-300} s) | | | | |"
      rm -f "$img"; return
    fi
    rm -f "$ok"
  else
    t=$(best_of "$RUNS" "$@")
  fi
  local b; b=$(bytes "$img")
  [ -n "${erofs_bytes:-}" ] || erofs_bytes=$b
  printf '| %s | %.3f | %s | %s | %s |\n' "$label" "$t" "$(ratio "$t" "$erofs_time")" "$(mb "$b")" \
    "$(ratio "$b" "$erofs_bytes")"
  rm -f "$img"
}

compare() {
  local name=$1 src=$2
  rm -rf "$out"; mkdir -p "$out"
  local n size
  n=$(find "$src" | wc -l); size=$(du -s --apparent-size -B1 "$src" | cut -f1)
  # EROFS first: every ratio is against it.
  erofs_time=$(best_of "$RUNS" mkfs.erofs "$out/img.erofs" "$src")
  erofs_bytes=$(bytes "$out/img.erofs"); rm -f "$out/img.erofs"
  echo "### $name: $n entries, $(mb "$size") MB of file data ($(nproc) CPUs)"
  echo
  echo "| builder | seconds | time vs mkfs.erofs | image MB | size vs EROFS |"
  echo "|---|---|---|---|---|"
  build_row "mkdaxfs (compact, default)" "$out/c.daxfs" "$BUILD/mkdaxfs" -q "$out/c.daxfs" "$src"
  build_row "mkdaxfs --erofs (compact + EROFS view)" "$out/e.daxfs" "$BUILD/mkdaxfs" -q --erofs "$out/e.daxfs" "$src"
  build_row "mkdaxfs --upstream-readable" "$out/v.daxfs" "$BUILD/mkdaxfs" -q --upstream-readable "$out/v.daxfs" "$src"
  printf '| mkfs.erofs (uncompressed) | %.3f | 1.00 | %s | 1.00 |\n' "$erofs_time" "$(mb "$erofs_bytes")"
  build_row "mksquashfs -noI -noD -noF -noX" "$out/img.sqfs" \
    mksquashfs "$src" "$out/img.sqfs" -noI -noD -noF -noX -no-progress -noappend -quiet
  echo
  "$BUILD/mkdaxfs" "$out/c.daxfs" "$src" | sed -n 3p | sed 's/^ */mkdaxfs: /'
  echo
  rm -rf "$out"
}

case $WHICH in
  small) compare "1M small files" "$(make_small_tree)" ;;
  system) compare "system tree" "$(make_system_tree)" ;;
  both) compare "1M small files" "$(make_small_tree)"; compare "system tree" "$(make_system_tree)" ;;
  *) echo "usage: $0 [small|system|both]" >&2; exit 2 ;;
esac
