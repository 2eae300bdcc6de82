#!/usr/bin/env bash
# Object-store images through daxfs-mount (issue 13): as root the kernel
# serves file data from the object files (FUSE passthrough), so an mmap
# through two mounts maps the object file's own physical pages; contents and
# metadata match the source in every cache mode; a damaged or missing object
# fails with EIO, never wrong bytes; a normal user's mount falls back to
# serving data through the daemon and says so.
source "$(dirname "$0")/lib.bash" "${1:-}"
command -v setfattr >/dev/null || skip "no setfattr"

chmod 755 "$WORK"
make_tree "$WORK/src"
"$MKDAXFS" -q --objects "$WORK/objs" "$WORK/img" "$WORK/src"
chmod 644 "$WORK/img"

for cache in direct kernel auto; do
  mount_image "$WORK/img" "$WORK/m-$cache" -o cache=$cache 2>"$WORK/err"
  grep -q passthrough "$WORK/err" && fail "root mount lost passthrough: $(cat "$WORK/err")"
  diff -r --no-dereference "$WORK/src" "$WORK/m-$cache" >/dev/null 2>&1 ||
    diff -r --no-dereference "$WORK/src" "$WORK/m-$cache" | grep -v '^File .* is a \(fifo\|character special file\|block special file\)' | grep . &&
    fail "cache=$cache: contents differ"
  [ "$(describe_tree "$WORK/src")" = "$(describe_tree "$WORK/m-$cache")" ] || fail "cache=$cache: metadata differs"
done

# Page frames: the object file, and the same file mmapped through two mounts.
obj=$("$DAXFS" stat "$WORK/img" /sub/random.bin | sed -n 's/^  data: object //p')
[ -f "$obj" ] || fail "no object path from daxfs stat"
python3 - "$obj" "$WORK/m-direct/sub/random.bin" "$WORK/m-kernel/sub/random.bin" <<'PY' || fail "pagemap"
import ctypes, os, struct, sys
libc = ctypes.CDLL(None, use_errno=True)
libc.mmap.restype = ctypes.c_void_p
libc.mmap.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int, ctypes.c_int, ctypes.c_int, ctypes.c_long]
PROT_READ, MAP_SHARED, PAGE = 1, 1, 4096
def frames(path, pages):
    fd = os.open(path, os.O_RDONLY)
    size = os.fstat(fd).st_size
    addr = libc.mmap(None, size, PROT_READ, MAP_SHARED, fd, 0)
    assert addr not in (None, ctypes.c_void_p(-1).value), path
    out = []
    with open("/proc/self/pagemap", "rb", buffering=0) as pm:
        for p in pages:
            ctypes.c_char.from_address(addr + p * PAGE).value  # fault it in
            pm.seek((addr // PAGE + p) * 8)
            e = struct.unpack("Q", pm.read(8))[0]
            assert e >> 63, f"{path} page {p} not present"
            out.append(e & ((1 << 55) - 1))
    return out
pages = [0, 1, 100, 700]
want = frames(sys.argv[1], pages)
assert all(want), "no frame numbers (not root?)"
for path in sys.argv[2:]:
    got = frames(path, pages)
    assert got == want, f"{path}: frames {got} != object's {want}"
PY

# A damaged object (same size) and a missing one: EIO at open, no bytes.
mkdir -p "$WORK/t"
head -c 100000 /dev/urandom > "$WORK/t/damaged"
head -c 5000 /dev/urandom > "$WORK/t/missing"
echo fine > "$WORK/t/fine"
"$MKDAXFS" -q --objects "$WORK/tobjs" "$WORK/timg" "$WORK/t"
damaged=$("$DAXFS" stat "$WORK/timg" /damaged | sed -n 's/^  data: object //p')
missing=$("$DAXFS" stat "$WORK/timg" /missing | sed -n 's/^  data: object //p')
chmod 644 "$damaged"
printf 'X' | dd of="$damaged" bs=1 seek=5000 conv=notrunc status=none
rm "$missing"
for cache in direct kernel; do
  mount_image "$WORK/timg" "$WORK/tm-$cache" -o cache=$cache
  for f in damaged missing; do
    if cat "$WORK/tm-$cache/$f" > "$WORK/out" 2>"$WORK/err"; then fail "cache=$cache: $f read"; fi
    grep -q "Input/output error" "$WORK/err" || fail "cache=$cache: $f: $(cat "$WORK/err")"
    [ -s "$WORK/out" ] && fail "cache=$cache: $f gave bytes"
  done
  cmp "$WORK/t/fine" "$WORK/tm-$cache/fine" || fail "cache=$cache: an intact file"
done

# An object changed while a descriptor holds its file open: the next open
# is checked again (the object's ctime moved) and fails, never serving the
# changed bytes (issue #19).
head -c 200000 /dev/urandom > "$WORK/t2big"
mkdir -p "$WORK/t2"; mv "$WORK/t2big" "$WORK/t2/big"
"$MKDAXFS" -q --objects "$WORK/t2objs" "$WORK/t2img" "$WORK/t2"
mount_image "$WORK/t2img" "$WORK/t2m"
obj2=$("$DAXFS" stat "$WORK/t2img" /big | sed -n 's/^  data: object //p')
exec 7<"$WORK/t2m/big"
chmod 644 "$obj2"
printf 'TAMPERED' | dd of="$obj2" bs=1 seek=100 conv=notrunc status=none
echo 3 > /proc/sys/vm/drop_caches
if dd if="$WORK/t2m/big" bs=4096 count=1 2>"$WORK/err" | grep -q TAMPERED; then fail "a new open served a changed object"; fi
grep -q "Input/output error" "$WORK/err" || fail "a new open of a changed object did not fail: $(cat "$WORK/err")"
exec 7<&-

# A normal user: no passthrough, one message, same contents via the daemon.
user=nobody
if id "$user" >/dev/null 2>&1 && fm=$(command -v fusermount3) && [ -u "$fm" ] && command -v setpriv >/dev/null; then
  as_user() { setpriv --reuid="$user" --regid="$(id -g "$user")" --clear-groups "$@"; }
  old_mode=$(stat -c %a /dev/fuse)
  trap 'cleanup; chmod "$old_mode" /dev/fuse' EXIT
  chmod 666 /dev/fuse
  for cache in direct kernel; do
    mkdir -p "$WORK/u-$cache"
    chown "$user" "$WORK/u-$cache"
    as_user "$MOUNT" "$WORK/img" "$WORK/u-$cache" -o cache=$cache 2>"$WORK/err" || fail "user mount: $(cat "$WORK/err")"
    MOUNTS=("$WORK/u-$cache" "${MOUNTS[@]}")
    [ "$(grep -c 'FUSE passthrough unavailable' "$WORK/err")" = 1 ] || fail "no fallback message: $(cat "$WORK/err")"
    grep -q CAP_SYS_ADMIN "$WORK/err" || fail "message does not say why: $(cat "$WORK/err")"
    as_user cmp "$WORK/src/sub/random.bin" "$WORK/u-$cache/sub/random.bin" || fail "user: content"
    as_user /usr/bin/python3 - "$WORK/u-$cache/sub/deeper/numbers.txt" "$WORK/src/sub/deeper/numbers.txt" <<'PY' || fail "user: mmap"
import mmap, os, sys
want = open(sys.argv[2], "rb").read()
fd = os.open(sys.argv[1], os.O_RDONLY)
m = mmap.mmap(fd, 0, mmap.MAP_SHARED, mmap.PROT_READ)
assert m[:] == want
PY
    as_user "$fm" -u "$WORK/u-$cache" || fail "fusermount3 -u"
  done
else
  echo "note: no unprivileged fallback check (needs nobody, setuid fusermount3, setpriv)"
fi
echo PASS
