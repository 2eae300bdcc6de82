# POSIX operations inside a writable branch (-o branch=NAME at the root and
# /@NAME/ in a main mount) give the same tree as on tmpfs, before and after
# the commit into main.
source "$(dirname "$0")/lib.bash" "$1"
[ -x /usr/bin/python3 ] || skip "no /usr/bin/python3"
make_branch_region "$WORK/region"
"$DAXFS" branch create "$WORK/region" work >/dev/null

# Same operations in $1 (a copy of main's tree, or the branch).
ops() {
  local d=$1
  cd "$d"
  printf 'new\n' > created.txt
  printf 'more\n' >> hello.txt                      # O_APPEND on a base file
  printf 'x' | dd of=sparse bs=1 seek=1000000 status=none   # sparse write
  truncate -s 100 dir/numbers.txt                  # truncate down
  truncate -s 9000 created.txt                     # truncate up (zeros)
  mkdir -p newdir/a/b && mv newdir/a newdir/moved  # directory rename
  mv shared.txt newdir/moved/shared.txt            # file rename across dirs
  ln created.txt hardlink
  ln -s ../hello.txt newdir/link
  chmod 0600 created.txt && chmod 2755 newdir
  chown 123:456 hello.txt
  setfattr -n user.k -v value created.txt
  setfattr -n user.gone -v 1 created.txt && setfattr -x user.gone created.txt
  mkfifo fifo
  rm f3 && rmdir dir/sub
  printf 'A' > a && printf 'B' > b && mv -f a b    # rename over a file
  python3 -c '
import mmap, os
fd = os.open("mapped", os.O_RDWR | os.O_CREAT, 0o644)
os.ftruncate(fd, 8192)
m = mmap.mmap(fd, 8192, mmap.MAP_SHARED, mmap.PROT_READ | mmap.PROT_WRITE)
m[100:105] = b"hello"; m[5000:5003] = b"xyz"
m.flush(); m.close(); os.fsync(fd); os.close(fd)'
  cd - >/dev/null
}

describe() {
  (cd "$1" && find . -path ./.branchfs_ctl -prune -o -printf '%p|%y|%m|%U|%G|%n|%l\n' | sort
   find . ! -type d ! -name .branchfs_ctl -printf '%p|%s\n' | sort
   find . -type f ! -name .branchfs_ctl -exec md5sum {} + | sort -k2
   getfattr -R -h -d -m user. --absolute-names . 2>/dev/null | grep -v '^$' | sort)
}

mkdir "$WORK/tmpfs"
mount -t tmpfs -o mode=0755 tmpfs "$WORK/tmpfs"
MOUNTS=("$WORK/tmpfs" "${MOUNTS[@]}")
cp -a "$WORK/base/." "$WORK/tmpfs/"
ops "$WORK/tmpfs"
describe "$WORK/tmpfs" > "$WORK/want"

# One branch writable at the root.
mount_image "$WORK/region" "$WORK/b" -o branch=work
ops "$WORK/b"
describe "$WORK/b" > "$WORK/got"
diff -u "$WORK/want" "$WORK/got" || fail "-o branch=work differs from tmpfs"
# Times move as on tmpfs: a write updates mtime and ctime.
before=$(stat -c %Y "$WORK/b/created.txt"); sleep 1.1
printf 'z' >> "$WORK/b/created.txt"
[ "$(stat -c %Y "$WORK/b/created.txt")" -gt "$before" ] || fail "write did not move mtime"
printf 'z' >> "$WORK/tmpfs/created.txt"
describe "$WORK/tmpfs" > "$WORK/want"
umount "$WORK/b"

# Main mount: the commit makes main equal to what the branch had.
mount_image "$WORK/region" "$WORK/m"
describe "$WORK/m/@work" > "$WORK/got"
diff -u "$WORK/want" "$WORK/got" || fail "/@work differs from tmpfs"
echo commit > "$WORK/m/@work/.branchfs_ctl"
describe "$WORK/m" > "$WORK/got"
diff -u "$WORK/want" "$WORK/got" || fail "main after the commit differs from tmpfs"

# -o branch=B with B a child of A: B is the root, and is not shown again
# as /@A/@B (the root directory a second time: the kernel refuses the loop).
"$DAXFS" branch create "$WORK/region" outer -q
"$DAXFS" branch create "$WORK/region" inner --parent outer -q
mount_image "$WORK/region" "$WORK/inner" -o branch=inner
[ -d "$WORK/inner/@outer" ] || fail "-o branch=inner: /@outer is not shown"
[ ! -e "$WORK/inner/@outer/@inner" ] || fail "-o branch=inner: the root is shown again as /@outer/@inner"
echo "PASS"
