#!/usr/bin/env bash
# The EROFS view of an object-store image is the composefs arrangement with
# no daxfs process at all: the kernel EROFS driver mounts the metadata image
# (files are holes carrying trusted.overlay.metacopy and .redirect), and
# OverlayFS reads each file's data from the object directory:
#   mount -t erofs -o ro,loop META.img META
#   mount -t overlay -o ro,metacopy=on,redirect_dir=follow,lowerdir=META::OBJDIR
# The result equals the source tree (the tree's own trusted.overlay.*
# xattrs are stored escaped and shown as they are); a Debian root
# filesystem built this way runs its programs and `dpkg --verify` says what
# it says on the host; daxfs check catches a flipped byte in the view.
source "$(dirname "$0")/lib.bash" "${1:-}"
grep -qw erofs /proc/filesystems || modprobe erofs 2>/dev/null || true
grep -qw erofs /proc/filesystems || skip "this kernel has no EROFS"
grep -qw overlay /proc/filesystems || modprobe overlay 2>/dev/null || skip "no overlayfs"
command -v setfattr >/dev/null || skip "no setfattr"

# mount_stack IMAGE OBJDIR NAME [upper]: the kernel-only stack; sets $ov.
mount_stack() {
  local img=$1 objs=$2 name=$3 upper=${4:-}
  local meta=$WORK/meta-$name
  ov=$WORK/ov-$name
  mkdir -p "$meta" "$ov"
  remember_mount "$meta"
  mount -t erofs -o ro,loop "$img" "$meta" || fail "$name: mount -t erofs"
  MOUNTS=("$meta" "${MOUNTS[@]}")
  # With an upper layer metacopy needs redirect_dir=on (copy-ups write redirects).
  local opts="metacopy=on,lowerdir=$meta::$objs"
  if [ -n "$upper" ]; then
    mkdir -p "$WORK/upper-$name" "$WORK/work-$name"
    opts="$opts,redirect_dir=on,upperdir=$WORK/upper-$name,workdir=$WORK/work-$name"
  else
    opts="ro,redirect_dir=follow,$opts"
  fi
  remember_mount "$ov"
  mount -t overlay overlay -o "$opts" "$ov" || skip "this kernel cannot mount a data-only lower layer"
  MOUNTS=("$ov" "${MOUNTS[@]}")
}

# 1. Every file type, hard links, xattrs (trusted.overlay.opaque included).
make_tree "$WORK/src"
"$MKDAXFS" -q --objects "$WORK/objs" "$WORK/img" "$WORK/src"
"$DAXFS" info "$WORK/img" | grep -q "EROFS view: *yes" || fail "object-store image without an EROFS view by default"
if command -v fsck.erofs >/dev/null; then
  fsck.erofs "$WORK/img" > "$WORK/fsck.log" 2>&1 || { cat "$WORK/fsck.log" >&2; fail "fsck.erofs"; }
fi
"$DAXFS" check -q "$WORK/img" || fail "daxfs check"
if command -v dump.erofs >/dev/null; then
  [ "$(dump.erofs -s "$WORK/img" | sed -n 's/^Filesystem inode count: *//p')" = \
    "$("$DAXFS" info "$WORK/img" | sed -n 's/^inodes: *//p')" ] || fail "dump.erofs counts other inodes"
fi
mount_stack "$WORK/img" "$WORK/objs" tree
[ "$(describe_tree "$WORK/src" | overlay_view_xattrs)" = "$(describe_tree "$ov" | overlay_view_xattrs)" ] || {
  diff <(describe_tree "$WORK/src" | overlay_view_xattrs) <(describe_tree "$ov" | overlay_view_xattrs) |
    head -20 >&2; fail "metadata differs"; }
diff -r --no-dereference "$WORK/src" "$ov" 2>&1 |
  grep -v '^File .* is a \(fifo\|character special file\|block special file\)' | grep . && fail "contents differ"
# Hard links stay one inode.
[ "$(stat -c %i "$ov/hello.txt")" = "$(stat -c %i "$ov/sub/hardlink")" ] || fail "hard link lost"

# 2. A flipped byte in a redirect is caught, and readers do not crash.
obj=$("$DAXFS" stat "$WORK/img" /sub/random.bin | sed -n 's/^  data: object //p')
hex=$(basename "$obj")
at=$(grep -abo -- "$hex" "$WORK/img" | head -1 | cut -d: -f1)
[ -n "$at" ] || fail "redirect of /sub/random.bin not found in the image"
cp "$WORK/img" "$WORK/bad.img"
printf 'Z' | dd of="$WORK/bad.img" bs=1 seek="$at" conv=notrunc status=none
"$DAXFS" check -q "$WORK/bad.img" > "$WORK/check.log" 2>&1 && fail "daxfs check missed a flipped redirect"
grep -q "random.bin" "$WORK/check.log" || fail "daxfs check does not name the file: $(cat "$WORK/check.log")"
"$DAXFS" ls "$WORK/bad.img" / > /dev/null || fail "daxfs ls of the flipped image"

# 3. A Debian root filesystem: the packages of a shell, coreutils and dpkg
# (and their libraries), with dpkg's database.
# dpkg knows a library by the path its package ships (/lib/... with a merged
# /usr), which may not be the path the loader found.
owner() { { dpkg -S "$1" || dpkg -S "$(realpath "$1")"; } 2>/dev/null | head -1 | cut -d: -f1; }
pkgs="base-files bash coreutils dpkg libc6"
for prog in /usr/bin/dpkg /usr/bin/bash /usr/bin/ls; do
  for lib in $(ldd "$prog" | grep -o '/[^ ]*'); do pkgs="$pkgs $(owner "$lib")"; done
done
pkgs=$(printf '%s\n' $pkgs | sort -u | tr '\n' ' ')
root=$WORK/rootfs
mkdir -p "$root/usr"
for d in bin lib lib64 sbin; do  # merged /usr: the same links as the host's
  if [ -L "/$d" ]; then ln -s "$(readlink "/$d")" "$root/$d"; mkdir -p "$root/$(readlink "/$d")"; fi
done
for p in $pkgs; do
  dpkg -L "$p" | while IFS= read -r f; do
    [ -e "$f" ] || [ -L "$f" ] || continue
    [ -L "$root$f" ] && continue  # a merged-/usr link made above
    if [ -d "$f" ] && [ ! -L "$f" ]; then mkdir -p "$root$f"; else mkdir -p "$root$(dirname "$f")"; cp -a "$f" "$root$f"; fi
  done
done
mkdir -p "$root/var/lib" "$root/etc" "$root/tmp"
cp -a /var/lib/dpkg "$root/var/lib/"
cp -a /etc/passwd /etc/group "$root/etc/"
"$MKDAXFS" -q --objects "$WORK/objs" "$WORK/rootfs.img" "$root"
"$DAXFS" check -q "$WORK/rootfs.img" || fail "daxfs check of the root filesystem"
mount_stack "$WORK/rootfs.img" "$WORK/objs" rootfs upper
# shellcheck disable=SC2086
want=$(dpkg --verify $pkgs 2>&1 || true)
# shellcheck disable=SC2086
got=$(chroot "$ov" /usr/bin/dpkg --verify $pkgs 2>&1) || fail "dpkg --verify in the container failed: $got"
[ "$got" = "$want" ] || fail "dpkg --verify differs from the host's: $got"
# ...and it does look at the contents: a file changed in the container is reported.
victim=/$(head -1 /var/lib/dpkg/info/dpkg.md5sums | awk '{print $2}')
chroot "$ov" /usr/bin/bash -c "echo changed >> '$victim'"
chroot "$ov" /usr/bin/dpkg --verify dpkg 2>&1 | grep -q "5.* $victim\$" || fail "dpkg --verify did not see $victim change"
out=$(chroot "$ov" /usr/bin/bash -c 'echo written > /tmp/new; ls /usr/bin | wc -l; cat /etc/debian_version')
[ "$(printf '%s\n' "$out" | tail -1)" = "$(cat /etc/debian_version)" ] || fail "programs in the container: $out"
[ "$(cat "$WORK/upper-rootfs/tmp/new")" = written ] || fail "a write did not land in the upper layer"
echo "PASS ($(wc -w <<<"$pkgs") packages verified)"
