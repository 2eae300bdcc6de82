# Random POSIX operations through a branch mount and on tmpfs side by side
# (tests/mount/branch_differential.py); bounded to ~20 s. DAXFS_DIFF_SEED
# and DAXFS_DIFF_SECONDS override.
source "$(dirname "$0")/lib.bash" "$1"
[ -x /usr/bin/python3 ] || skip "no /usr/bin/python3"
make_branch_region "$WORK/region"
mount_image "$WORK/region" "$WORK/m"
mkdir -p "$WORK/ref"
mount -t tmpfs tmpfs "$WORK/ref"
MOUNTS=("$WORK/ref" "${MOUNTS[@]}")
cp -a "$WORK/base/." "$WORK/ref/"
/usr/bin/python3 "$(dirname "$0")/branch_differential.py" "$WORK/m" "$WORK/ref" \
  "${DAXFS_DIFF_SEED:-$RANDOM}" "${DAXFS_DIFF_SECONDS:-20}"
echo PASS
