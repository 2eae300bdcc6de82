#!/usr/bin/env bash
# File handles (NFS export, open_by_handle_at, OverlayFS decoding its
# lower layer's handles with index=on or nfs_export=on) resolve after the
# kernel forgot the inode: handles taken on one mount of an image open the
# same files on a fresh mount of it, for every file type (the kernel asks
# LOOKUP "." of the handle's node id, and ".." to reconnect directories);
# a handle naming an inode the image does not have is ESTALE.
source "$(dirname "$0")/lib.bash" "${1:-}"
make_tree "$WORK/src"
"$MKDAXFS" -q "$WORK/img" "$WORK/src"
# A second image with a single file: the first image's inode numbers are
# beyond its end.
mkdir -p "$WORK/small"; printf x > "$WORK/small/only"
"$MKDAXFS" -q "$WORK/small.img" "$WORK/small"

cat > "$WORK/handles.py" <<'PY'
import ctypes, errno, os, stat, sys
libc = ctypes.CDLL(None, use_errno=True)
class Handle(ctypes.Structure):
    _fields_ = [("handle_bytes", ctypes.c_uint), ("handle_type", ctypes.c_int),
                ("f_handle", ctypes.c_ubyte * 128)]
def name_to_handle(path):
    h = Handle(handle_bytes=128)
    mount_id = ctypes.c_int()
    if libc.name_to_handle_at(-100, path.encode(), ctypes.byref(h), ctypes.byref(mount_id), 0) != 0:
        sys.exit(f"name_to_handle_at {path}: {os.strerror(ctypes.get_errno())}")
    return f"{h.handle_type}:{bytes(h.f_handle[:h.handle_bytes]).hex()}"
def open_handle(mount_fd, text):
    t, hexbytes = text.split(":")
    raw = bytes.fromhex(hexbytes)
    h = Handle(handle_bytes=len(raw), handle_type=int(t))
    ctypes.memmove(h.f_handle, raw, len(raw))
    fd = libc.open_by_handle_at(mount_fd, ctypes.byref(h), os.O_PATH | os.O_NOFOLLOW)
    return fd, ctypes.get_errno()
cmd, mnt = sys.argv[1], sys.argv[2]
if cmd == "take":
    for rel in sys.argv[3:]:
        print(rel, name_to_handle(os.path.join(mnt, rel)))
elif cmd == "open":
    src = sys.argv[3]
    mount_fd = os.open(mnt, os.O_RDONLY | os.O_DIRECTORY)
    checked = 0
    for line in sys.stdin:
        rel, text = line.split()
        fd, err = open_handle(mount_fd, text)
        if fd < 0:
            sys.exit(f"open_by_handle_at {rel}: {os.strerror(err)}")
        st, ref = os.fstat(fd), os.lstat(os.path.join(src, rel))
        if stat.S_IFMT(st.st_mode) != stat.S_IFMT(ref.st_mode) or \
                (not stat.S_ISDIR(st.st_mode) and st.st_size != ref.st_size):
            sys.exit(f"{rel}: the handle opened another file")
        if stat.S_ISREG(st.st_mode):
            with open(f"/proc/self/fd/{fd}", "rb") as f, open(os.path.join(src, rel), "rb") as g:
                if f.read() != g.read():
                    sys.exit(f"{rel}: other contents through the handle")
        elif stat.S_ISDIR(st.st_mode):
            if sorted(os.listdir(f"/proc/self/fd/{fd}")) != sorted(os.listdir(os.path.join(src, rel))):
                sys.exit(f"{rel}: another listing through the handle")
        elif stat.S_ISLNK(st.st_mode):
            buf = ctypes.create_string_buffer(4096)
            n = libc.readlinkat(fd, b"", buf, 4096)
            if n < 0 or buf.raw[:n].decode() != os.readlink(os.path.join(src, rel)):
                sys.exit(f"{rel}: another symlink target through the handle")
        os.close(fd)
        checked += 1
    print(checked)
elif cmd == "stale":
    mount_fd = os.open(mnt, os.O_RDONLY | os.O_DIRECTORY)
    for line in sys.stdin:
        rel, text = line.split()
        fd, err = open_handle(mount_fd, text)
        if fd >= 0:
            sys.exit(f"{rel}: a handle from another image opened something")
        if err != errno.ESTALE:
            sys.exit(f"{rel}: {os.strerror(err)} for a handle of another image (want ESTALE)")
PY

paths="hello.txt sub/random.bin sub/deeper/numbers.txt sub/hardlink empty_file symlink dangling sub sub/deeper
empty fifo null sparse"
mnt=$WORK/mnt
mount_image "$WORK/img" "$mnt"
# shellcheck disable=SC2086
python3 "$WORK/handles.py" take "$mnt" $paths > "$WORK/handles" || fail "taking handles failed"
umount "$mnt"
# A fresh mount has nothing of the tree in the kernel's caches.
mount_image "$WORK/img" "$mnt"
n=$(python3 "$WORK/handles.py" open "$mnt" "$WORK/src" < "$WORK/handles") || fail "handles after a remount: $n"
[ "$n" = "$(echo $paths | wc -w)" ] || fail "checked $n handles"
umount "$mnt"
mount_image "$WORK/small.img" "$mnt"
python3 "$WORK/handles.py" stale "$mnt" < "$WORK/handles" || fail "handles of another image"
echo PASS
