#!/usr/bin/env bash
# Multikernel smoke test: two Linux guests (two kernels) share one host
# tmpfs file as their ivshmem BAR.
#  1. atomics: each guest adds 1 to one shared 8-byte word COUNT times with
#     a locked add; the host then finds exactly 2*COUNT in the file.
#  2. an image: the host builds a daxfs image, copies it into the shared
#     file, and each guest reads it through resource:BAR+SIZE with the
#     daxfs CLI, cat into a pipe and a FUSE mount; every checksum equals
#     the host's.
# Usage: smoke.sh [BUILD_DIR]   exit 0 PASS, 1 FAIL, 77 SKIP (no qemu/kernel)
# DAXFS_MK_COUNT: increments per guest (200000).
set -euo pipefail
source "$(dirname "$0")/vm.bash" "${1:-}"
export LC_ALL=C
COUNT=${DAXFS_MK_COUNT:-200000}
SIZE=64M

mk_prepare
mk_static_cc "$MK_DIR/atomic_inc.c" "$WORK/atomic_inc"
mk_initramfs "$WORK/initrd.cpio" "$WORK/atomic_inc"
echo "kernel $(cat "$MK_CACHE/package" 2>/dev/null || echo "$MK_KERNEL") ($(basename "$MK_KERNEL")), initramfs $(( $(stat -c %s "$MK_INITRD") >> 20 )) MiB"

# --- 1. atomic increments from two kernels ---------------------------------
shm=$(mk_shm_file counter $SIZE)
mk_boot a1 "$shm" $SIZE atomic_inc guests=2 count="$COUNT"
mk_boot a2 "$shm" $SIZE atomic_inc guests=2 count="$COUNT"
mk_wait a1 120 || fail "guest a1 failed"
s1=$MK_SECONDS
mk_wait a2 120 || fail "guest a2 failed"
s2=$MK_SECONDS
total=$(od -An -t u8 -j 64 -N 8 "$shm" | tr -d ' ')
# Did the two kernels add at the same time (their ranges of values overlap)?
if [ "$(mk_result a1 first)" -lt "$(mk_result a2 last)" ] && [ "$(mk_result a2 first)" -lt "$(mk_result a1 last)" ]
then raced="the guests' increments interleaved"; else raced="the guests did NOT overlap"; fi
echo "atomic: 2 guests x $COUNT locked increments = $total; $raced" \
     "(a1 added from $(mk_result a1 first) to $(mk_result a1 last), a2 from $(mk_result a2 first) to $(mk_result a2 last);" \
     "the program ran $(mk_result a1 seconds) s and $(mk_result a2 seconds) s; boot to exit $s1 s and $s2 s)"
[ "$total" = $((2 * COUNT)) ] || fail "shared counter is $total, not $((2 * COUNT))"

# --- 2. one daxfs image read by two kernels --------------------------------
src=$WORK/tree
mkdir -p "$src/sub/deeper" "$src/empty" "$src/small"
printf 'hello from the host\n' > "$src/hello.txt"
seq 1 100000 > "$src/sub/deeper/numbers.txt"
head -c 3000000 /dev/urandom > "$src/sub/random.bin"
for i in $(seq 20); do echo "small file $i" > "$src/small/f$i"; done
ln -s hello.txt "$src/link"
"$BUILD/mkdaxfs" -q "$WORK/tree.img" "$src"
shm=$(mk_shm_file image $SIZE)
dd if="$WORK/tree.img" of="$shm" conv=notrunc status=none

# The same manifest as guest/image_read.sh: names, then contents.
manifest() { (cd "$1" && find . | sort && find . -type f | sort | xargs sha256sum) | sha256sum | cut -d' ' -f1; }
want=$(manifest "$src")
want_cat=$(sha256sum < "$src/sub/random.bin" | cut -d' ' -f1)

mk_boot r1 "$shm" $SIZE image_read file=/sub/random.bin
mk_boot r2 "$shm" $SIZE image_read file=/sub/random.bin
for g in r1 r2; do
  mk_wait $g 120 || fail "guest $g failed"
  [ "$(mk_result $g cli)" = "$want" ] || fail "$g: daxfs extract of the BAR differs from the source"
  [ "$(mk_result $g cat)" = "$want_cat" ] || fail "$g: daxfs cat of the BAR differs from the source"
  # The BAR is a PFN mapping the kernel cannot pin: daxfs cat into a pipe
  # (no vmsplice then) and the mount's replies (copied before the write to
  # /dev/fuse) must not hand it to the kernel.
  [ "$(mk_result $g catpipe)" = "$want_cat" ] ||
    fail "$g: daxfs cat of the BAR into a pipe differs: $(mk_console $g | sed -n 's/^MK-INFO catpipe: //p' | head -n 1)"
  [ "$(mk_result $g fuse)" = "$want" ] ||
    fail "$g: the tree through daxfs-mount of the BAR differs: $(mk_console $g | sed -n 's/^MK-INFO fuse: //p' | head -n 1)"
  echo "image: $g read the $(( $(stat -c %s "$WORK/tree.img") >> 10 )) KiB image at" \
       "$(mk_console $g | sed -n 's/^MK-INFO region=//p'): check, extract, cat, cat into a pipe and the mount match" \
       "(boot to exit $MK_SECONDS s)"
done
echo PASS
