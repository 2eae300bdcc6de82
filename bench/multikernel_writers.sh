#!/usr/bin/env bash
# Branch writers across kernels: QEMU guests (TCG, tests/multikernel) with
# one branch region in their shared ivshmem BAR create, write and commit
# into main at the same time (bench/branch_writers.cc in each guest). One
# guest with 2 writer processes against 2 and 3 guests with one each: the
# same protocol, coordinated within one kernel or across kernels. Under TCG
# every guest instruction is emulated: compare the rows with each other,
# not with the host's numbers. Usage: bench/multikernel_writers.sh [ROUNDS]
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
BUILD=${BUILD:-$ROOT/build}
ROUNDS=${1:-100}
ninja -C "$BUILD" daxfs daxfs-mount mkdaxfs daxfs_branch_writers >/dev/null
export DAXFS_TEST_TIMEOUT=${DAXFS_TEST_TIMEOUT:-1800}
source "$ROOT/tests/multikernel/vm.bash" "$BUILD"
mk_prepare
mk_initramfs "$WORK/initrd.cpio" "$BUILD/bench/daxfs_branch_writers"

echo "| kernels x writers | per guest: create median / p99, commit median / p99, commits/s | commits/s, all |"
echo "|---|---|---|"
for shape in 1x2 2x1 3x1; do
  guests=${shape%x*} writers=${shape#*x}
  shm=$(mk_shm_file "region-$shape" 64M)
  mk_branch_region "$shm" 40M 5
  names=()
  for g in $(seq 1 "$guests"); do
    mk_boot "b$shape-$g" "$shm" 64M bench_writers writers="$writers" rounds="$ROUNDS"
    names+=("b$shape-$g")
  done
  per=() total=0
  for n in "${names[@]}"; do
    mk_wait "$n" 1200 || { mk_tail "$n"; fail "guest $n failed"; }
    line=$(mk_result "$n" line)
    get() { sed -n "s/.*$1=\([0-9.]*\).*/\1/p" <<<"$line"; }
    per+=("$(get create_us_median) / $(get create_us_p99) µs, $(get commit_us_median) / $(get commit_us_p99) µs, $(get commits_per_s)/s")
    total=$(echo "$total + $(get commits_per_s)" | bc)
  done
  "$BUILD/daxfs" branch check -q "$shm" || fail "branch check after $shape"
  echo "| $guests x $writers | $(IFS=';'; echo "${per[*]}" | sed 's/;/; /g') | $total |"
done
