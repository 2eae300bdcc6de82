# Entry, attribute and page caching in a branch whose writer lease the mount
# holds (timeouts > 0, negative entries, keep_cache): a commit of a child
# into it through the mount shows at once (names looked up as absent,
# changed contents of the same size, attributes); a commit into it from
# another process is refused while the mount holds the lease; a branch
# aborted from another process disappears from the mount within a poll; a
# name used again at once leads to the new branch; a cwd inside the branch
# survives a child's commit.
source "$(dirname "$0")/lib.bash" "$1"
[ -x /usr/bin/python3 ] || skip "no /usr/bin/python3"
make_branch_region "$WORK/region"
mount_image "$WORK/region" "$WORK/m"

/usr/bin/python3 - "$WORK/m" "$DAXFS" "$WORK/region" <<'PY'
import ctypes, fcntl, os, subprocess, sys, time
m, daxfs, region = sys.argv[1:]

def fail(msg):
    print("FAIL:", msg, file=sys.stderr); sys.exit(1)

def read(p):
    with open(p, "rb") as f: return f.read()

def write(p, data, mode="wb"):
    with open(p, mode) as f: f.write(data)

def create(d):
    fd = os.open(d + "/.branchfs_ctl", os.O_RDWR)
    buf = ctypes.create_string_buffer(128)
    fcntl.ioctl(fd, 0x80806200, buf)
    os.close(fd)
    return buf.value.decode()

def commit(d):
    fd = os.open(d + "/.branchfs_ctl", os.O_RDWR)
    try: fcntl.ioctl(fd, 0x6201, 0)
    finally: os.close(fd)

b = f"{m}/@{create(m)}"
write(f"{b}/x", b"old contents\n")                 # takes the lease
os.utime(f"{b}/x", ns=(1_000_000_000, 1_000_000_000))
assert read(f"{b}/x") == b"old contents\n"         # pages cached
assert not os.path.exists(f"{b}/y")                # negative entry cached
assert not os.path.exists(f"{b}/dir/sub/z")
st_dir = os.stat(f"{b}/dir")
held = open(f"{b}/x", "rb")

# A child of b, made, written and committed through the mount.
c = create(b)
cd = f"{b}/@{c}"
write(f"{cd}/x", b"NEW CONTENTS\n")               # same size
write(f"{cd}/y", b"y\n")
write(f"{cd}/dir/sub/z", b"z\n")
os.chmod(f"{cd}/dir", 0o700)
commit(cd)
if os.path.exists(cd): fail("the committed child is still visible")
if read(f"{b}/x") != b"NEW CONTENTS\n": fail("stale pages of x in the parent after the child's commit")
if held.read() != b"NEW CONTENTS\n": fail("a file open before the commit reads stale pages")
if os.stat(f"{b}/x").st_mtime_ns == 1_000_000_000: fail("stale mtime of x after the child's commit")
if not os.path.exists(f"{b}/y") or read(f"{b}/y") != b"y\n": fail("y, looked up as absent before, is not seen")
if read(f"{b}/dir/sub/z") != b"z\n": fail("dir/sub/z, looked up as absent before, is not seen")
if os.stat(f"{b}/dir").st_mode & 0o777 != 0o700: fail("stale mode of dir after the child's commit")

# Another process cannot commit into b while the mount holds b's lease.
name = os.path.basename(b)[1:]
subprocess.run([daxfs, "branch", "create", region, "cli", "--parent", name], check=True,
               stdout=subprocess.DEVNULL)
r = subprocess.run([daxfs, "branch", "commit", region, "cli"], capture_output=True, text=True)
if r.returncode == 0: fail("a commit into a branch whose lease the mount holds was allowed")
if "EBUSY" not in r.stderr and "busy" not in r.stderr.lower(): fail(f"commit into a leased parent: {r.stderr}")
subprocess.run([daxfs, "branch", "abort", region, "cli"], check=True, stdout=subprocess.DEVNULL)

# b aborted from another process: gone from the mount within a poll.
subprocess.run([daxfs, "branch", "abort", region, name], check=True, stdout=subprocess.DEVNULL)
t0 = time.monotonic()
while os.path.exists(b):
    if time.monotonic() - t0 > 2:
        print(subprocess.run([daxfs, "branch", "list", region], capture_output=True, text=True).stdout, file=sys.stderr)
        fail("a branch aborted elsewhere is still visible after 2 s")
    time.sleep(0.01)
print(f"branch aborted elsewhere gone after {(time.monotonic() - t0) * 1000:.0f} ms")
try:
    held.seek(0); held.read()
    fail("a file of the aborted branch is still readable")
except OSError:
    pass

# A name used again at once (abort, then create under the same name, as a
# script with fixed names does): the mount shows the new branch, not the
# ended one it viewed before (ESTALE), for reads, writes and CREATE.
for cycle in range(3):
    subprocess.run([daxfs, "branch", "create", region, "again"], check=True, stdout=subprocess.DEVNULL)
    again = os.path.join(os.path.dirname(b), "@again")
    with open(f"{again}/c{cycle}", "w") as f: f.write("x")
    if cycle > 0 and f"c{cycle - 1}" in os.listdir(again):
        fail(f"cycle {cycle}: a file of the ended branch of the name is visible")
    if cycle < 2:
        subprocess.run([daxfs, "branch", "abort", region, "again"], check=True, stdout=subprocess.DEVNULL)
child = create(again)
info = subprocess.run([daxfs, "branch", "list", region], capture_output=True, text=True).stdout
if not any(l.split()[:3] == [child, "active", "again"] for l in info.splitlines()):
    fail(f"CREATE through the name used again: {child} is not a child of the new branch:\n{info}")
# A process whose cwd is in a leased branch keeps a working cwd when a
# child commits into the branch (the branch's names are expired, not
# invalidated: invalidation unhashed directories, and getcwd said ENOENT),
# and sees the child's changes there at once.
a = f"{m}/@{create(m)}"
os.makedirs(f"{a}/project/sub")
open(f"{a}/project/f", "w").write("x")
os.chdir(f"{a}/project/sub")
before = os.getcwd()
c = f"{a}/@{create(a)}"
open(f"{c}/project/newfile", "w").write("y")
os.rename(f"{c}/project/f", f"{c}/project/g")
open(f"{c}/.branchfs_ctl", "w").write("commit")
try:
    after = os.getcwd()
except OSError as e:
    fail(f"getcwd after the child's commit: {e}")
if after != before: fail(f"cwd {before} became {after}")
if sorted(os.listdir("..")) != ["g", "newfile", "sub"]: fail(f"the commit is not seen: {os.listdir('..')}")
os.chdir("/")
print("ok")
PY
echo PASS
