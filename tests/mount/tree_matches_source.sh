#!/usr/bin/env bash
# A mounted image shows exactly the source tree: contents, metadata, xattrs,
# devices, hard links; it is read-only; mmap works; statfs answers.
source "$(dirname "$0")/lib.bash" "${1:-}"
make_tree "$WORK/src"
"$MKDAXFS" -q "$WORK/img" "$WORK/src"
for cache in direct kernel auto; do
  mnt=$WORK/mnt-$cache
  mount_image "$WORK/img" "$mnt" -o cache=$cache
  diff -r --no-dereference -x fifo -x null -x loop9 "$WORK/src" "$mnt" || fail "contents differ (cache=$cache)"
  diff <(describe_tree "$WORK/src") <(describe_tree "$mnt") || fail "metadata differs (cache=$cache)"
  [ "$(stat -c %i "$mnt/hello.txt")" = "$(stat -c %i "$mnt/sub/hardlink")" ] || fail "hard link has two inodes"
  [ "$(stat -c %h "$mnt/hello.txt")" = 2 ] || fail "hard link count"
  # Read-only.
  if touch "$mnt/new" 2>/dev/null; then fail "created a file on a read-only mount"; fi
  if sh -c "echo x >> '$mnt/hello.txt'" 2>/dev/null; then fail "appended on a read-only mount"; fi
  # mmap, shared and private, compared with the source.
  python3 - "$WORK/src/sub/random.bin" "$mnt/sub/random.bin" <<'PY'
import mmap, sys
want = open(sys.argv[1], 'rb').read()
with open(sys.argv[2], 'rb') as f:
    for flags in (mmap.MAP_SHARED, mmap.MAP_PRIVATE):
        m = mmap.mmap(f.fileno(), 0, flags=flags, prot=mmap.PROT_READ)
        assert m[:] == want, "mmap contents differ"
        m.close()
PY
  stat -f "$mnt" >/dev/null || fail "statfs"
  # statfs reports FUSE's magic (coreutils names it "fuseblk"), and
  # /proc/mounts the type mount(8) and container tooling match on.
  fstype=$(stat -f -c %T "$mnt")
  [ "$fstype" = fuseblk ] || [ "$fstype" = fuse ] || fail "statfs type is $fstype, not FUSE"
  grep -q " $mnt fuse.daxfs ro," /proc/mounts || fail "/proc/mounts does not list $mnt as fuse.daxfs ro"
  umount "$mnt"
done
echo PASS
