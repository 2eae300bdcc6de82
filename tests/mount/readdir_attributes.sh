#!/usr/bin/env bash
# READDIRPLUS replies in two forms (#13, src/fuse/stat_readers.h): a process
# that only walks names gets attributes for directories only (the kernel then
# builds no inode for the other entries), a process that has looked a file up
# by name gets them for every entry. Whatever the form, what readers see must
# match the source: names (also in directories that take several replies),
# inode numbers from readdir and from stat, and every attribute, whether it
# came from a LOOKUP after a names-only walk or from READDIRPLUS.
source "$(dirname "$0")/lib.bash" "${1:-}"
make_tree "$WORK/src"
# A directory that needs several replies in either form.
mkdir "$WORK/src/many"
for i in $(seq 1 3000); do : > "$WORK/src/many/file-with-a-longish-name-$i"; done
mkdir "$WORK/src/many/subdir"
"$MKDAXFS" -q "$WORK/img" "$WORK/src"

names() { (cd "$1" && find . | sort); }
lookups() { grep -c 'opcode: LOOKUP' "$1" || true; }

# 1. Names first: find asks for no attribute of a file and looks none up.
mnt=$WORK/mnt-names
debug_mount "$WORK/img" "$mnt" "$WORK/names.log"
diff <(names "$WORK/src") <(names "$mnt") || fail "names differ after a names-only walk"
[ "$(lookups "$WORK/names.log")" = 0 ] || fail "a names-only walk made LOOKUPs"
# The files came without attributes: the first stat of one is a LOOKUP.
stat "$mnt/many/file-with-a-longish-name-7" >/dev/null
[ "$(lookups "$WORK/names.log")" = 1 ] ||
  fail "stat after a names-only walk made $(lookups "$WORK/names.log") LOOKUPs (want 1: files come without attributes)"
# Inode numbers agree between readdir (d_ino) and stat, everywhere.
python3 - "$mnt" <<'PY' || fail "readdir and stat disagree on inode numbers"
import os, sys
def walk(d):
    for e in os.scandir(d):
        st = os.stat(e.path, follow_symlinks=False)
        assert e.inode() == st.st_ino, (e.path, e.inode(), st.st_ino)
        if e.is_dir(follow_symlinks=False):
            walk(e.path)
walk(sys.argv[1])
PY
# Every attribute, now from LOOKUPs.
diff <(describe_tree "$WORK/src") <(describe_tree "$mnt") || fail "attributes differ after a names-only walk"
umount "$mnt"
wait "$pid" || fail "debug daemon exited with $?"

# 2. Attributes first, on a fresh mount: after its first directory, the
# reader gets every entry's attributes with the listing.
mnt=$WORK/mnt-attrs
debug_mount "$WORK/img" "$mnt" "$WORK/attrs.log"
diff <(describe_tree "$WORK/src") <(describe_tree "$mnt") || fail "attributes differ (attributes with listings)"
n=$(lookups "$WORK/attrs.log")
[ "$n" -lt 100 ] || fail "a stat-everything walk made $n LOOKUPs for $(names "$WORK/src" | wc -l) entries"
diff <(names "$WORK/src") <(names "$mnt") || fail "names differ (attributes with listings)"
umount "$mnt"
wait "$pid" || fail "debug daemon exited with $?"
echo PASS
