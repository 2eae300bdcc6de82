#!/usr/bin/env bash
# Packed small files, shared tails and deduplicated contents through the
# mount: read() and mmap (shared and private) give each file's bytes, and the
# rest of a mapped page after EOF reads as zero, in every cache mode and for
# both directory layouts.
source "$(dirname "$0")/lib.bash" "${1:-}"
src=$WORK/src
mkdir -p "$src/d"
head -c 5000 /dev/urandom > "$src/a_large"            # leaves 3192 bytes in its last block
for i in $(seq 1 60); do head -c $((i * 37)) /dev/urandom > "$src/b_small_$i"; done
cp "$src/a_large" "$src/d/large_copy"                 # deduplicated
cp "$src/b_small_7" "$src/d/small_copy"
printf 'x' > "$src/one_byte"

check_files() {
  /usr/bin/python3 - "$1" "$2" <<'PY'
import ctypes, ctypes.util, mmap, os, sys
libc = ctypes.CDLL(ctypes.util.find_library("c"), use_errno=True)
libc.mmap.restype = ctypes.c_void_p
libc.mmap.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int, ctypes.c_int, ctypes.c_int, ctypes.c_long]
libc.munmap.argtypes = [ctypes.c_void_p, ctypes.c_size_t]
src, mnt = sys.argv[1:]
checked = 0
for root, _, files in os.walk(src):
    for name in files:
        rel = os.path.relpath(os.path.join(root, name), src)
        want = open(os.path.join(src, rel), "rb").read()
        path = os.path.join(mnt, rel)
        assert open(path, "rb").read() == want, f"{rel}: read() differs"
        fd = os.open(path, os.O_RDONLY)
        length = (len(want) + 4095) // 4096 * 4096
        for flags in (mmap.MAP_SHARED, mmap.MAP_PRIVATE):
            addr = libc.mmap(None, length, mmap.PROT_READ, flags, fd, 0)
            assert addr not in (None, ctypes.c_void_p(-1).value), f"{rel}: mmap errno {ctypes.get_errno()}"
            page = ctypes.string_at(addr, length)
            libc.munmap(addr, length)
            assert page[:len(want)] == want, f"{rel}: mapped bytes differ"
            assert page[len(want):].count(0) == length - len(want), f"{rel}: bytes after EOF are not zero"
        os.close(fd)
        checked += 1
assert checked == 64, checked
PY
}

for layout in "" --upstream-readable; do
  "$MKDAXFS" -q $layout "$WORK/img" "$src"
  "$DAXFS" check -q "$WORK/img" || fail "check $layout"
  # The layout really packs: unpacked, the 60 small files alone take 60 blocks.
  [ "$(stat -c %s "$WORK/img")" -lt $((40 * 4096)) ] || fail "image not packed ($layout)"
  for cache in direct kernel auto; do
    mnt=$WORK/mnt$layout-$cache
    mount_image "$WORK/img" "$mnt" -o cache=$cache
    check_files "$src" "$mnt" || fail "packed files through cache=$cache $layout"
    [ "$(stat -c %i "$mnt/a_large")" != "$(stat -c %i "$mnt/d/large_copy")" ] || fail "duplicates share an inode"
    [ "$(stat -c %h "$mnt/d/large_copy")" = 1 ] || fail "duplicate has a link count"
    umount "$mnt"
  done
done
echo PASS
