# Kernel caches of one mount stay correct when a commit lands through
# another mount or the CLI: a file read (and mmapped) before the commit, and
# a name looked up (absent) before it, show the new state right after.
source "$(dirname "$0")/lib.bash" "$1"
[ -x /usr/bin/python3 ] || skip "no /usr/bin/python3"
make_branch_region "$WORK/region"
mount_image "$WORK/region" "$WORK/a"
mount_image "$WORK/region" "$WORK/b"

/usr/bin/python3 - "$WORK/a" "$WORK/b" "$DAXFS" "$WORK/region" <<'PY'
import ctypes, fcntl, mmap, os, subprocess, sys, time
a, b, daxfs, region = sys.argv[1:]

def fail(msg):
    print("FAIL:", msg, file=sys.stderr); sys.exit(1)

def read(p):
    with open(p, "rb") as f: return f.read()

def create(mnt):
    fd = os.open(mnt + "/.branchfs_ctl", os.O_RDWR)
    buf = ctypes.create_string_buffer(128)
    fcntl.ioctl(fd, 0x80806200, buf)
    os.close(fd)
    return buf.value.decode()

def within(what, cond, limit=1.0):
    t0 = time.monotonic()
    while not cond():
        if time.monotonic() - t0 > limit: fail(what)
        time.sleep(0.005)
    return time.monotonic() - t0

# B caches main's hello.txt (pages, attributes, a mapping) and a negative name.
assert read(b + "/hello.txt") == b"hello\n"
f = open(b + "/hello.txt", "rb")
m = mmap.mmap(f.fileno(), 0, prot=mmap.PROT_READ)
assert m[:6] == b"hello\n"
assert not os.path.exists(b + "/new.txt")
held = os.open(b + "/shared.txt", os.O_RDONLY)
assert os.pread(held, 100, 0) == b"shared\n"

# Commit through mount A.
n = create(a)
with open(f"{a}/@{n}/hello.txt", "r+b") as w: w.write(b"HELLO")
with open(f"{a}/@{n}/new.txt", "wb") as w: w.write(b"new\n")
with open(f"{a}/@{n}/shared.txt", "wb") as w: w.write(b"changed, and longer\n")
with open(f"{a}/@{n}/.branchfs_ctl", "w") as c: c.write("commit")
# First the mapping, before anything in B asks the kernel about the file:
# only the mount's watcher can drop those pages.
dt = within("B's mapping of hello.txt still shows the old pages", lambda: m[:6] == b"HELLO\n")
print(f"mapping in B updated {dt*1000:.0f} ms after A's commit")
if os.pread(held, 100, 0) != b"changed, and longer\n": fail("an fd open in B reads stale data")
if read(b + "/hello.txt") != b"HELLO\n": fail("B reads stale hello.txt after A's commit")
if read(b + "/new.txt") != b"new\n": fail("B does not see new.txt (looked up absent before)")

# Commit through the CLI: a branch made and written with `daxfs branch`.
subprocess.run([daxfs, "branch", "create", region, "cli1"], check=True, stdout=subprocess.DEVNULL)
before = read(b + "/dir/numbers.txt")
assert not os.path.exists(b + "/cli.txt")
def cli(*args, data=None):
    subprocess.run([daxfs, "branch", *args], input=data, check=True, stdout=subprocess.DEVNULL)
cli("write", region, "cli1", "/dir/numbers.txt", data=b"cli\n")
cli("write", region, "cli1", "/cli.txt", data=b"cli\n")
cli("commit", region, "cli1")
for mnt in (a, b):
    if read(mnt + "/dir/numbers.txt") != b"cli\n": fail(f"{mnt} reads stale numbers.txt")
    if read(mnt + "/cli.txt") != b"cli\n": fail(f"{mnt} does not see cli.txt")
m.close(); f.close(); os.close(held)
PY
echo PASS
