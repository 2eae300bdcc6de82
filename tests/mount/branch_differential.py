"""Differential test: random POSIX operations through a branch mount and on a
tmpfs directory side by side; the whole trees (contents, mode, size, nlink,
symlink targets, xattrs) and every operation's outcome must agree, after
every batch, and again in main after the branch is committed.

usage: branch_differential.py MOUNT TMPFS_DIR [seed] [seconds]
"""
import ctypes, errno, fcntl, mmap, os, random, stat, sys, time

mnt, ref = sys.argv[1], sys.argv[2]
seed = int(sys.argv[3]) if len(sys.argv) > 3 else int(time.time())
budget = float(sys.argv[4]) if len(sys.argv) > 4 else 20.0
rng = random.Random(seed)
print(f"seed {seed}")


history = []


def fail(msg):
    print("\n".join(history[-25:]), file=sys.stderr)
    print(f"FAIL (seed {seed}): {msg}", file=sys.stderr)
    sys.exit(1)


def new_branch(parent_root):
    fd = os.open(parent_root + "/.branchfs_ctl", os.O_RDWR)
    buf = ctypes.create_string_buffer(128)
    fcntl.ioctl(fd, 0x80806200, buf)
    os.close(fd)
    return buf.value.decode()


DIRS = ["d0", "d1", "d0/e0", "d0/e1", "d1/e0"]
NAMES = ["f0", "f1", "f2", "f3"]
PATHS = NAMES + DIRS + [d + "/" + n for d in DIRS for n in NAMES]


def pick():
    return rng.choice(PATHS)


def rand_bytes(n):
    return rng.randbytes(n)


def op_create(r, p, a):
    fd = os.open(r + "/" + p, os.O_CREAT | os.O_WRONLY | (os.O_EXCL if a["excl"] else 0), a["mode"])
    os.close(fd)


def op_write(r, p, a):
    fd = os.open(r + "/" + p, os.O_WRONLY | (os.O_APPEND if a["append"] else 0) | (os.O_TRUNC if a["trunc"] else 0))
    try:
        os.pwrite(fd, a["data"], a["off"]) if not a["append"] else os.write(fd, a["data"])
    finally:
        os.close(fd)


def op_truncate(r, p, a):
    os.truncate(r + "/" + p, a["size"])


def op_unlink(r, p, a):
    os.unlink(r + "/" + p)


def op_mkdir(r, p, a):
    os.mkdir(r + "/" + p, a["mode"])


def op_rmdir(r, p, a):
    os.rmdir(r + "/" + p)


def op_rename(r, p, a):
    os.rename(r + "/" + p, r + "/" + a["to"])


def op_link(r, p, a):
    os.link(r + "/" + p, r + "/" + a["to"])


def op_symlink(r, p, a):
    os.symlink(a["target"], r + "/" + p)


def op_chmod(r, p, a):
    os.chmod(r + "/" + p, a["mode"], follow_symlinks=False) if not os.path.islink(r + "/" + p) else None


def op_setxattr(r, p, a):
    os.setxattr(r + "/" + p, a["name"], a["value"], follow_symlinks=False)


def op_removexattr(r, p, a):
    os.removexattr(r + "/" + p, a["name"], follow_symlinks=False)


def op_mmap(r, p, a):
    fd = os.open(r + "/" + p, os.O_RDWR)
    try:
        size = os.fstat(fd).st_size
        if not stat.S_ISREG(os.fstat(fd).st_mode) or size == 0:
            return
        m = mmap.mmap(fd, size)
        off = a["frac"] * size // 1000
        n = min(len(a["data"]), size - off)
        m[off:off + n] = a["data"][:n]
        m.flush()
        m.close()
    finally:
        os.close(fd)


# Descriptors kept open across operations, one per side, so that unlink,
# rename over and rmdir of open files and directories are followed by
# calls on the descriptors (the open-but-unlinked file: read, write, fstat,
# ftruncate, fchmod, directory fstat).
pool = []


def fd_call(fd, a):
    what = a["what"]
    st = os.fstat(fd)
    if what == "fstat":
        return (oct(st.st_mode), st.st_nlink if not stat.S_ISDIR(st.st_mode) else None,
                st.st_size if stat.S_ISREG(st.st_mode) else None)
    if stat.S_ISDIR(st.st_mode):
        return "dir"
    if what == "pread":
        return hash(os.pread(fd, 1 << 20, a["off"]))
    if what == "pwrite":
        os.pwrite(fd, a["data"], a["off"])
    elif what == "ftruncate":
        os.ftruncate(fd, a["size"])
    elif what == "fchmod":
        os.fchmod(fd, a["mode"])
    return (os.fstat(fd).st_size, st.st_nlink)


def run_fd(k, p, a):
    """Descriptor operations, on both sides; returns (mount result, tmpfs result)."""
    if k == "open":
        fds = []
        for root in (broot, ref):
            try:
                path = root + "/" + p
                flags = os.O_RDONLY if os.path.isdir(path) else os.O_RDWR
                fds.append(os.open(path, flags))
            except OSError as e:
                fds.append(-e.errno)
        if fds[0] >= 0 and fds[1] >= 0:
            pool.append(fds)
        else:
            for f in fds:
                if f >= 0:
                    os.close(f)
        return tuple(f if f < 0 else 0 for f in fds)
    if not pool:
        return (0, 0)
    i = a["slot"] % len(pool)
    if k == "close":
        for f in pool.pop(i):
            os.close(f)
        return (0, 0)
    out = []
    for f in pool[i]:
        try:
            out.append(fd_call(f, a))
        except OSError as e:
            out.append(-e.errno)
    return tuple(out)


def close_pool():
    while pool:
        for f in pool.pop():
            os.close(f)


def gen():
    p = pick()
    if rng.random() < 0.15:
        k = rng.choice(["open", "open", "fd", "fd", "fd", "fd", "close"])
        a = {"slot": rng.randrange(1000), "what": rng.choice(["fstat", "pread", "pwrite", "ftruncate", "fchmod"]),
             "off": rng.choice([0, 100, 5000]), "data": rand_bytes(rng.choice([1, 4096, 9000])),
             "size": rng.choice([0, 10, 5000]), "mode": rng.choice([0o600, 0o644])}
        if k == "open" and len(pool) >= 8:
            k = "close"
        return k, p, a
    k = rng.choices(["create", "write", "truncate", "unlink", "mkdir", "rmdir", "rename", "link",
                     "symlink", "chmod", "setxattr", "removexattr", "mmap"],
                    [8, 14, 5, 5, 4, 3, 8, 3, 2, 3, 3, 2, 4])[0]
    a = {}
    if k == "create":
        a = {"excl": rng.random() < 0.3, "mode": rng.choice([0o644, 0o600, 0o755])}
    elif k == "write":
        big = rng.random() < 0.1
        a = {"append": rng.random() < 0.2, "trunc": rng.random() < 0.1,
             "off": rng.choice([0, rng.randrange(0, 70000), rng.randrange(0, 3 << 20) if big else 100]),
             "data": rand_bytes(rng.choice([1, 100, 4096, 5000, rng.randrange(1, 200000) if big else 10]))}
    elif k == "truncate":
        a = {"size": rng.choice([0, 1, 4095, 4096, rng.randrange(0, 100000), rng.randrange(0, 4 << 20)])}
    elif k == "mkdir":
        a = {"mode": rng.choice([0o755, 0o700])}
    elif k in ("rename", "link"):
        a = {"to": pick()}
    elif k == "symlink":
        # An absolute target resolves on the host through both the mount and
        # tmpfs: its parent must not exist, so writes through it fail the same
        # way on both sides and never create anything outside the test.
        a = {"target": rng.choice(["f0", "d0/f1", "/nonexistent-daxfs-test/dangling", "x" * 100])}
    elif k == "chmod":
        a = {"mode": rng.choice([0o644, 0o600, 0o755, 0o4755, 0o1777, 0o444])}
    elif k == "setxattr":
        a = {"name": rng.choice(["user.a", "user.b"]), "value": rand_bytes(rng.choice([0, 5, 300]))}
    elif k == "removexattr":
        a = {"name": rng.choice(["user.a", "user.b"])}
    elif k == "mmap":
        a = {"frac": rng.randrange(0, 1000), "data": rand_bytes(rng.choice([1, 100, 8192]))}
    return k, p, a


def run(root, k, p, a):
    try:
        globals()["op_" + k](root, p, a)
        return 0
    except OSError as e:
        return e.errno


def describe(root):
    out = {}
    for dirpath, dirnames, filenames in os.walk(root):
        for n in dirnames + filenames:
            full = os.path.join(dirpath, n)
            rel = os.path.relpath(full, root)
            st = os.lstat(full)
            d = {"mode": oct(st.st_mode), "nlink": st.st_nlink if not stat.S_ISDIR(st.st_mode) else None}
            if stat.S_ISREG(st.st_mode):
                d["size"] = st.st_size
                with open(full, "rb") as f:
                    d["data"] = hash(f.read())
            if stat.S_ISLNK(st.st_mode):
                d["target"] = os.readlink(full)
            d["xattrs"] = {x: os.getxattr(full, x, follow_symlinks=False)
                           for x in sorted(os.listxattr(full, follow_symlinks=False))}
            out[rel] = d
    return out


def compare(root, what):
    a, b = describe(root), describe(ref)
    if a != b:
        for k in sorted(set(a) | set(b)):
            if a.get(k) != b.get(k):
                fail(f"{what}: {k}: mount {a.get(k)} tmpfs {b.get(k)}")
        fail(what)


ops = batches = 0
t0 = time.monotonic()
phase = 0
while time.monotonic() - t0 < budget or phase < 2:
    name = new_branch(mnt)
    broot = f"{mnt}/@{name}"
    compare(broot, f"new branch {name}")
    deadline = time.monotonic() + budget / 2
    while time.monotonic() < deadline:
        for _ in range(100):
            k, p, a = gen()
            if k in ("open", "fd", "close"):
                e1, e2 = run_fd(k, p, a)
            else:
                e1, e2 = run(broot, k, p, a), run(ref, k, p, a)
            history.append(f"{ops} {k} {p} {a.get('to', a.get('size', ''))} -> {e1}")
            if e1 != e2:
                fail(f"op {ops} {k} {p} {a if k not in ('write', 'mmap', 'setxattr') else ''}: "
                     f"mount errno {e1} tmpfs errno {e2}")
            ops += 1
        batches += 1
        compare(broot, f"batch {batches} in {name}")
    close_pool()  # descriptors of a committed branch answer ESTALE (tmpfs has no commit)
    with open(broot + "/.branchfs_ctl", "w") as c:
        c.write("commit")
    compare(mnt, f"main after committing {name}")
    phase += 1
print(f"{ops} operations in {batches} batches, {phase} commits, {time.monotonic() - t0:.1f} s: trees agree")
