#!/usr/bin/env bash
# An object-store image as the metadata layer of an OverlayFS data-only lower
# stack (kernel 6.5+, the arrangement composefs uses):
#   daxfs-mount -o overlay_lower IMG META
#   mount -t overlay -o ro,metacopy=on,redirect_dir=follow,lowerdir=META::OBJDIR
# Contents and metadata match the source; an mmap through two such mounts
# maps the object file's own physical pages; the overlay xattrs exist only
# with overlay_lower, and only on files that have an object; the tree's own
# trusted.overlay.* are escaped.
source "$(dirname "$0")/lib.bash" "${1:-}"
command -v setfattr >/dev/null || skip "no setfattr"
grep -qw overlay /proc/filesystems || modprobe overlay 2>/dev/null || skip "no overlayfs"

make_tree "$WORK/src" 2>/dev/null
"$MKDAXFS" -q --objects "$WORK/objs" "$WORK/img" "$WORK/src"
obj=$("$DAXFS" stat "$WORK/img" /sub/random.bin | sed -n 's/^  data: object //p')
name=${obj#"$WORK/objs"}

mount_image "$WORK/img" "$WORK/plain"
[ -z "$(getfattr -h -m trusted.overlay -d "$WORK/plain/sub/random.bin" 2>/dev/null)" ] ||
  fail "overlay xattrs without overlay_lower"

for i in 1 2; do
  mount_image "$WORK/img" "$WORK/meta$i" -o cache=kernel,overlay_lower
  mkdir -p "$WORK/ov$i"
  mount -t overlay overlay -o "ro,metacopy=on,redirect_dir=follow,lowerdir=$WORK/meta$i::$WORK/objs" "$WORK/ov$i" ||
    skip "this kernel cannot mount a data-only lower layer"
  MOUNTS=("$WORK/ov$i" "${MOUNTS[@]}")
done
[ "$(getfattr -h --only-values -n trusted.overlay.redirect "$WORK/meta1/sub/random.bin")" = "$name" ] ||
  fail "redirect is not $name"
getfattr -h -n trusted.overlay.metacopy "$WORK/meta1/empty_file" >/dev/null 2>&1 && fail "empty file has metacopy"
getfattr -h -n trusted.overlay.redirect "$WORK/meta1/symlink" >/dev/null 2>&1 && fail "symlink has a redirect"

diff -r --no-dereference "$WORK/src" "$WORK/ov1" 2>&1 |
  grep -v '^File .* is a \(fifo\|character special file\|block special file\)' | grep . && fail "contents differ"
# Everything else equal, xattrs included: the tree's own trusted.overlay.*
# (an opaque marker on sub/deeper) are escaped in the metadata layer, so
# OverlayFS shows them instead of acting on them, as with the EROFS view.
# (kernels before 6.7 cannot show escaped xattrs: overlay_view_xattrs)
[ "$(describe_tree "$WORK/src" | overlay_view_xattrs)" = "$(describe_tree "$WORK/ov1" | overlay_view_xattrs)" ] || {
  diff <(describe_tree "$WORK/src" | overlay_view_xattrs) <(describe_tree "$WORK/ov1" | overlay_view_xattrs) |
    head -20 >&2; fail "metadata differs"; }
[ "$(getfattr -h --only-values -n trusted.overlay.overlay.opaque "$WORK/meta1/sub/deeper")" = y ] ||
  fail "the tree's own trusted.overlay.opaque is not escaped in the metadata layer"
getfattr -h -n trusted.overlay.opaque "$WORK/meta1/sub/deeper" >/dev/null 2>&1 &&
  fail "the tree's own trusted.overlay.opaque is visible unescaped to OverlayFS"

python3 - "$obj" "$WORK/ov1/sub/random.bin" "$WORK/ov2/sub/random.bin" <<'PY' || fail "pagemap"
import ctypes, os, struct, sys
libc = ctypes.CDLL(None, use_errno=True)
libc.mmap.restype = ctypes.c_void_p
libc.mmap.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int, ctypes.c_int, ctypes.c_int, ctypes.c_long]
def frames(path, pages):
    fd = os.open(path, os.O_RDONLY)
    addr = libc.mmap(None, os.fstat(fd).st_size, 1, 1, fd, 0)  # PROT_READ, MAP_SHARED
    assert addr not in (None, ctypes.c_void_p(-1).value), path
    out = []
    with open("/proc/self/pagemap", "rb", buffering=0) as pm:
        for p in pages:
            ctypes.c_char.from_address(addr + p * 4096).value
            pm.seek((addr // 4096 + p) * 8)
            e = struct.unpack("Q", pm.read(8))[0]
            assert e >> 63, f"{path} page {p} not present"
            out.append(e & ((1 << 55) - 1))
    return out
want = frames(sys.argv[1], [0, 9, 500])
assert all(want)
for path in sys.argv[2:]:
    assert frames(path, [0, 9, 500]) == want, path
PY

# overlay_lower is for object-store images only.
"$MKDAXFS" -q "$WORK/single.img" "$WORK/src"
mkdir -p "$WORK/bad"
if "$MOUNT" "$WORK/single.img" "$WORK/bad" -o overlay_lower 2>"$WORK/err"; then
  MOUNTS=("$WORK/bad" "${MOUNTS[@]}"); fail "overlay_lower accepted a single-region image"
fi
grep -q "needs an object-store image" "$WORK/err" || fail "message: $(cat "$WORK/err")"
echo PASS
