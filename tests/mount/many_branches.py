"""Issue #20: a long-running agent service. P processes create, write,
commit or abort DAXFS_MANY_BRANCHES branches in total through one mount
(its .branchfs_ctl ioctls), never remounting, while the mount reclaims ended
branches online; the region's memory must stay bounded: after a warm-up it
may grow only by the committed history, not by the aborted branches.

usage: many_branches.py MOUNT REGION TOTAL PROCESSES
"""
import ctypes, errno, fcntl, multiprocessing as mp, os, subprocess, sys, time

M, REGION, TOTAL, P = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
CREATE, COMMIT, ABORT = 0x80806200, 0x6201, 0x6202


def ioctl(path, cmd, buf=0):
    fd = os.open(os.path.join(path, ".branchfs_ctl"), os.O_RDWR)
    try:
        return fcntl.ioctl(fd, cmd, buf)
    finally:
        os.close(fd)


def worker(k, n, out):
    committed = 0
    for i in range(n):
        buf = ctypes.create_string_buffer(128)
        ioctl(M, CREATE, buf)
        b = os.path.join(M, "@" + buf.value.decode())
        commit = i % 20 == 0
        name = f"w{k}-{i}" if commit else "scratch"
        with open(os.path.join(b, name), "wb") as f:
            f.write(bytes([65 + i % 26]) * 9000)
        d = os.path.join(b, f"tmp-{k}-{i}")
        os.mkdir(d)
        with open(os.path.join(d, "x"), "w") as f:
            f.write("x")
        if commit:
            ioctl(b, COMMIT)  # disjoint names: the merge policy commits them all
            committed += 1
        else:
            ioctl(b, ABORT)
    out.put(committed)


def region_bytes():
    return os.stat(REGION).st_blocks * 512


def daemon_rss():
    """Resident private memory (RssAnon: not the region's pages it maps) of
    the daxfs-mount process serving M, in bytes (0 if not found)."""
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            with open(f"/proc/{pid}/cmdline", "rb") as f:
                argv = f.read().split(b"\0")
            if not argv[0].endswith(b"daxfs-mount") or M.encode() not in argv:
                continue
            with open(f"/proc/{pid}/status") as f:
                for line in f:
                    if line.startswith("RssAnon:"):
                        return int(line.split()[1]) * 1024
        except OSError:
            pass
    return 0


if __name__ == "__main__":
    mp.set_start_method("fork")
    per = TOTAL // P
    t0 = time.monotonic()
    # Warm-up: the first round of slots, then measure.
    q = mp.Queue()
    warm = [mp.Process(target=worker, args=(100 + k, 300 // P, q), daemon=True) for k in range(P)]
    for p in warm: p.start()
    for p in warm: p.join(timeout=300)
    if any(p.exitcode != 0 for p in warm):
        sys.exit("FAIL: a warm-up worker failed")
    before = region_bytes()
    rss_before = daemon_rss()
    procs = [mp.Process(target=worker, args=(k, per, q), daemon=True) for k in range(P)]
    for p in procs: p.start()
    for p in procs:
        p.join(timeout=500)
        if p.exitcode != 0:
            sys.exit(f"FAIL: worker exited with {p.exitcode}")
    committed = sum(q.get() for _ in range(2 * P))
    after = region_bytes()
    time.sleep(1.5)  # the mount closes ended views and returns their memory within a second
    rss_after = daemon_rss()
    secs = time.monotonic() - t0
    # Every committed file is in main.
    for k in range(P):
        for i in range(0, per, 20):
            with open(os.path.join(M, f"w{k}-{i}"), "rb") as f:
                if f.read() != bytes([65 + i % 26]) * 9000:
                    sys.exit(f"FAIL: w{k}-{i} in main is wrong")
    growth = after - before
    # A commit keeps its log and blocks (history): a log chunk, three pages
    # of file, one of the small file, and main's merge record: 6 pages.
    allowed = committed * 6 * 4096 + (4 << 20)
    print(f"{P * per} branches through one mount by {P} processes in {secs:.1f} s "
          f"({committed} committed); region {before / 2**20:.1f} MiB after warm-up, "
          f"{after / 2**20:.1f} MiB at the end (+{growth / 2**20:.1f} MiB, allowed "
          f"{allowed / 2**20:.1f} MiB for the committed history)")
    if growth > allowed:
        sys.exit("FAIL: the region grew with the aborted branches: they were not reclaimed")
    # The daemon forgets the branches that ended (their views, nodes and
    # indexes): its memory grows with main's committed history (its index
    # of main), not with the number of branches (it grew by 150 MiB over
    # 4,000 of them). Not under a sanitizer, whose allocator keeps freed
    # memory.
    rss_allowed = (4 << 20) + committed * (16 << 10)
    print(f"daemon private memory {rss_before / 2**20:.1f} MiB after warm-up, {rss_after / 2**20:.1f} MiB at "
          f"the end (allowed +{rss_allowed / 2**20:.1f} MiB for the committed history)")
    if os.environ.get("DAXFS_SANITIZED") != "1" and rss_before and rss_after - rss_before > rss_allowed:
        sys.exit("FAIL: the mount's daemon grew with the number of branches it showed")
    listing = subprocess.run([os.environ["DAXFS"], "branch", "list", REGION], capture_output=True,
                             text=True, check=True).stdout
    print(listing.strip().splitlines()[-1])
