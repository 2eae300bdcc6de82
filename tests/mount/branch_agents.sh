# The agent scenario of issue 12: 8 agents work in parallel on one mount,
# each in its own branch (made through .branchfs_ctl) of a real C source
# tree; each edits files and runs make in its /@NAME/ tree; one commits, the
# others abort. Checks (tests/mount/branch_agents.py): main equals exactly
# what the winner saw and what the same edits + make give on tmpfs; the
# losers' changes are nowhere; memory (meminfo Cached/Shmem and the region's
# delta area) stays near one copy of the base. DAXFS_AGENTS overrides 8.
source "$(dirname "$0")/lib.bash" "$1"
[ -x /usr/bin/python3 ] || skip "no /usr/bin/python3"
command -v gcc >/dev/null && command -v make >/dev/null || skip "needs gcc and make"
[ -f /usr/include/stdio.h ] || skip "no C headers in /usr/include"

# The tree: a C project whose build reads its headers from a vendored
# sysroot in the tree (tests/mount/c_project.bash).
source "$(dirname "$0")/c_project.bash"
SRC=$WORK/src
MODULES=12
make_c_project "$SRC" "$MODULES"
P=$SRC/project
(cd "$P" && make -s >/dev/null && [ "$(build/app)" = "tag=base sum=$((10 * MODULES * (MODULES + 1) / 2))" ] && rm -rf build) ||
  fail "the project does not build on the host"

# The region lives on its own tmpfs, so that Shmem counts it.
mkdir -p "$WORK/shm"
mount -t tmpfs -o size=4G daxfs-agents "$WORK/shm"
MOUNTS=("$WORK/shm" "${MOUNTS[@]}")
"$MKDAXFS" -q "$WORK/base.img" "$SRC"
export DAXFS_BASE_IMAGE_BYTES=$(stat -c %s "$WORK/base.img")
# An agent stuck for minutes (rare; exit 3 after the driver printed every
# process's and daemon thread's state) is a failure to diagnose, reported
# above; the scenario then runs once more on a fresh region so that one
# stall does not block everyone's landing. Any other failure fails at once.
for attempt in 1 2; do
  rm -rf "$WORK/shm/region" "$WORK/shm/ref" "$WORK/shm"/name-* "$WORK/shm/winner-seen"
  "$DAXFS" branch init "$WORK/base.img" "$WORK/shm/region" --delta 256M >/dev/null
  mount_image "$WORK/shm/region" "$WORK/m" -o fstype=branchfs
  set +e
  /usr/bin/python3 "$(dirname "$0")/branch_agents.py" "$WORK/m" "$SRC" "$WORK/shm/ref" \
    "$DAXFS" "$WORK/shm/region" "${DAXFS_AGENTS:-8}" "$MODULES"
  rc=$?
  set -e
  [ "$rc" = 3 ] && [ "$attempt" = 1 ] || break
  echo "STUCK: attempt 1 had a stuck agent (state above); running the scenario again" >&2
  abort_fuse_under "$WORK/m"  # releases whatever still waits on the stuck mount
  umount -l "$WORK/m" 2>/dev/null || true
  pkill -9 -f "daxfs-mount $WORK/shm/region" 2>/dev/null || true
  sleep 1
done
[ "$rc" = 0 ] || fail "the agent scenario failed (exit $rc)"
"$DAXFS" branch check "$WORK/shm/region" >/dev/null || fail "daxfs branch check after the scenario"
echo PASS
