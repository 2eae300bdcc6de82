# Shared setup for the side-by-side benchmark scripts (sourced).
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
BUILD=${BUILD:-$ROOT/build}
[ "$(id -u)" = 0 ] || { echo "benchmarks need root (mounts, drop_caches)"; exit 1; }
need=(erofs-utils squashfs-tools squashfuse fio fuse-overlayfs)
missing=()
for p in "${need[@]}"; do dpkg -s "$p" >/dev/null 2>&1 || missing+=("$p"); done
if [ ${#missing[@]} -gt 0 ]; then
  DEBIAN_FRONTEND=noninteractive apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null
fi
[ -x "$BUILD/mkdaxfs" ] || "$ROOT/scripts/build.sh" >/dev/null
SHM=${SHM:-/dev/shm/daxfs-bench}
# The tree every peer is measured on, staged on tmpfs so that no disk is
# involved: /usr/share + /usr/include + /usr/bin + one 512 MiB blob.
stage_tree() {
  SRC=$SHM/src
  if [ ! -f "$SHM/.staged" ]; then
    rm -rf "$SHM"; mkdir -p "$SRC/big"
    cp -a /usr/share /usr/include /usr/bin "$SRC/"
    head -c 512M /dev/urandom > "$SRC/big/blob.bin"
    touch "$SHM/.staged"
  fi
}
now() { date +%s.%N; }
# seconds CMD...: wall time of one run
seconds() { local t0; t0=$(now); "$@" >/dev/null 2>&1; echo "$(now) - $t0" | bc -l; }
# best_of N CMD...: fastest of N runs (after the caller warmed up)
best_of() {
  local n=$1; shift; local best=""
  for _ in $(seq "$n"); do
    local t; t=$(seconds "$@")
    if [ -z "$best" ] || [ "$(echo "$t < $best" | bc -l)" = 1 ]; then best=$t; fi
  done
  printf '%.3f' "$best"
}
ratio() { printf '%.2f' "$(echo "$1 / $2" | bc -l)"; }
drop_caches() { sync; echo 3 > /proc/sys/vm/drop_caches; sleep 1; echo 3 > /proc/sys/vm/drop_caches; }
used_kib() { awk '/^MemTotal:/{t=$2} /^MemFree:/{f=$2} END{print t-f}' /proc/meminfo; }
slab_kib() { awk '/^SReclaimable:/{print $2}' /proc/meminfo; }
cached_kib() { awk '/^Cached:/{print $2}' /proc/meminfo; }   # page cache, Shmem included
# Page cache of files that are not tmpfs/shm (Cached - Shmem): what a peer
# adds on top of a tree, images and objects that sit in tmpfs already; not
# moved by other jobs' tmpfs files.
file_cache_kib() { awk '/^Cached:/{c=$2} /^Shmem:/{s=$2} END{print c-s}' /proc/meminfo; }
