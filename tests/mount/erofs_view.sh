# The EROFS view (mkdaxfs --erofs): the stock kernel EROFS driver (through
# a loop device) and daxfs-mount serve the same image, and both equal the
# source tree: every file type, hard links, xattrs, ns mtimes, sparse and
# block-boundary sizes, duplicates, long names, deep paths, multi-block
# directories; and a real system tree. fsck.erofs (erofs-utils) reports the
# image clean; a flipped byte in the EROFS metadata is caught by daxfs check.
source "$(dirname "$0")/lib.bash" "$1"
grep -qw erofs /proc/filesystems || modprobe erofs 2>/dev/null || true
grep -qw erofs /proc/filesystems || skip "this kernel has no EROFS"
command -v losetup >/dev/null || skip "no losetup"

S=$WORK/src
make_tree "$S"
# Sizes around the block size, duplicates (small and large), an empty dir.
for n in 1 4095 4096 4097 8191 8192 12289; do head -c $n /dev/urandom > "$S/size-$n"; done
printf 'same small\n' > "$S/dup-a"; cp "$S/dup-a" "$S/dup-b"; cp "$S/dup-a" "$S/sub/dup-c"
cp "$S/size-12289" "$S/size-12289-copy"
# A directory of many entries (several EROFS directory blocks), names of
# every length up to 255, and names sorting before and after "." and "..".
mkdir -p "$S/many"
for i in $(seq 1 1500); do printf 'f%d' "$i" > "$S/many/entry-$i"; done
for len in 1 2 50 100 200 254 255; do : > "$S/many/$(head -c "$len" /dev/zero | tr '\0' 'n')"; done
for nm in '!bang' '#hash' '+plus' ',comma' '-dash' '.dotfile' '..dotdot' 'zzz' '~tilde'; do echo "$nm" > "$S/many/$nm"; done
d=$S/deep; for i in $(seq 1 40); do d=$d/level-$i; done; mkdir -p "$d"; echo bottom > "$d/file"
ln -s "$(head -c 3000 /dev/zero | tr '\0' 'x')" "$S/long-symlink"
setfattr -n user.big -v "$(head -c 1500 /dev/zero | tr '\0' 'v')" "$S/size-1"
setfattr -n trusted.overlay.redirect -v /elsewhere "$S/sub"

check_image() {  # IMAGE SOURCE NAME
  local img=$1 src=$2 name=$3 m=$WORK/erofs-$3 d=$WORK/daxfs-$3
  if command -v fsck.erofs >/dev/null; then
    fsck.erofs "$img" > "$WORK/fsck.log" 2>&1 || { cat "$WORK/fsck.log" >&2; fail "$name: fsck.erofs"; }
  fi
  "$DAXFS" check -q "$img" || fail "$name: daxfs check"
  # dump.erofs (erofs-utils) counts the inodes daxfs has.
  if command -v dump.erofs >/dev/null; then
    local n_erofs n_daxfs
    n_erofs=$(dump.erofs -s "$img" | sed -n 's/^Filesystem inode count: *//p')
    n_daxfs=$("$DAXFS" info "$img" | sed -n 's/^inodes: *//p')
    [ "$n_erofs" = "$n_daxfs" ] || fail "$name: dump.erofs counts $n_erofs inodes, daxfs $n_daxfs"
  fi
  info=$("$DAXFS" info "$img")
  grep -q "EROFS view: *yes" <<<"$info" || fail "$name: daxfs info does not report the EROFS view"
  mkdir -p "$m"
  mount -t erofs -o ro,loop "$img" "$m" || fail "$name: mount -t erofs"
  MOUNTS=("$m" "${MOUNTS[@]}")
  remember_mount "$m"
  mount_image "$img" "$d"
  describe_tree "$src" > "$WORK/want"
  for view in "$m" "$d"; do
    describe_tree "$view" > "$WORK/got"
    diff "$WORK/want" "$WORK/got" > "$WORK/diff" || { head -n 20 "$WORK/diff" >&2; fail "$name: $view differs from the source"; }
    # Contents, in one process (a cmp per file took most of this test's time).
    diff -r --no-dereference "$src" "$view" 2>&1 |
      grep -v '^File .* is a \(fifo\|character special file\|block special file\|socket\)' > "$WORK/diff" || true
    [ ! -s "$WORK/diff" ] || { head -n 20 "$WORK/diff" >&2; fail "$name: contents of $view differ"; }
  done
  # Hard links: one inode under both names in both views.
  if [ -e "$src/sub/hardlink" ]; then
    for view in "$m" "$d"; do
      [ "$(stat -c %i "$view/hello.txt")" = "$(stat -c %i "$view/sub/hardlink")" ] ||
        fail "$name: $view shows the hard link as two inodes"
    done
  fi
  umount "$m" "$d"
}

"$MKDAXFS" -q "$WORK/tree.img" "$S"   # the view is the default
check_image "$WORK/tree.img" "$S" tree
# The same tree in the upstream-readable layout.
"$MKDAXFS" -q --erofs --upstream-readable "$WORK/tree-up.img" "$S"
check_image "$WORK/tree-up.img" "$S" tree-upstream-readable

# A system tree (thousands of headers, symlinks, hard links).
"$MKDAXFS" -q --erofs "$WORK/inc.img" /usr/include
check_image "$WORK/inc.img" /usr/include usr-include

# What the kernel shows after a large file's EOF (a mapping of its last
# page shows the rest of its last block to anyone who may read the file):
# EROFS inodes placed there hold only what every user may see, never a
# 0600 file's contents or names in a directory others cannot search.
P=$WORK/private
mkdir -p "$P/closed"
head -c $((3 * 4096 + 100)) /dev/urandom > "$P/big"
for i in 1 2 3; do echo "public file $i" > "$P/public-$i"; done
echo "TOPSECRET-contents" > "$P/secret"; chmod 600 "$P/secret"
echo "TOPSECRET-behind-a-closed-directory" > "$P/closed/file"; chmod 700 "$P/closed"
"$MKDAXFS" -q --erofs "$WORK/private.img" "$P"
mkdir -p "$WORK/erofs-private"
mount -t erofs -o ro,loop "$WORK/private.img" "$WORK/erofs-private"
MOUNTS=("$WORK/erofs-private" "${MOUNTS[@]}")
tail_bytes=$(/usr/bin/python3 - "$WORK/erofs-private/big" <<'PY'
import ctypes, os, sys
libc = ctypes.CDLL(None, use_errno=True)
libc.mmap.restype = ctypes.c_void_p
libc.mmap.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int, ctypes.c_int, ctypes.c_int, ctypes.c_long]
fd = os.open(sys.argv[1], os.O_RDONLY)
size = os.fstat(fd).st_size
length = (size + 4095) // 4096 * 4096
addr = libc.mmap(None, length, 1, 1, fd, 0)  # PROT_READ, MAP_SHARED
tail = ctypes.string_at(addr + size, length - size)
sys.stdout.write(tail.hex())
PY
)
tail_text=$(echo "$tail_bytes" | xxd -r -p | tr -c '[:print:]' '.')
[[ $tail_text != *TOPSECRET* ]] || fail "a private file's bytes show after the EOF of a world-readable file in the EROFS view"
[[ $tail_text == *"public file"* ]] || echo "note: no EROFS inode was placed after big's EOF (the check above proved nothing)"
umount "$WORK/erofs-private"

# Flipped bytes in the EROFS metadata: in the root inode (block 0), in the
# EROFS superblock, and in the last block (inodes and directory blocks):
# daxfs check reports each; daxfs readers keep working.
blocks=$(od -An -tu4 -j $((1024 + 36)) -N4 "$WORK/tree.img")
for at in $((2048 + 56)) $((1024 + 36)) $(( (blocks - 1) * 4096 + 100 )); do
  cp "$WORK/tree.img" "$WORK/flipped.img"
  printf '\xa5' | dd of="$WORK/flipped.img" bs=1 seek="$at" conv=notrunc status=none
  cmp -s "$WORK/tree.img" "$WORK/flipped.img" && continue  # (the byte was 0xa5 already)
  if "$DAXFS" check -q "$WORK/flipped.img" >/dev/null 2>&1; then fail "daxfs check missed a flipped byte at $at"; fi
  "$DAXFS" cat "$WORK/flipped.img" /sub/random.bin | cmp - "$S/sub/random.bin" || fail "daxfs cat after a flip at $at"
done
echo PASS
