# fallocate(2) in a branch mount against tmpfs: random fallocate calls (mode
# 0, KEEP_SIZE, PUNCH_HOLE, ZERO_RANGE, and modes neither supports) mixed
# with writes, on a file in a branch and on tmpfs side by side; the same
# errno for each call and the same size and contents (read and mmap) after
# each; main equals the tmpfs file after the commit. DAXFS_FALLOC_SEED.
source "$(dirname "$0")/lib.bash" "$1"
[ -x /usr/bin/python3 ] || skip "no /usr/bin/python3"
make_branch_region "$WORK/region"
mount_image "$WORK/region" "$WORK/m"
mkdir -p "$WORK/tmpfs"
mount -t tmpfs daxfs-falloc "$WORK/tmpfs"
MOUNTS=("$WORK/tmpfs" "${MOUNTS[@]}")

/usr/bin/python3 - "$WORK/m" "$WORK/tmpfs" "${DAXFS_FALLOC_SEED:-$RANDOM}" <<'PY'
import ctypes, errno, fcntl, mmap, os, random, sys
m, ref, seed = sys.argv[1], sys.argv[2], int(sys.argv[3])
print("seed", seed)
rng = random.Random(seed)
libc = ctypes.CDLL(None, use_errno=True)
libc.fallocate.argtypes = [ctypes.c_int, ctypes.c_int, ctypes.c_long, ctypes.c_long]
KEEP, PUNCH, COLLAPSE, ZERO, INSERT = 0x01, 0x02, 0x08, 0x10, 0x20

def fail(msg):
    print(f"FAIL (seed {seed}):", msg, file=sys.stderr); sys.exit(1)

def fallocate(fd, mode, off, length):
    if libc.fallocate(fd, mode, off, length) != 0:
        return ctypes.get_errno()
    return 0

def create(d):
    fd = os.open(d + "/.branchfs_ctl", os.O_RDWR)
    buf = ctypes.create_string_buffer(128)
    fcntl.ioctl(fd, 0x80806200, buf)
    os.close(fd)
    return buf.value.decode()

def contents(path):
    with open(path, "rb") as f:
        data = f.read()
    if data:
        with open(path, "rb") as f, mmap.mmap(f.fileno(), 0, prot=mmap.PROT_READ) as mm:
            if mm[:] != data: fail(f"{path}: mmap and read differ")
    return data

b = f"{m}/@{create(m)}"
paths = [f"{b}/f", f"{ref}/f"]
init = os.urandom(rng.randrange(1, 3 << 20))
fds = []
for p in paths:
    with open(p, "wb") as f: f.write(init)
    fds.append(os.open(p, os.O_RDWR))
modes = [0, KEEP, PUNCH | KEEP, ZERO, ZERO | KEEP, PUNCH, COLLAPSE, INSERT, ZERO | PUNCH | KEEP]
for step in range(300):
    size = os.fstat(fds[1]).st_size
    if rng.random() < 0.3:
        off = rng.randrange(0, size + 8192)
        data = os.urandom(rng.randrange(1, 65536))
        for fd in fds: os.pwrite(fd, data, off)
        what = f"pwrite({off}, {len(data)})"
    else:
        mode = rng.choice(modes)
        off = rng.choice([rng.randrange(0, size + 1), rng.randrange(0, size + 1) & ~4095])
        length = rng.choice([rng.randrange(1, 20000), rng.randrange(1, 64) * 4096, rng.randrange(0, 1 << 21)])
        errs = [fallocate(fd, mode, off, length) for fd in fds]
        what = f"fallocate(mode={mode:#x}, {off}, {length})"
        if errs[0] != errs[1]:
            fail(f"step {step}: {what}: branch {errno.errorcode.get(errs[0], errs[0])}, "
                 f"tmpfs {errno.errorcode.get(errs[1], errs[1])}")
    if os.fstat(fds[0]).st_size != os.fstat(fds[1]).st_size:
        fail(f"step {step}: {what}: size {os.fstat(fds[0]).st_size} vs tmpfs {os.fstat(fds[1]).st_size}")
    if step % 10 == 0 or step == 299:
        if contents(paths[0]) != contents(paths[1]):
            fail(f"step {step}: {what}: contents differ from tmpfs")
for fd in fds: os.close(fd)
want = contents(paths[1])
with open(b + "/.branchfs_ctl", "w") as c: c.write("commit")
if contents(f"{m}/f") != want: fail("main differs from tmpfs after the commit")
print(f"ok: 300 steps, final size {len(want)}")
PY
echo PASS
