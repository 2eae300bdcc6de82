#!/usr/bin/python3
"""In-process timings for bench/compare_branch_mounts.sh, so that no process
start is measured (branchfs's bench/ times its daemon's operations for the
same reason). The control calls are those of multikernel/branching.

  create MOUNT                     make a branch of main, print its name
  abort BRANCH_DIR                 abort it
  latency MOUNT N                  create N branches, then abort them: mean
                                   and median µs of each (one line each)
  commit MOUNT KIND                create a branch, change it, time COMMIT:
                                   KIND = 1k|1m (one new file of that size,
                                   branchfs's sizes) or files1000 (append to
                                   1000 existing files); prints µs
  abortmod MOUNT KIND              the same, timing ABORT instead
  smallfiles DIR N SIZE            create N files of SIZE bytes; prints s
  seqwrite DIR MB                  write MB in 64 KiB blocks + fsync; prints s
  seqread FILE                     read FILE in 64 KiB blocks; prints s
"""
import ctypes
import fcntl
import os
import statistics
import sys
import time

CREATE = 0x80806200  # _IOR('b', 0, char[128])
COMMIT = 0x6201
ABORT = 0x6202
CTL = ".branchfs_ctl"


def ctl(d, cmd, buf=0):
    fd = os.open(os.path.join(d, CTL), os.O_RDWR)
    try:
        fcntl.ioctl(fd, cmd, buf)
    finally:
        os.close(fd)


def timed_ctl(d, cmd, buf=0):
    """µs of the ioctl alone (the control file is opened before)."""
    fd = os.open(os.path.join(d, CTL), os.O_RDWR)
    try:
        t0 = time.perf_counter()
        fcntl.ioctl(fd, cmd, buf)
        return (time.perf_counter() - t0) * 1e6
    finally:
        os.close(fd)


def create(m):
    buf = ctypes.create_string_buffer(128)
    ctl(m, CREATE, buf)
    return buf.value.decode()


def existing_files(root, n):
    """n regular files of the base tree, in a fixed order."""
    out = []
    for d, dirs, files in os.walk(root):
        dirs[:] = sorted(x for x in dirs if not x.startswith("@"))
        for f in sorted(files):
            p = os.path.join(d, f)
            if os.path.isfile(p) and not os.path.islink(p) and f != CTL:
                out.append(os.path.relpath(p, root))
                if len(out) == n:
                    return out
    raise SystemExit(f"only {len(out)} files under {root}")


def change(b, kind, files):
    if kind in ("1k", "1m"):
        with open(os.path.join(b, "modification.bin"), "wb") as f:
            f.write(os.urandom(1024 if kind == "1k" else 1 << 20))
    else:
        for rel in files:
            with open(os.path.join(b, rel), "ab") as f:
                f.write(b"changed\n")


def main():
    cmd, args = sys.argv[1], sys.argv[2:]
    if cmd == "create":
        print(create(args[0]))
    elif cmd == "abort":
        ctl(args[0], ABORT)
    elif cmd == "latency":
        m, n = args[0], int(args[1])
        made, t_create, t_abort = [], [], []
        for _ in range(n):
            buf = ctypes.create_string_buffer(128)
            t_create.append(timed_ctl(m, CREATE, buf))
            made.append(buf.value.decode())
        for name in made:
            t_abort.append(timed_ctl(os.path.join(m, "@" + name), ABORT))
        for what, t in (("create", t_create), ("abort", t_abort)):
            print(f"{what} {statistics.mean(t):.1f} {statistics.median(t):.1f}")
    elif cmd in ("commit", "abortmod"):
        m, kind = args
        files = existing_files(m, 1000) if kind == "files1000" else []
        b = os.path.join(m, "@" + create(m))
        change(b, kind, files)
        print(f"{timed_ctl(b, COMMIT if cmd == 'commit' else ABORT):.0f}")
    elif cmd == "smallfiles":
        d, n, size = args[0], int(args[1]), int(args[2])
        os.makedirs(d, exist_ok=True)
        data = os.urandom(size)
        t0 = time.perf_counter()
        for i in range(n):
            fd = os.open(os.path.join(d, f"f{i:06d}"), os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
            os.write(fd, data)
            os.close(fd)
        print(f"{time.perf_counter() - t0:.4f}")
    elif cmd == "seqwrite":
        path, mb = args[0], int(args[1])
        block = os.urandom(64 << 10)
        t0 = time.perf_counter()
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
        for _ in range(mb * 16):
            os.write(fd, block)
        os.fsync(fd)
        os.close(fd)
        print(f"{time.perf_counter() - t0:.4f}")
    elif cmd == "seqread":
        t0 = time.perf_counter()
        fd = os.open(args[0], os.O_RDONLY)
        while os.read(fd, 64 << 10):
            pass
        os.close(fd)
        print(f"{time.perf_counter() - t0:.4f}")
    else:
        raise SystemExit(__doc__)


if __name__ == "__main__":
    main()
