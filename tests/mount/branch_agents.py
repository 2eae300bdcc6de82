#!/usr/bin/python3
"""The agent scenario (tests/mount/branch_agents.sh): N agent processes each
create a branch through the mount's .branchfs_ctl (as multikernel/branching
does), edit the project in their /@NAME/ tree and build it with make, in
parallel. The first to finish its build commits; the others then find that
their commit conflicts (ESTALE), and abort.

Usage: branch_agents.py MOUNT SOURCE_TREE REF_DIR DAXFS REGION N MODULES
"""
import ctypes
import errno
import fcntl
import hashlib
import multiprocessing as mp
import os
import shutil
import signal
import stat
import subprocess
import sys
import threading
import time

CREATE = 0x80806200  # _IOR('b', 0, char[128])
COMMIT = 0x6201
ABORT = 0x6202
CTL = ".branchfs_ctl"

M, SRC, REF, DAXFS, REGION = sys.argv[1:6]
N, MODULES = int(sys.argv[6]), int(sys.argv[7])
# Every wait is bounded (well inside ctest's 600 s) so that a stuck agent is a
# failure that says where, not a hang.
WAIT = float(os.environ.get("DAXFS_AGENT_WAIT", "240"))
STATE = os.path.dirname(REF)  # on the same tmpfs: names, what the winner saw


def fail(msg):
    print("FAIL:", msg, file=sys.stderr, flush=True)
    sys.exit(1)


def ioctl(path, cmd, buf=0):
    fd = os.open(os.path.join(path, CTL), os.O_RDWR)
    try:
        return fcntl.ioctl(fd, cmd, buf)
    finally:
        os.close(fd)


def create_branch(parent_dir):
    buf = ctypes.create_string_buffer(128)
    ioctl(parent_dir, CREATE, buf)
    return buf.value.decode()


def manifest(root, with_times=True):
    """Every entry under root: type, mode, owner, size, link count, content
    hash or link target, and (optionally) mtime. Names starting with '@' at
    the root are branches, not files."""
    out = {}
    for d, dirs, files in os.walk(root):
        if d == root:
            dirs[:] = [x for x in dirs if not x.startswith("@")]
        for name in dirs + files:
            p = os.path.join(d, name)
            st = os.lstat(p)
            if stat.S_ISREG(st.st_mode):
                h = hashlib.sha256()
                with open(p, "rb") as f:
                    while chunk := f.read(1 << 20):
                        h.update(chunk)
                body = h.hexdigest()
            elif stat.S_ISLNK(st.st_mode):
                body = os.readlink(p)
            else:
                body = ""
            row = (st.st_mode, st.st_uid, st.st_gid,
                   st.st_size if not stat.S_ISDIR(st.st_mode) else 0,
                   st.st_nlink if not stat.S_ISDIR(st.st_mode) else 0, body)
            if with_times and not stat.S_ISDIR(st.st_mode):
                row += (st.st_mtime_ns,)
            out[os.path.relpath(p, root)] = row
    return out


def diff(a, b, label_a, label_b):
    lines = []
    for k in sorted(set(a) | set(b)):
        if a.get(k) != b.get(k):
            lines.append(f"  {k}: {label_a}={a.get(k)} {label_b}={b.get(k)}")
    return "\n".join(lines[:20])


def mark(i):
    return f"agent-{i}-was-here"


def edit(project, i):
    """What agent i changes: the same shared header as every other agent (a
    real conflict), its own module, a new file, a deleted and a renamed
    file, an append, a symlink and a hard link."""
    with open(os.path.join(project, "include/config.h"), "w") as f:
        f.write(f'#pragma once\n#define AGENT_TAG "{mark(i)}"\n')
    mod = os.path.join(project, f"src/mod_{i % MODULES:02d}.c")
    with open(mod) as f:
        text = f.read()
    with open(mod, "w") as f:
        f.write(text.replace("#define BIAS 0", f"#define BIAS {i + 1}"))
    with open(os.path.join(project, f"src/agent_{i}.c"), "w") as f:
        f.write(f'/* {mark(i)} */\n#include "project.h"\nlong agent_extra(void) {{ return {i * 1000}; }}\n')
    os.unlink(os.path.join(project, f"docs/note_{i}.txt"))
    os.rename(os.path.join(project, "docs/todo.txt"), os.path.join(project, f"docs/todo-{i}.txt"))
    with open(os.path.join(project, "CHANGELOG"), "a") as f:
        f.write(f"{mark(i)}\n")
    os.symlink("build/app", os.path.join(project, "app"))
    os.mkdir(os.path.join(project, f"out-{i}"))
    os.link(os.path.join(project, "CHANGELOG"), os.path.join(project, f"out-{i}/CHANGELOG.{i}"))


def build(project, i):
    r = subprocess.run(["make", "-s"], cwd=project, capture_output=True, text=True)
    if r.returncode != 0:
        fail(f"agent {i}: make failed in {project}: {r.stderr[-2000:]}")
    out = subprocess.run([os.path.join(project, "build/app")], capture_output=True, text=True).stdout
    want = f"tag={mark(i)} sum={10 * MODULES * (MODULES + 1) // 2 + (i + 1) + i * 1000}\n"
    if out != want:
        fail(f"agent {i}: the program built in its branch printed {out!r}, expected {want!r}")


def meminfo():
    vals = {}
    with open("/proc/meminfo") as f:
        for line in f:
            k, v = line.split(":")
            vals[k] = int(v.split()[0]) * 1024
    return vals


def delta_usage():
    """(used, size) of the region's delta area, from `daxfs branch list`."""
    out = subprocess.run([DAXFS, "branch", "list", REGION], capture_output=True, text=True, check=True).stdout
    line = [x for x in out.splitlines() if x.startswith("delta area:")][0].split()
    return int(line[2]), int(line[4])


def dump_hang(procs):
    """What a stuck agent is waiting for: every agent, its children (make,
    gcc) and the mount's daemon threads with state, wait channel and kernel
    stack; the FUSE connections' waiting requests; the agents' Python
    tracebacks (faulthandler on SIGABRT)."""
    def tree(pid):
        out = [pid]
        try:
            kids = open(f"/proc/{pid}/task/{pid}/children").read().split()
        except OSError:
            kids = []
        for k in kids:
            out += tree(int(k))
        return out
    pids = [q for p in procs if p.exitcode is None for q in tree(p.pid)]
    pids += [int(x) for x in subprocess.run(["pgrep", "-f", "daxfs-mount .*" + M], capture_output=True,
                                             text=True).stdout.split()]
    for pid in pids:
        try:
            cmd = open(f"/proc/{pid}/cmdline", "rb").read().replace(b"\0", b" ").decode(errors="replace")[:200]
        except OSError:
            continue
        print(f"--- pid {pid}: {cmd}", file=sys.stderr)
        for t in sorted(os.listdir(f"/proc/{pid}/task")):
            try:
                state = open(f"/proc/{pid}/task/{t}/stat").read().rsplit(")", 1)[1].split()[0]
                wchan = open(f"/proc/{pid}/task/{t}/wchan").read()
                stack = open(f"/proc/{pid}/task/{t}/stack").read()
            except OSError:
                continue
            print(f"  thread {t} state {state} wchan {wchan}\n" + "".join("    " + l + "\n" for l in stack.splitlines()),
                  file=sys.stderr)
    for c in sorted(os.listdir("/sys/fs/fuse/connections")) if os.path.isdir("/sys/fs/fuse/connections") else []:
        try:
            print(f"fuse connection {c}: {open(f'/sys/fs/fuse/connections/{c}/waiting').read().strip()} waiting",
                  file=sys.stderr)
        except OSError:
            pass
    for p in procs:
        if p.exitcode is None:
            os.kill(p.pid, signal.SIGABRT)  # faulthandler prints its traceback
    time.sleep(2)
    sys.stderr.flush()


def agent(i, built, decided, winner, lock):
    try:
        run_agent(i, built, decided, winner, lock)
    except threading.BrokenBarrierError:
        sys.exit(1)  # another agent failed and said why
    except BaseException:
        built.abort()  # the driver and the other agents stop waiting
        decided.abort()
        raise


def run_agent(i, built, decided, winner, lock):
    name = create_branch(M)  # a child of main, through the root's control file
    with open(os.path.join(STATE, f"name-{i}"), "w") as f:
        f.write(name)
    b = os.path.join(M, "@" + name)
    project = os.path.join(b, "project")
    if not os.path.isdir(project):
        fail(f"agent {i}: no project in the new branch {b}")
    if manifest(project, False) != manifest(os.path.join(SRC, "project"), False):
        fail(f"agent {i}: the new branch {b} does not show main's project")
    edit(project, i)
    build(project, i)
    built.wait(timeout=WAIT)  # every agent has built: the driver measures memory
    with lock:
        first = winner.value < 0
        if first:
            winner.value = i
    if first:
        # What the winner sees, then its commit.
        seen = manifest(b)
        with open(os.path.join(STATE, "winner-seen"), "w") as f:
            f.write(repr(seen))
        ioctl(b, COMMIT)
        decided.wait(timeout=WAIT)
        return
    decided.wait(timeout=WAIT)  # the winner has committed
    # The sibling keeps its snapshot and its work after the winner's commit...
    with open(os.path.join(project, "include/config.h")) as f:
        if mark(i) not in f.read():
            fail(f"agent {i}: its branch changed under it when agent {winner.value} committed")
    # ...but both changed include/config.h: its commit is a conflict.
    try:
        ioctl(b, COMMIT)
        fail(f"agent {i}: a commit conflicting with agent {winner.value}'s succeeded")
    except OSError as e:
        if e.errno != errno.ESTALE:
            fail(f"agent {i}: conflicting commit gave {e}, expected ESTALE")
    if i % 2:
        ioctl(b, ABORT)
    else:
        with open(os.path.join(b, CTL), "w") as f:
            f.write("abort\n")
    if os.path.exists(b):
        fail(f"agent {i}: {b} is still there after abort")


def reference_build(i):
    """The winner's edits and build on a plain tmpfs copy of the project."""
    shutil.copytree(os.path.join(SRC, "project"), os.path.join(REF, "project"), symlinks=True)
    os.symlink(os.path.join(SRC, "sysroot"), os.path.join(REF, "sysroot"))
    edit(os.path.join(REF, "project"), i)
    build(os.path.join(REF, "project"), i)
    return manifest(os.path.join(REF, "project"), with_times=False)


def main():
    # (main is compared with the source at the end: reading it all now would
    # put a copy of the base in the page cache before the measurement.)
    base_tree = manifest(SRC, with_times=False)
    base_bytes = sum(r[3] for r in base_tree.values() if stat.S_ISREG(r[0]))
    mem0, (delta0, delta_size) = meminfo(), delta_usage()
    region0 = os.stat(REGION).st_blocks * 512

    built, decided = mp.Barrier(N + 1), mp.Barrier(N)
    winner, lock = mp.Value("i", -1), mp.Lock()
    # daemon: no agent outlives the driver (one left waiting would keep the
    # mount busy and ctest's pipe open until its timeout).
    procs = [mp.Process(target=agent, args=(i, built, decided, winner, lock), daemon=True) for i in range(N)]
    for p in procs:
        p.start()
    try:
        built.wait(timeout=WAIT)
    except threading.BrokenBarrierError:
        if any(p.exitcode is None for p in procs):
            dump_hang(procs)
        fail("the agents did not all build (see above)")
    mem1, (delta1, _) = meminfo(), delta_usage()
    region1 = os.stat(REGION).st_blocks * 512
    # Longer than the agents' own waits, so a stuck agent is told apart
    # from those that gave up waiting for it.
    deadline = time.monotonic() + WAIT + 60
    for p in procs:
        p.join(timeout=max(0.0, deadline - time.monotonic()))
    if any(p.exitcode is None for p in procs):
        dump_hang(procs)
        print(f"FAIL: agents {[i for i, p in enumerate(procs) if p.exitcode is None]} stuck (state above)",
              file=sys.stderr, flush=True)
        sys.exit(3)  # branch_agents.sh: stuck (see its retry)
    for p in procs:
        if p.exitcode != 0:
            fail(f"an agent exited with {p.exitcode}")
    w = winner.value
    print(f"{N} agents built in parallel; agent {w} committed, the others aborted")

    # Memory: all N branches built and alive, against the base.
    cached = mem1["Cached"] - mem0["Cached"]
    shmem = mem1["Shmem"] - mem0["Shmem"]
    delta = delta1 - delta0
    mib = lambda x: f"{x / 2**20:.1f} MiB"
    print(f"memory: base tree {mib(base_bytes)} ({len(base_tree)} entries); with {N} branches built:")
    region_bytes = os.stat(REGION).st_blocks * 512
    one_copy = int(os.environ["DAXFS_BASE_IMAGE_BYTES"])  # the base image in the region
    print(f"  region on tmpfs: {mib(region_bytes)} allocated = base image {mib(one_copy)} "
          f"+ control block + delta area in use (of {mib(delta_size)}: the delta is sparse)")
    print(f"  region delta area used +{mib(delta)}, meminfo Shmem +{mib(shmem)}, "
          f"Cached (page cache incl. Shmem) +{mib(cached)}")
    print(f"  (meminfo is machine-wide: anything else running shows there too)")
    # Asserted: what is the branches' alone, the region's growth. The page
    # cache their files hold (Cached - Shmem above) is only printed, since
    # meminfo also counts whatever else runs on the machine meanwhile.
    own = region1 - region0
    print(f"  region file +{mib(own)} = {own / one_copy:.2f} of one copy of the base image; "
          f"page cache besides Shmem +{mib(cached - shmem)} = {(cached - shmem) / one_copy:.2f} "
          f"(a full copy per branch would be {N}.00)")
    if delta > one_copy // 4:
        fail(f"the branches' delta area grew by {mib(delta)}, more than a quarter of the base image")
    if own > one_copy:
        fail(f"{N} branches grew the region by {mib(own)}, more than one copy "
             f"of the base image ({mib(one_copy)})")

    # Main is exactly what the winner saw (times included) ...
    with open(os.path.join(STATE, "winner-seen")) as f:
        seen = eval(f.read())  # our own repr() of a dict of tuples
    now = manifest(M)
    if now != seen:
        fail(f"main after the commit differs from what agent {w} saw:\n" + diff(now, seen, "main", "winner"))
    # ... and what the same edits and make give on tmpfs; the sysroot is untouched.
    ref = reference_build(w)
    got = manifest(os.path.join(M, "project"), with_times=False)
    if got != ref:
        fail("main's project differs from the tmpfs reference:\n" + diff(got, ref, "main", "tmpfs"))
    if manifest(os.path.join(M, "sysroot"), False) != manifest(os.path.join(SRC, "sysroot"), False):
        fail("the sysroot in main differs from the source")
    # The losers' changes are nowhere.
    losers = [i for i in range(N) if i != w]
    for i in losers:
        for d, _, files in os.walk(os.path.join(M, "project")):
            for fn in files:
                with open(os.path.join(d, fn), "rb") as f:
                    if mark(i).encode() in f.read():
                        fail(f"agent {i}'s change is in main: {os.path.join(d, fn)}")
        if os.path.exists(os.path.join(M, "project", f"src/agent_{i}.c")):
            fail(f"agent {i}'s new file is in main")
        if not os.path.exists(os.path.join(M, "project", f"docs/note_{i}.txt")):
            fail(f"agent {i}'s deletion reached main")
    listing = subprocess.run([DAXFS, "branch", "list", REGION], capture_output=True, text=True,
                             check=True).stdout
    for i in range(N):
        with open(os.path.join(STATE, f"name-{i}")) as f:
            nm = f.read()
        want = "committed" if i == w else "aborted"
        row = [x.split() for x in listing.splitlines() if x.split()[:1] == [nm]]
        if not row or row[0][1] != want:
            fail(f"agent {i}'s branch {nm} is not {want} in:\n{listing}")
        if os.path.exists(os.path.join(M, "@" + nm)):
            fail(f"branch {nm} is still visible")
    print(listing.strip().splitlines()[-1])
    print("ok")


if __name__ == "__main__":
    mp.set_start_method("fork")
    main()
