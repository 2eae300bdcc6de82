#!/usr/bin/env bash
# FUSE over io_uring vs /dev/fuse (docs/PERFORMANCE.md, "FUSE over io_uring"):
# the same images mounted with -o uring=off and -o uring=on, fresh mount per
# run, runs alternating, best of REPS. As root, with fio.
#   1. cold find over a metadata tree (EROFS as the reference), also pinned to CPU 0
#   2. fio 4 KiB random reads, psync, 1 job (also pinned to CPU 0, and pinned
#      next to a busy loop) and 2 jobs, on a 512 MiB file, cache=direct
#   3. warm tar c of an object-store image (FUSE passthrough) of /usr/include
# Usage: bench/uring_compare.sh [BUILD_DIR]   (env: REPS=3, META=/dev/shm/meta,
#        W=/dev/shm/uring-bench, FIO_SECONDS=8)
set -euo pipefail
BUILD=${1:-$(cd "$(dirname "$0")/../build" && pwd)}
REPS=${REPS:-3}
META=${META:-/dev/shm/meta}     # src/ (the tree), t.daxfs, t.erofs: see below
W=${W:-/dev/shm/uring-bench}
FIO_SECONDS=${FIO_SECONDS:-8}
PARAM=/sys/module/fuse/parameters/enable_uring
OLD=$(cat $PARAM)
echo Y > $PARAM
mkdir -p "$W/m" "$W/e"
hog=
cleanup() {
  [ -z "$hog" ] || kill "$hog" 2>/dev/null || true   # the busy loop of a failed fio row
  umount "$W/m" 2>/dev/null || true
  umount "$W/e" 2>/dev/null || true
  echo "$OLD" > $PARAM
}
trap cleanup EXIT
drop() { sync; echo 3 > /proc/sys/vm/drop_caches; }
now() { date +%s.%N; }
mnt() {  # mnt IMAGE MODE [options]
  local img=$1 mode=$2; shift 2
  "$BUILD/daxfs-mount" "$img" "$W/m" -o "uring=$mode" "$@"
}
best() { sort -g | head -1; }
bestmax() { sort -g | tail -1; }

# Inputs.
if [ ! -f "$META/t.daxfs" ]; then
  mkdir -p "$META/src"
  cp -a --attributes-only /usr/share /usr/include /usr/bin "$META/src/"
  "$BUILD/mkdaxfs" -q "$META/t.daxfs" "$META/src"
fi
[ -f "$META/t.erofs" ] || mkfs.erofs "$META/t.erofs" "$META/src" >/dev/null 2>&1
if [ ! -f "$W/blob.daxfs" ]; then
  mkdir -p "$W/blob"
  head -c 512M /dev/urandom > "$W/blob/blob.bin"
  "$BUILD/mkdaxfs" -q "$W/blob.daxfs" "$W/blob"
  rm -rf "$W/blob"
fi
if [ ! -f "$W/inc.daxfs" ]; then
  cp -a /usr/include "$W/inc"
  "$BUILD/mkdaxfs" -q --objects "$W/objs" "$W/inc.daxfs" "$W/inc"
fi
echo "entries in the metadata tree: $(find "$META/src" | wc -l)"

declare -A R
add() { R[$1]+="$2 "; }
for rep in $(seq "$REPS"); do
  # 1. cold find
  mount -t erofs -o ro,loop "$META/t.erofs" "$W/e"
  drop; t0=$(now); find "$W/e" >/dev/null; add find.erofs "$(echo "$(now) - $t0" | bc)"
  umount "$W/e"
  for mode in off on; do
    mnt "$META/t.daxfs" $mode
    drop; t0=$(now); find "$W/m" >/dev/null; add find.$mode "$(echo "$(now) - $t0" | bc)"
    umount "$W/m"
    mnt "$META/t.daxfs" $mode   # find pinned to CPU 0 (the daemon is not)
    drop; t0=$(now); taskset -c 0 find "$W/m" >/dev/null; add findp.$mode "$(echo "$(now) - $t0" | bc)"
    umount "$W/m"
  done
  # 2. fio (1p: one job pinned to CPU 0, the caller staying on one CPU)
  for mode in off on; do
    for jobs in 1 1p 1h 2; do
      mnt "$W/blob.daxfs" $mode -o cache=direct
      pin=(); n=$jobs; hog=
      if [ "$jobs" = 1p ] || [ "$jobs" = 1h ]; then pin=(taskset -c 0); n=1; fi
      # 1h: pinned, with a busy loop on the same CPU
      if [ "$jobs" = 1h ]; then taskset -c 0 sh -c 'while :; do :; done' & hog=$!; fi
      iops=$("${pin[@]}" fio --name=r --filename="$W/m/blob.bin" --rw=randread --bs=4k --ioengine=psync \
                 --numjobs=$n --invalidate=0 --time_based --runtime="$FIO_SECONDS" --group_reporting \
                 --output-format=terse --terse-version=3 | awk -F';' '{print $8}')
      [ -z "$hog" ] || kill "$hog"
      add fio$jobs.$mode "$iops"
      umount "$W/m"
    done
  done
  # 3. warm tar of an object-store image (passthrough)
  for mode in off on; do
    mnt "$W/inc.daxfs" $mode
    tar cf - -C "$W/m" . | cat >/dev/null
    t0=$(now); tar cf - -C "$W/m" . | cat >/dev/null; add tar.$mode "$(echo "$(now) - $t0" | bc)"
    umount "$W/m"
  done
  echo "rep $rep done"
done
for k in $(printf '%s\n' "${!R[@]}" | sort); do echo "$k: ${R[$k]}"; done
echo "-- best (time: lowest s; fio: highest IOPS)"
for k in find.erofs find.off find.on findp.off findp.on tar.off tar.on; do echo "$k $(printf '%s\n' ${R[$k]} | best)"; done
for k in fio1.off fio1.on fio1p.off fio1p.on fio1h.off fio1h.on fio2.off fio2.on; do echo "$k $(printf '%s\n' ${R[$k]} | bestmax)"; done
