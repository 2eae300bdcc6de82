#!/usr/bin/env bash
# One read-only image in host memory, mounted in 3 kernels (issue: many
# kernels, one region): the host builds an image of IMAGE_MIB MiB into a
# tmpfs file that is the ivshmem BAR of 3 guests; each guest mounts it with
# daxfs-mount (in its own kernel) and tars the whole tree into a pipe. Each
# guest's file checksums equal the source's, and the host's memory for the
# image and its 3 readers stays at most 1.1x the image: the image's own
# pages (the tmpfs file) plus what the 3 VMs' memory grew by while they
# read (their RAM, each in a tmpfs file of its own: the pages the guests
# touched; qemu's own memory, TCG's translated code, is emulation overhead
# a KVM guest does not have, and is reported apart).
# A page-cache copy per guest would be 4x.
# Usage: shared_image.sh [BUILD_DIR]; exit 0 PASS, 1 FAIL, 77 SKIP.
# DAXFS_MK_MOUNT_OPTS: the guests' daxfs-mount -o options.
set -euo pipefail
source "$(dirname "$0")/vm.bash" "${1:-}"
export LC_ALL=C
SIZE=64M
WORDS=$(( (64 << 20) - 4096 ))
mk_prepare
mk_initramfs_with_ctl
ctl() { "$MK_CTL_HOST" "$@"; }

src=$WORK/tree
mkdir -p "$src/data" "$src/etc/conf.d"
for i in $(seq 1 10); do head -c $((4 << 20)) /dev/urandom > "$src/data/blob$i"; done
for i in $(seq 1 200); do echo "setting $i" > "$src/etc/conf.d/f$i"; done
seq 1 100000 > "$src/etc/numbers"
ln -s data/blob1 "$src/link"
"$BUILD/mkdaxfs" -q "$WORK/image" "$src"
image=$(stat -c %s "$WORK/image")
shm=$(mk_shm_file image $SIZE)
dd if="$WORK/image" of="$shm" conv=notrunc status=none
manifest() { (cd "$1" && find . | sort && find . -type f | sort | xargs sha256sum) | sha256sum | cut -d' ' -f1; }
want=$(manifest "$src")

# Host memory of the experiment, in KiB: the image file's pages plus the
# guests' RAM pages; and qemu's own (anonymous) memory.
memory() {
  local kib g
  kib=$(du -k "$shm" | cut -f1)
  for g in t1 t2 t3; do kib=$((kib + $(mk_ram_kib $g))); done
  echo "$kib"
}
qemu_own() {
  local kib=0 g
  for g in t1 t2 t3; do kib=$((kib + $(awk '/^RssAnon:/ {print $2}' "/proc/${MK_PID[$g]}/status"))); done
  echo "$kib"
}
MK_RAM_FILES=1

# DAXFS_MK_MOUNT_OPTS: the guests' mount options (cache=kernel, a page
# cache copy per kernel, shows that the test fails then).
for g in t1 t2 t3; do mk_boot $g "$shm" $SIZE image_tar words=$WORDS opts="${DAXFS_MK_MOUNT_OPTS:-}"; done
[ "$(ctl wait "$shm" $WORDS 3 300)" = OK ] || { for g in t1 t2 t3; do mk_tail $g; done; fail "the guests did not all mount the image"; }
sleep 1
before=$(memory) qemu_before=$(qemu_own)
ctl add "$shm" $((WORDS + 8)) 1 >/dev/null
[ "$(ctl wait "$shm" $((WORDS + 16)) 3 300)" = OK ] || { for g in t1 t2 t3; do mk_tail $g; done; fail "the guests did not all finish tar"; }
after=$(memory) qemu_after=$(qemu_own)
ctl add "$shm" $((WORDS + 24)) 1 >/dev/null
for g in t1 t2 t3; do
  mk_wait $g 120 || fail "guest $g failed"
  [ "$(mk_result $g manifest)" = "$want" ] || fail "$g: the files through its mount differ from the source"
  [ "$(mk_result $g tar)" -gt "$image" ] || fail "$g: tar wrote only $(mk_result $g tar) bytes"
done
growth=$((after - before))
total=$(( (image >> 10) + growth ))
ratio=$(echo "scale=3; $total / ($image / 1024)" | bc)
echo "3 guests tarred the $((image >> 20)) MiB image through their own mounts in $(mk_result t1 seconds)," \
     "$(mk_result t2 seconds) and $(mk_result t3 seconds) s; host memory for the image and its readers:" \
     "$((image >> 10)) KiB image + $growth KiB the guests' RAM grew by = ${ratio}x the image" \
     "(qemu's own memory, TCG's translated code, grew by $((qemu_after - qemu_before)) KiB)"
[ "$(echo "$ratio <= 1.1" | bc)" = 1 ] || fail "host memory is ${ratio}x the image (want <= 1.1x)"
echo PASS
