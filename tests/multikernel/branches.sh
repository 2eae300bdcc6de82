#!/usr/bin/env bash
# Branches shared by independent kernels (issue: many kernels, one region):
# a branch region in a host tmpfs file is the ivshmem BAR of 3 guests, each
# its own kernel; they and a host process create, write, commit (all into
# main: concurrent commits into one parent), abort and gc at the same time,
# coordinated by atomics on the shared memory alone. Then: daxfs branch
# check is clean, every acknowledged commit is in main with its files,
# every aborted branch's files are nowhere. Also: the region is smaller
# than the BAR (a power of two), as it will be on most devices.
# Usage: branches.sh [BUILD_DIR]; exit 0 PASS, 1 FAIL, 77 SKIP.
# DAXFS_MK_ROUNDS (default 6) rounds per guest, 4 files each.
set -euo pipefail
source "$(dirname "$0")/vm.bash" "${1:-}"
export LC_ALL=C
ROUNDS=${DAXFS_MK_ROUNDS:-6}
FILES=4
SIZE=64M
mk_prepare
mk_initramfs "$WORK/initrd.cpio"

# (mk_branch_region fails if the region does not fit in less than the BAR.)
shm=$(mk_shm_file region $SIZE)
mk_branch_region "$shm" 40M 5

start=$EPOCHREALTIME
for g in g1 g2 g3; do
  mk_boot $g "$shm" $SIZE branch_writer rounds="$ROUNDS" files=$FILES
done
# The host writes at the same time, through the same file.
host_acks=$WORK/host.acks
: > "$host_acks"
for r in $(seq 1 "$ROUNDS"); do
  b=host-$r
  "$BUILD/daxfs" branch create "$shm" "$b" >/dev/null
  for k in $(seq 1 $FILES); do echo "$b file $k" | "$BUILD/daxfs" branch write "$shm" "$b" "/$b-$k"; done
  if [ $((r % 3)) != 0 ] && "$BUILD/daxfs" branch commit "$shm" "$b" >/dev/null; then
    echo "commit $b" >> "$host_acks"
  else
    "$BUILD/daxfs" branch abort "$shm" "$b" >/dev/null 2>&1 && echo "abort $b" >> "$host_acks"
  fi
  sleep 1
done
for g in g1 g2 g3; do mk_wait $g 400 || fail "guest $g failed: $(mk_console $g | grep 'failed' | head -n 3)"; done
elapsed=$(echo "$EPOCHREALTIME - $start" | bc)

"$BUILD/daxfs" branch check -q "$shm" || fail "daxfs branch check after the guests"
acks=$WORK/acks
cp "$host_acks" "$acks"
for g in g1 g2 g3; do mk_console $g | sed -n 's/^MK-INFO ack //p' >> "$acks"; done
commits=$(grep -c '^commit ' "$acks" || true)
aborts=$(grep -c '^abort ' "$acks" || true)
[ "$commits" -ge $((4 * ROUNDS / 2)) ] || fail "only $commits commits acknowledged: $(cat "$acks")"
"$BUILD/daxfs" branch ls "$shm" main / | awk '{print $NF}' > "$WORK/main.ls"  # names only
while read -r what b; do
  for k in $(seq 1 $FILES); do
    if [ "$what" = commit ]; then
      got=$("$BUILD/daxfs" branch cat "$shm" main "/$b-$k") || fail "committed $b: /$b-$k missing in main"
      [ "$got" = "$b file $k" ] || fail "committed $b: /$b-$k reads '$got'"
    elif grep -qx "$b-$k" "$WORK/main.ls"; then
      fail "aborted $b: /$b-$k is in main"
    fi
  done
done < "$acks"
# Nothing that was not acknowledged reached main.
ls_files=$(grep -cE -- '-[0-9]+-[0-9]+$' "$WORK/main.ls" || true)
[ "$ls_files" = $((commits * FILES)) ] || fail "main has $ls_files branch files, acknowledged commits account for $((commits * FILES))"
echo "3 guests + the host: $commits commits and $aborts aborts acknowledged, all in main as acknowledged, region checks clean ($elapsed s)"
echo PASS
