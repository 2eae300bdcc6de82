#!/usr/bin/env bash
# Unlimited branches over a mount's life (issue #20): tests/mount/many_branches.py
# with DAXFS_MANY_BRANCHES (default 10000; 2000 in a sanitizer build) branches
# by 4 processes.
source "$(dirname "$0")/lib.bash" "$1"
[ -x /usr/bin/python3 ] || skip "no /usr/bin/python3"
make_branch_region "$WORK/region"
mount_image "$WORK/region" "$WORK/m" -o fstype=branchfs,siblings=merge
DAXFS=$DAXFS /usr/bin/python3 "$(dirname "$0")/many_branches.py" "$WORK/m" "$WORK/region" \
  "${DAXFS_MANY_BRANCHES:-$(case "$BUILD" in *asan*) echo 2000 ;; *) echo 10000 ;; esac)}" 4
"$DAXFS" branch check "$WORK/region" -q || fail "check after the run"
echo PASS
