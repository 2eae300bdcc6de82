#!/usr/bin/env bash
# A container-style root filesystem: daxfs as the OverlayFS lower layer with
# a writable upper layer; programs run from it in a chroot; the image stays
# untouched.
source "$(dirname "$0")/lib.bash" "${1:-}"
root=$WORK/rootfs
mkdir -p "$root"/{bin,etc,tmp,usr}
for prog in /bin/sh /bin/ls /bin/cat /bin/rm /usr/bin/env; do
  cp -L "$prog" "$root/bin/"
  for lib in $(ldd "$prog" | grep -o '/[^ ]*'); do
    mkdir -p "$root$(dirname "$lib")"
    cp -L "$lib" "$root$lib"
  done
done
cp /etc/os-release "$root/etc/"
printf 'from the image\n' > "$root/etc/motd"
"$MKDAXFS" -q "$WORK/img" "$root"
before=$(md5sum < "$WORK/img")
mount_image "$WORK/img" "$WORK/lower"
mkdir -p "$WORK/upper" "$WORK/work" "$WORK/merged"
mount -t overlay overlay -o "lowerdir=$WORK/lower,upperdir=$WORK/upper,workdir=$WORK/work" "$WORK/merged"
MOUNTS=("$WORK/merged" "${MOUNTS[@]}")
out=$(chroot "$WORK/merged" /bin/sh -c 'cat /etc/motd; echo changed > /etc/motd; echo new > /tmp/new; rm /etc/os-release; ls /etc')
[ "$(printf '%s\n' "$out" | head -1)" = "from the image" ] || fail "could not read the lower layer in the chroot: $out"
[ "$(cat "$WORK/merged/etc/motd")" = changed ] || fail "copy-up did not happen"
[ -e "$WORK/merged/etc/os-release" ] && fail "deleted file still visible"
[ "$(cat "$WORK/upper/tmp/new")" = new ] || fail "new file not in the upper layer"
[ "$(cat "$WORK/lower/etc/motd")" = "from the image" ] || fail "lower layer changed"
[ -e "$WORK/lower/etc/os-release" ] || fail "lower layer lost a file"
umount "$WORK/merged"
[ "$(md5sum < "$WORK/img")" = "$before" ] || fail "image file changed"
echo PASS
