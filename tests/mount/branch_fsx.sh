# fsx-style random read/write/truncate/mmap checker on a large file in a
# branch (tests/mount/branch_fsx.py), bounded to ~10 s. DAXFS_FSX_SEED and
# DAXFS_FSX_SECONDS override.
source "$(dirname "$0")/lib.bash" "$1"
[ -x /usr/bin/python3 ] || skip "no /usr/bin/python3"
make_branch_region "$WORK/small"
# Every write takes new delta blocks (no gc yet): a region file with room.
"$DAXFS" branch init "$WORK/base.img" "$WORK/region" --delta 1536M >/dev/null
mount_image "$WORK/region" "$WORK/m"
/usr/bin/python3 "$(dirname "$0")/branch_fsx.py" "$WORK/m" "${DAXFS_FSX_SEED:-$RANDOM}" \
  "${DAXFS_FSX_SECONDS:-10}" $((32 << 20)) $((1024 << 20))
echo PASS
