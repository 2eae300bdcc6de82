#!/usr/bin/python3
"""Drives a branch mount the way multikernel/branching's fs/branchfs.py does:
open .branchfs_ctl, fcntl.ioctl with branchfs's constants, a 128-byte buffer
for CREATE, ESTALE as the conflict error. Usage: branch_protocol.py MOUNTPOINT
"""
import ctypes
import errno
import fcntl
import os
import sys

CREATE = 0x80806200  # _IOR('b', 0, char[128])
COMMIT = 0x6201      # _IO('b', 1)
ABORT = 0x6202       # _IO('b', 2)
CTL = ".branchfs_ctl"

M = sys.argv[1]


def fail(msg):
    print("FAIL:", msg, file=sys.stderr)
    sys.exit(1)


def create(parent_dir):
    fd = os.open(os.path.join(parent_dir, CTL), os.O_RDWR)
    try:
        buf = ctypes.create_string_buffer(128)
        fcntl.ioctl(fd, CREATE, buf)
        return buf.value.decode()
    finally:
        os.close(fd)


def ctl(branch_dir, cmd):
    fd = os.open(os.path.join(branch_dir, CTL), os.O_RDWR)
    try:
        fcntl.ioctl(fd, cmd, 0)
    finally:
        os.close(fd)


def expect_errno(err, fn, *args):
    try:
        fn(*args)
    except OSError as e:
        if e.errno != err:
            fail(f"{fn.__name__}{args}: {errno.errorcode.get(e.errno)}, expected {errno.errorcode[err]}")
        return
    fail(f"{fn.__name__}{args} succeeded, expected {errno.errorcode[err]}")


def read(path):
    with open(path) as f:
        return f.read()


def write(path, text, mode="w"):
    with open(path, mode) as f:
        f.write(text)


def tree(d):
    out = {}
    for root, dirs, files in os.walk(d):
        dirs[:] = [x for x in dirs if not x.startswith("@")]
        for name in files:
            p = os.path.join(root, name)
            out[os.path.relpath(p, d)] = read(p)
        for name in dirs:
            out[os.path.relpath(os.path.join(root, name), d) + "/"] = None
    return out


def at(name):
    return os.path.join(M, "@" + name)


base = tree(M)

# CREATE at the root: a child of main, as /@NAME/ with main's tree.
a = create(M)
if not a or len(a) >= 128 or "/" in a:
    fail(f"bad branch name {a!r}")
if tree(at(a)) != base:
    fail("a new branch does not show main's tree")
if not os.path.exists(os.path.join(at(a), CTL)):
    fail("no control file at the branch root")

# Nested: CREATE on /@a/.branchfs_ctl makes a child of a, at /@aa and /@a/@aa.
write(os.path.join(at(a), "from_a.txt"), "a\n")
aa = create(at(a))
if read(os.path.join(at(aa), "from_a.txt")) != "a\n":
    fail("the nested branch does not see its parent")
if not os.path.isdir(os.path.join(at(a), "@" + aa)):
    fail("the nested branch is not at /@parent/@child")
write(os.path.join(at(a), "@" + aa, "from_aa.txt"), "aa\n")
expect_errno(errno.EBUSY, ctl, at(a), COMMIT)  # a has an active child
ctl(at(aa), COMMIT)
if os.path.exists(at(aa)):
    fail("a committed branch is still visible")
if read(os.path.join(at(a), "from_aa.txt")) != "aa\n":
    fail("the nested commit did not land in its parent")
if os.path.exists(os.path.join(M, "from_aa.txt")):
    fail("a nested commit reached main")
ctl(at(a), COMMIT)
if read(os.path.join(M, "from_aa.txt")) != "aa\n" or read(os.path.join(M, "from_a.txt")) != "a\n":
    fail("commit into main lost data")
expect_errno(errno.EINVAL, ctl, M, COMMIT)  # main itself

# Parallel siblings, first winner; a real conflict is ESTALE.
s1, s2 = create(M), create(M)
write(os.path.join(at(s1), "shared.txt"), "one\n")
write(os.path.join(at(s2), "shared.txt"), "two\n")
ctl(at(s1), COMMIT)
expect_errno(errno.ESTALE, ctl, at(s2), COMMIT)
if read(os.path.join(M, "shared.txt")) != "one\n":
    fail("the winner's data is not in main")
if read(os.path.join(at(s2), "shared.txt")) != "two\n":
    fail("a conflicting sibling was changed by the failed commit")
ctl(at(s2), ABORT)

# A sibling survives a commit that does not touch what it touched.
s3, s4 = create(M), create(M)
write(os.path.join(at(s3), "only3"), "3\n")
write(os.path.join(at(s4), "f4"), "4\n")
ctl(at(s3), COMMIT)
if os.path.exists(os.path.join(at(s4), "only3")):
    fail("a sibling sees another branch's commit (it keeps its snapshot)")
if read(os.path.join(at(s4), "f4")) != "4\n":
    fail("the surviving sibling lost its data")
ctl(at(s4), COMMIT)
if read(os.path.join(M, "only3")) != "3\n" or read(os.path.join(M, "f4")) != "4\n":
    fail("main lacks one of two non-conflicting commits")

# Abort discards; main unchanged.
before = tree(M)
s5 = create(M)
write(os.path.join(at(s5), "gone.txt"), "x\n")
os.unlink(os.path.join(at(s5), "f3"))
ctl(at(s5), ABORT)
if os.path.exists(at(s5)) or tree(M) != before:
    fail("abort changed main or left the branch")
expect_errno(errno.ENOENT, os.stat, at(s5))

# The write interface: echo commit / abort > /@NAME/.branchfs_ctl.
s6, s7 = create(M), create(M)
write(os.path.join(at(s6), "w6"), "6\n")
write(os.path.join(at(s7), "w7"), "7\n")
expect_errno(errno.EINVAL, write, os.path.join(at(s6), CTL), "bogus\n")
write(os.path.join(at(s6), CTL), "commit\n")
write(os.path.join(at(s7), CTL), "abort\n")
if read(os.path.join(M, "w6")) != "6\n" or os.path.exists(os.path.join(M, "w7")):
    fail("the write interface did not commit/abort")

# An open file of a branch that ended answers ESTALE.
s8 = create(M)
write(os.path.join(at(s8), "open.txt"), "open\n")
f = open(os.path.join(at(s8), "open.txt"))
ctl(at(s8), ABORT)
try:
    f.read()
    fail("reading a file of an aborted branch worked")
except OSError as e:
    if e.errno != errno.ESTALE:
        fail(f"reading a file of an aborted branch: {e}")
f.close()

# A shared mapping of a file of an aborted branch faults (SIGBUS) on its next
# access, in a child process (the signal would end this one).
import signal
import subprocess
s9 = create(M)
write(os.path.join(at(s9), "mapped"), "x" * 8192)
child = subprocess.run([sys.executable, "-c", f"""
import fcntl, mmap, os, time
fd = os.open({os.path.join(at(s9), 'mapped')!r}, os.O_RDWR)
m = mmap.mmap(fd, 8192)
assert m[0:1] == b"x"
c = os.open({os.path.join(at(s9), CTL)!r}, os.O_RDWR)
fcntl.ioctl(c, {ABORT}, 0)
time.sleep(0.5)
m[0:1]
"""], capture_output=True, text=True, timeout=60)
if child.returncode != -signal.SIGBUS:
    fail(f"mapping of an aborted branch: exit {child.returncode}, expected SIGBUS; {child.stderr[-300:]}")

# main is read-only.
expect_errno(errno.EROFS, write, os.path.join(M, "nope"), "x")
print("ok")
