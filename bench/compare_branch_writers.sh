#!/usr/bin/env bash
# Concurrent branch writers, one run: create and commit latency and commits
# per second with 1, 2 and 4 writer processes in one kernel, for the current
# protocol (control block version 4: atomics and leases) and for the
# process-shared mutex it replaced (version 3, commit 185ef85 of this
# repository, built in a git worktree), plus lease recovery after a writer
# is killed or stopped. With MK=1, also 2 QEMU guests (tests/multikernel)
# running writers against one region in their shared BAR at once.
# Usage: bench/compare_branch_writers.sh [ROUNDS]   (root for MK=1)
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
BUILD=${BUILD:-$ROOT/build}
ROUNDS=${1:-300}
OLD_REV=185ef85
T=${SHM:-/dev/shm}/daxfs-writers
rm -rf "$T"; mkdir -p "$T/src"
trap 'rm -rf "$T"' EXIT
ninja -C "$BUILD" mkdaxfs daxfs daxfs_branch_writers >/dev/null

# The mutex version: its library, and this same benchmark source built on it.
OLD=${OLD_TREE:-/tmp/daxfs-bench-$OLD_REV}
if [ ! -x "$OLD/build/daxfs_branch_writers" ]; then
  rm -rf "$OLD"
  git -C "$ROOT" worktree prune
  git -C "$ROOT" worktree add --detach "$OLD" "$OLD_REV" >/dev/null 2>&1
  cmake -S "$OLD" -B "$OLD/build" -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo -DDAXFS_BUILD_TESTS=OFF \
    -DDAXFS_BUILD_BENCHMARKS=OFF -DDAXFS_BUILD_FUSE=OFF >/dev/null
  ninja -C "$OLD/build" daxfs >/dev/null
  g++ -std=c++20 -O2 -I "$OLD/include" "$ROOT/bench/branch_writers.cc" "$OLD/build/libdaxfs.a" \
    $(pkg-config --libs libxxhash libarchive libcrypto) -lpthread -o "$OLD/build/daxfs_branch_writers"
fi

# A small tree: the writers' cost is the protocol's, not the image's.
for i in $(seq 100); do echo "file $i" > "$T/src/f$i"; done
"$BUILD/mkdaxfs" -q "$T/img" "$T/src"

echo "Branch writers, $ROUNDS rounds each (create a branch of main, open it for writing, write a 4 KiB"
echo "file, commit into main); all writers commit into the same parent. $(nproc) CPUs, regions on ${SHM:-/dev/shm}."
echo
echo "| writers | protocol | create median / p99 | commit median / p99 | commits/s | vs mutex |"
echo "|---|---|---|---|---|---|"
declare -A rate
for w in 1 2 4; do
  for which in mutex atomics; do
    bin=$BUILD/bench/daxfs_branch_writers
    [ "$which" = mutex ] && bin=$OLD/build/daxfs_branch_writers
    rm -f "$T/region"
    "$bin" init "$T/img" "$T/region" 256
    "$bin" run "$T/region" 4 20 warm >/dev/null  # first touch of the control block and delta
    line=$("$bin" run "$T/region" "$w" "$ROUNDS")
    get() { sed -n "s/.*$1=\([0-9.]*\).*/\1/p" <<<"$line"; }
    rate[$which]=$(get commits_per_s)
    ratio=""
    [ "$which" = atomics ] && ratio=$(printf "%.2fx" "$(echo "${rate[atomics]} / ${rate[mutex]}" | bc -l)")
    echo "| $w | $which | $(get create_us_median) / $(get create_us_p99) µs | $(get commit_us_median) / $(get commit_us_p99) µs | $(get commits_per_s) | $ratio |"
  done
done
echo
for which in mutex atomics; do
  bin=$BUILD/bench/daxfs_branch_writers
  [ "$which" = mutex ] && bin=$OLD/build/daxfs_branch_writers
  rm -f "$T/region"
  "$bin" init "$T/img" "$T/region" 64
  echo "$which:"
  "$bin" recover "$T/region" 12 | sed 's/^/  /'
done

[ "${MK:-0}" = 1 ] || exit 0
# Two kernels: QEMU guests (TCG, 2 vCPUs each) with the region in their
# ivshmem BAR, each running writers at the same time (tests/multikernel).
echo
BUILD=$BUILD "$ROOT/bench/multikernel_writers.sh" $((ROUNDS / 3))
