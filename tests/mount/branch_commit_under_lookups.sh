# Commits and aborts while other processes look names up in the same
# directory, with one worker thread and with the default pool.
#
# A commit drops the kernel's cached /@NAME entry (FUSE_NOTIFY_INVAL_ENTRY),
# which takes the root directory's lock; a LOOKUP in the root holds that lock
# until we reply to it. Sent from a worker, the notification waited for a
# reply only a worker could give: with every worker doing so at once (one
# here, four in CI's mount.branch_agents stall), the mount hung for good.
# Each committer writes into its branch first, so that this mount holds the
# lease and the kernel caches its /@NAME entry, the one a commit must drop.
source "$(dirname "$0")/lib.bash" "$1"
[ -x /usr/bin/python3 ] || skip "no /usr/bin/python3"
make_branch_region "$WORK/region"

run() {  # mount options, then the scenario; fails on a hang or any error
  mount_image "$WORK/region" "$WORK/m" -o "fstype=branchfs,$1"
  local rc=0
  timeout -k 5 120 /usr/bin/python3 - "$WORK/m" <<'PY' || rc=$?
import ctypes, errno, fcntl, multiprocessing as mp, os, sys
M = sys.argv[1]
CREATE, COMMIT, ABORT = 0x80806200, 0x6201, 0x6202

def looker(stop):
    i = 0
    while not stop.is_set():
        i += 1
        try:
            os.stat(f"{M}/absent-{os.getpid()}-{i}")
        except FileNotFoundError:
            pass

def committer(k, rounds):
    for r in range(rounds):
        fd = os.open(M + "/.branchfs_ctl", os.O_RDWR)
        buf = ctypes.create_string_buffer(128)
        fcntl.ioctl(fd, CREATE, buf)
        os.close(fd)
        name = buf.value.decode()
        with open(f"{M}/@{name}/f-{k}-{r}", "w") as f:
            f.write("x")
        os.stat(f"{M}/@{name}/f-{k}-{r}")
        fd = os.open(f"{M}/@{name}/.branchfs_ctl", os.O_RDWR)
        # merge siblings: every commit succeeds; aborts too
        fcntl.ioctl(fd, ABORT if r % 3 == 2 else COMMIT, 0)
        os.close(fd)
        try:
            os.stat(f"{M}/@{name}")
            sys.exit(f"@{name} still resolves after its end")
        except FileNotFoundError:
            pass

stop = mp.Event()
lookers = [mp.Process(target=looker, args=(stop,)) for _ in range(3)]
committers = [mp.Process(target=committer, args=(k, 40)) for k in range(4)]
for p in lookers + committers:
    p.start()
for p in committers:
    p.join()
stop.set()
for p in lookers:
    p.join()
bad = [p.exitcode for p in committers + lookers if p.exitcode != 0]
sys.exit(f"exit codes {bad}" if bad else 0)
PY
  [ "$rc" = 0 ] || fail "-o $1: the scenario failed or hung (exit $rc)"
  # Every commit is in main: 4 committers x 40 rounds, two of three committed.
  local n
  n=$(ls "$WORK/m" | grep -c '^f-' || true)
  [ "$n" = $((4 * (40 - 40 / 3))) ] || fail "-o $1: $n committed files in main, expected $((4 * (40 - 40 / 3)))"
  rm -f "$WORK"/m/f-*
  umount "$WORK/m"
}
run siblings=merge,threads=1
run siblings=merge
"$DAXFS" branch check "$WORK/region" >/dev/null || fail "daxfs branch check"
echo PASS
