#!/usr/bin/env bash
# Issue #19 in a branch mount, against tmpfs where POSIX has an answer:
# open files outlive their last name (unlink, rename over, rmdir), O_TMPFILE
# with linkat, names over 255 bytes, the reserved control-file name, who may
# control a branch, and a CREATE ioctl whose buffer is bad.
source "$(dirname "$0")/lib.bash" "$1"
[ -x /usr/bin/python3 ] || skip "no /usr/bin/python3"
make_branch_region "$WORK/region"
chmod 755 "$WORK"  # the unprivileged user below must reach the mount
mount_image "$WORK/region" "$WORK/m" -o allow_other
mkdir -p "$WORK/ref"
mount -t tmpfs tmpfs "$WORK/ref"
MOUNTS=("$WORK/ref" "${MOUNTS[@]}")
"$DAXFS" branch create "$WORK/region" b -q

# The same script on tmpfs and in the branch must print the same.
scenario() {
  mkdir "$1/s"
  cd "$1/s"
  bash -c 'echo hello > f; exec 3<f; rm f; cat <&3; [ ! -e f ] && echo gone'
  /usr/bin/python3 - <<'PY'
import ctypes, os
libc = ctypes.CDLL(None, use_errno=True)
def linkat_fd(fd, name):
    if libc.linkat(-100, f"/proc/self/fd/{fd}".encode(), -100, name.encode(), 0x400) != 0:
        raise OSError(ctypes.get_errno(), "linkat")
out = []
# unlinked while open: every call on the descriptor still works
fd = os.open("u", os.O_CREAT | os.O_RDWR, 0o644)
os.write(fd, b"x" * 5000)
os.unlink("u")
os.pwrite(fd, b"yy", 10)
os.ftruncate(fd, 100)
os.fchmod(fd, 0o600)
st = os.fstat(fd)
out.append(("unlinked", st.st_nlink, st.st_size, oct(st.st_mode), os.pread(fd, 20, 0)))
os.fsync(fd)
os.close(fd)
# renamed over while open
open("a", "w").write("new"); open("b", "w").write("old")
with open("b") as g:
    os.rename("a", "b")
    out.append(("renamed-over", g.read(), os.fstat(g.fileno()).st_nlink, open("b").read()))
# rmdir of an open directory
os.mkdir("d")
dfd = os.open("d", os.O_RDONLY)
os.rmdir("d")
out.append(("rmdir", os.fstat(dfd).st_nlink, os.path.exists("d")))
os.close(dfd)
# Python's TemporaryFile (O_TMPFILE where the filesystem has it)
import tempfile
with tempfile.TemporaryFile(dir=".") as t:
    t.write(b"z" * 70000); t.seek(0)
    out.append(("tempfile", len(t.read()), sorted(os.listdir("."))))
# O_TMPFILE, written, then linked in; and an O_EXCL one that may not be
fd = os.open(".", os.O_TMPFILE | os.O_RDWR, 0o640)
os.write(fd, b"made nameless")
out.append(("tmpfile", os.fstat(fd).st_nlink))
linkat_fd(fd, "named")
out.append(("linked", os.fstat(fd).st_nlink, open("named").read(), oct(os.stat("named").st_mode)))
os.close(fd)
fd = os.open(".", os.O_TMPFILE | os.O_RDWR | os.O_EXCL, 0o600)
try:
    linkat_fd(fd, "never")
    out.append("O_EXCL tmpfile linked")
except OSError as e:
    out.append(("excl", e.errno))
os.close(fd)
# a name over 255 bytes
for call in (os.stat, os.lstat):
    try:
        call("t" * 256)
    except OSError as e:
        out.append(("long", e.errno))
# rewinddir shows the directory as it is now
class Dirent(ctypes.Structure):
    _fields_ = [("d_ino", ctypes.c_uint64), ("d_off", ctypes.c_int64), ("d_reclen", ctypes.c_ushort),
                ("d_type", ctypes.c_ubyte), ("d_name", ctypes.c_char * 256)]
libc.opendir.restype = ctypes.c_void_p
libc.readdir.restype = ctypes.POINTER(Dirent)
libc.readdir.argtypes = libc.rewinddir.argtypes = libc.closedir.argtypes = [ctypes.c_void_p]
def names(d):
    got = []
    while True:
        e = libc.readdir(d)
        if not e:
            return sorted(got)
        got.append(e.contents.d_name.decode())
open("r1", "w").close(); open("r2", "w").close()
d = libc.opendir(b".")
before = names(d)
os.unlink("r1"); open("r3", "w").close()
libc.rewinddir(d)
out.append(("rewinddir", before, names(d)))
libc.closedir(d)
out.append(sorted(os.listdir(".")))
for n in os.listdir("."):
    os.unlink(n)
os.chdir("..")
os.rmdir("s")
print(out)
PY
}
(scenario "$WORK/ref") > "$WORK/want"
(scenario "$WORK/m/@b") > "$WORK/got"
diff -u "$WORK/want" "$WORK/got" || fail "open-unlinked behaviour differs from tmpfs"
grep -q "'tmpfile', 0" "$WORK/want" || fail "the reference run did not make an O_TMPFILE"
# Nothing nameless outlives its handles: the branch has no orphans left,
# check is clean, and the commit carries no trace of them.
"$DAXFS" branch check "$WORK/region" -q || fail "check after the scenario"
echo commit > "$WORK/m/@b/.branchfs_ctl"
"$DAXFS" branch check "$WORK/region" -q || fail "check after commit"

# A branch shown as @NAME is not an entry of the directory showing it: it
# cannot be removed or renamed there (EBUSY, as a mount point), and the
# real entry of that name it hides stays as it was.
"$DAXFS" branch create "$WORK/region" hp -q
mkdir "$WORK/m/@hp/@hc"; echo hidden > "$WORK/m/@hp/@hc/file"
"$DAXFS" branch create "$WORK/region" hc --parent hp -q
for op in "rmdir $WORK/m/@hp/@hc" "mv $WORK/m/@hp/@hc $WORK/m/@hp/moved" "mv $WORK/m/@hp/.branchfs_ctl $WORK/m/@hp/@hc"; do
  err=$($op 2>&1) && fail "$op succeeded on a branch"
  case $err in *"Device or resource busy"*|*"Operation not permitted"*) ;; *) fail "$op: $err" ;; esac
done
touch "$WORK/m/@hp/@hc/in-c" || fail "branch c is not writable through @hp/@hc"
echo abort > "$WORK/m/@hp/@hc/.branchfs_ctl"
[ "$(cat "$WORK/m/@hp/@hc/file")" = hidden ] || fail "the real @hc under the branch changed"
echo abort > "$WORK/m/@hp/.branchfs_ctl"

# Names over 255 bytes: ENAMETOOLONG in main and in an image mount too.
long=$(printf 't%.0s' $(seq 256))
err=$(stat "$WORK/m/$long" 2>&1 || true)
echo "$err" | grep -q "File name too long" || fail "main: $err"
mount_image "$WORK/base.img" "$WORK/img"
err=$(stat "$WORK/img/$long" 2>&1 || true)
echo "$err" | grep -q "File name too long" || fail "image mount: $err"

# The control file's name is reserved at a branch root in every path.
"$DAXFS" branch create "$WORK/region" c -q
echo x | "$DAXFS" branch write "$WORK/region" c /.branchfs_ctl 2>"$WORK/err" && fail "branch write /.branchfs_ctl succeeded"
grep -q "reserved" "$WORK/err" || fail "message: $(cat "$WORK/err")"
mkdir "$WORK/m/@c/sub"; echo fine > "$WORK/m/@c/sub/.branchfs_ctl"  # only at the root

# Who may control a branch: whoever may write its root (and, to commit,
# the parent's). nobody may not touch root's branches through the mount.
ctl() {  # ctl USER PATH OP
  runuser -u "$1" -- /usr/bin/python3 -c '
import ctypes, fcntl, os, sys
fd = os.open(sys.argv[1], os.O_RDWR)
op = sys.argv[2]
try:
    if op == "create":
        buf = ctypes.create_string_buffer(128); fcntl.ioctl(fd, 0x80806200, buf); print(buf.value.decode())
    else:
        fcntl.ioctl(fd, 0x6201 if op == "commit" else 0x6202, 0)
except OSError as e:
    print("errno", e.errno)' "$2" "$3"
}
[ "$(ctl nobody "$WORK/m/@c/.branchfs_ctl" commit)" = "errno 13" ] || fail "nobody committed root's branch"
[ "$(ctl nobody "$WORK/m/@c/.branchfs_ctl" abort)" = "errno 13" ] || fail "nobody aborted root's branch"
[ "$(ctl nobody "$WORK/m/.branchfs_ctl" create)" = "errno 13" ] || fail "nobody branched root's main"
[ -d "$WORK/m/@c" ] || fail "branch c is gone"
# The CLI applies the same rule.
chmod 666 "$WORK/region"
runuser -u nobody -- "$DAXFS" branch commit "$WORK/region" c 2>"$WORK/err" && fail "nobody committed through the CLI"
grep -q "Permission denied" "$WORK/err" || fail "CLI message: $(cat "$WORK/err")"
chmod 644 "$WORK/region"

# A CREATE whose buffer is bad makes no branch.
before=$("$DAXFS" branch list "$WORK/region" | grep -c active)
/usr/bin/python3 -c '
import ctypes, errno, mmap, os, sys
fd = os.open(sys.argv[1], os.O_RDWR)
libc = ctypes.CDLL(None, use_errno=True)
libc.ioctl.argtypes = [ctypes.c_int, ctypes.c_ulong, ctypes.c_void_p]
libc.mmap.restype = ctypes.c_void_p
libc.mmap.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int, ctypes.c_int, ctypes.c_int, ctypes.c_long]
libc.munmap.argtypes = [ctypes.c_void_p, ctypes.c_size_t]
# 16 bytes before an unmapped page: the 128-byte name does not fit.
base = libc.mmap(None, 8192, 3, 0x22, -1, 0)
libc.munmap(base + 4096, 4096)
for arg in (0, 8, 0xdead0000, base + 4096 - 16):  # NULL, wild, unmapped, short
    r = libc.ioctl(fd, 0x80806200, arg)
    assert r == -1 and ctypes.get_errno() == errno.EFAULT, (hex(arg), r, ctypes.get_errno())' "$WORK/m/.branchfs_ctl"
after=$("$DAXFS" branch list "$WORK/region" | grep -c active)
[ "$before" = "$after" ] || fail "a failed CREATE left branches behind ($before -> $after active)"
echo PASS
