"""fsx-style data checker: random read / write / truncate / mmap-read /
mmap-write+msync on one large file in a branch, every read checked against
an in-memory model; then the file is checked through main after a commit.

usage: branch_fsx.py MOUNT [seed] [seconds] [max_size] [max_written]
(stops early once max_written bytes were written: the delta is not reclaimed)
"""
import ctypes, fcntl, mmap, os, random, sys, time

mnt = sys.argv[1]
seed = int(sys.argv[2]) if len(sys.argv) > 2 else int(time.time())
budget = float(sys.argv[3]) if len(sys.argv) > 3 else 10.0
max_size = int(sys.argv[4]) if len(sys.argv) > 4 else 32 << 20
max_written = int(sys.argv[5]) if len(sys.argv) > 5 else 1 << 30
written = 0
rng = random.Random(seed)
print(f"seed {seed}")
log = []


def fail(msg):
    print("\n".join(log[-20:]), file=sys.stderr)
    print(f"FAIL (seed {seed}, op {len(log)}): {msg}", file=sys.stderr)
    sys.exit(1)


fd = os.open(mnt + "/.branchfs_ctl", os.O_RDWR)
buf = ctypes.create_string_buffer(128)
fcntl.ioctl(fd, 0x80806200, buf)
os.close(fd)
name = buf.value.decode()
path = f"{mnt}/@{name}/fsx.bin"
model = bytearray()
f = os.open(path, os.O_CREAT | os.O_RDWR, 0o644)


def check(off, got, what):
    want = bytes(model[off:off + len(got)])
    if got != want:
        i = next(i for i in range(len(got)) if got[i] != want[i])
        fail(f"{what}: byte {off + i}: got {got[i]:#x} want {want[i]:#x}")


def span():
    size = len(model)
    off = rng.randrange(0, max(1, size + (64 << 10))) if rng.random() < 0.9 else rng.randrange(0, max_size)
    n = rng.choice([1, 7, 4096, rng.randrange(1, 300 << 10)])
    return off, n


counts = {}
t0 = time.monotonic()
while time.monotonic() - t0 < budget and written < max_written:
    k = rng.choices(["read", "write", "truncate", "mapread", "mapwrite", "reopen"], [30, 30, 8, 10, 10, 2])[0]
    counts[k] = counts.get(k, 0) + 1
    off, n = span()
    log.append(f"{k} {off} {n} size {len(model)}")
    if k == "read":
        got = os.pread(f, n, off)
        if len(got) != max(0, min(n, len(model) - off)):
            fail(f"read {off}+{n}: {len(got)} bytes, size {len(model)}")
        check(off, got, "read")
    elif k == "write":
        off = min(off, max_size - 1)
        n = min(n, max_size - off)
        data = rng.randbytes(n)
        written += n
        if os.pwrite(f, data, off) != n:
            fail("short write")
        if off > len(model):
            model.extend(bytes(off - len(model)))
        model[off:off + n] = data
    elif k == "truncate":
        size = rng.choice([0, rng.randrange(0, max_size), len(model) // 2, len(model) + rng.randrange(0, 1 << 20)])
        size = min(size, max_size)
        os.ftruncate(f, size)
        if size < len(model):
            del model[size:]
        else:
            model.extend(bytes(size - len(model)))
        log[-1] = f"truncate {size}"
    elif k in ("mapread", "mapwrite"):
        if not model:
            continue
        off = off % len(model)
        n = min(n, len(model) - off)
        start = off & ~(mmap.PAGESIZE - 1)
        m = mmap.mmap(f, off + n - start, offset=start)
        if k == "mapread":
            check(off, m[off - start:off - start + n], "mmap read")
        else:
            data = rng.randbytes(n)
            m[off - start:off - start + n] = data
            m.flush()
            written += n + 8192
            model[off:off + n] = data
        m.close()
    elif k == "reopen":
        os.close(f)
        f = os.open(path, os.O_RDWR)
    if os.fstat(f).st_size != len(model):
        fail(f"size {os.fstat(f).st_size}, model {len(model)}")

# Whole file, then through main after the commit.
os.close(f)
with open(path, "rb") as g:
    check(0, g.read(), "final read")
with open(f"{mnt}/@{name}/.branchfs_ctl", "w") as c:
    c.write("commit")
with open(mnt + "/fsx.bin", "rb") as g:
    got = g.read()
if len(got) != len(model):
    fail(f"main: size {len(got)}, model {len(model)}")
check(0, got, "main after commit")
print(f"{len(log)} operations {counts}, final size {len(model)}, {time.monotonic() - t0:.1f} s: data agrees")
