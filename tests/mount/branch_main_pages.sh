# Pages of main (a view this mount does not write) stay cached from one open
# to the next while main does not change, and are dropped at the next open
# once it has: a commit made through another mount of the region, of a
# change that keeps size and mtime (so nothing but the view's version tells),
# shows at the next open at once, without waiting for the watcher's poll.
source "$(dirname "$0")/lib.bash" "$1"
[ -x /usr/bin/python3 ] || skip "no /usr/bin/python3"
make_branch_region "$WORK/region"
mount_image "$WORK/region" "$WORK/m1"
mount_image "$WORK/region" "$WORK/m2"

/usr/bin/python3 - "$WORK/m1" "$WORK/m2" <<'PY'
import ctypes, fcntl, os, sys, time
m1, m2 = sys.argv[1:]

def fail(msg):
    print("FAIL:", msg, file=sys.stderr); sys.exit(1)

def read(p):
    with open(p, "rb") as f: return f.read()

def ctl(d, req, arg=0):
    fd = os.open(d + "/.branchfs_ctl", os.O_RDWR)
    try: return fcntl.ioctl(fd, req, arg)
    finally: os.close(fd)

def create(d):
    buf = ctypes.create_string_buffer(128)
    fd = os.open(d + "/.branchfs_ctl", os.O_RDWR)
    fcntl.ioctl(fd, 0x80806200, buf)
    os.close(fd)
    return buf.value.decode()

f1 = f"{m1}/dir/numbers.txt"
want = read(f1)
st = os.stat(f1)
for rounds in range(20):
    b = f"{m2}/@{create(m2)}"
    new = bytearray(want)
    new[rounds] = ord("#")                       # same size
    with open(f"{b}/dir/numbers.txt", "r+b") as f: f.write(new)
    os.utime(f"{b}/dir/numbers.txt", ns=(st.st_atime_ns, st.st_mtime_ns))  # same mtime
    assert read(f1) == want                      # m1's pages of the old main, cached
    ctl(b, 0x6201)                               # commit through the other mount
    got = read(f1)                               # at once: before m1's watcher polls
    if got != bytes(new):
        fail(f"round {rounds}: mount 1 read main as it was before a commit through mount 2")
    want = bytes(new)

# Unchanged main: repeated opens keep the pages (no read reaches the daemon).
t0 = time.monotonic()
for _ in range(200): read(f1)
print(f"200 opens+reads of an unchanged main file: {(time.monotonic() - t0) * 1000:.1f} ms")
print("ok")
PY

# Writable main: this mount's own writes to main keep its cached pages of
# main's other files (the kernel made those writes; dropping every page of
# main at each poll made reads of main slow while it was written); a write
# to main through another mount drops them within a poll.
umount "$WORK/m1" "$WORK/m2"
mount_image "$WORK/region" "$WORK/w1" -o main=writable
mount_image "$WORK/region" "$WORK/w2" -o main=writable
head -c 1048576 /dev/urandom > "$WORK/w1/big"
umount "$WORK/w1"; mount_image "$WORK/region" "$WORK/w1" -o main=writable
resident() { fincore -n -b -o RES "$WORK/w1/big" | tr -d ' '; }
cat "$WORK/w1/big" > /dev/null
[ "$(resident)" = 1048576 ] || fail "big is not in the page cache after a read ($(resident))"
for i in 1 2 3 4 5; do echo "$i" > "$WORK/w1/own-$i"; sleep 0.1; done
sleep 0.3
[ "$(resident)" = 1048576 ] || fail "this mount's own writes to main dropped its pages of main ($(resident) bytes left)"
: < "$WORK/w1/big"  # an open without a read: its pages are kept (or dropped) at open
[ "$(resident)" = 1048576 ] || fail "an open after this mount's own writes to main dropped the file's pages"
echo other > "$WORK/w2/other"
for _ in $(seq 50); do [ "$(resident)" = 0 ] && break; sleep 0.02; done
[ "$(resident)" = 0 ] || fail "a write to main through another mount left this mount's pages of main ($(resident))"
cmp "$WORK/w1/big" "$WORK/w2/big" || fail "the two mounts read main's big file differently"
echo PASS
