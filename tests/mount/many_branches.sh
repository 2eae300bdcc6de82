#!/usr/bin/env bash
# Unlimited branches over a mount's life (issue #20): tests/mount/many_branches.py
# with DAXFS_MANY_BRANCHES (default 10000; 2000 in a sanitizer build) branches
# by 4 processes: the region and the mount's daemon stay bounded.
source "$(dirname "$0")/lib.bash" "$1"
[ -x /usr/bin/python3 ] || skip "no /usr/bin/python3"
make_branch_region "$WORK/region"
mount_image "$WORK/region" "$WORK/m" -o fstype=branchfs,siblings=merge
sanitized=0; grep -q '^DAXFS_SANITIZE:STRING=.\+' "$BUILD/CMakeCache.txt" 2>/dev/null && sanitized=1
DAXFS=$DAXFS DAXFS_SANITIZED=$sanitized /usr/bin/python3 "$(dirname "$0")/many_branches.py" "$WORK/m" "$WORK/region" \
  "${DAXFS_MANY_BRANCHES:-$(case "$BUILD" in *asan*) echo 2000 ;; *) echo 10000 ;; esac)}" 4
"$DAXFS" branch check "$WORK/region" -q || fail "check after the run"
echo PASS
