#!/usr/bin/env bash
# The EROFS view with DAX, in 3 kernels: an image (mkdaxfs --erofs) in a
# host tmpfs file is each guest's virtio-pmem device, and each guest mounts
# it with the kernel's own EROFS driver, no daxfs code in the guest: two
# with -o dax=always, one without (the control). Every guest's tree equals
# the source. With DAX a guest's page cache and RAM do not grow while it
# reads every file, and a mapped page of a file is the device's own memory
# (its physical address lies in the pmem region): one physical copy, the
# host's file, for every kernel. Without DAX the page cache grows by the
# data read (so the measurement can tell a copy). The image stays as built.
# Usage: erofs_dax.sh [BUILD_DIR]; exit 0 PASS, 1 FAIL, 77 SKIP.
set -euo pipefail
source "$(dirname "$0")/vm.bash" "${1:-}"
export LC_ALL=C
MK_WANT_PMEM=1
mk_prepare
grep -q '"virtio-pmem-pci"' <<<"$MK_QEMU_DEVICES" || skip "this qemu has no virtio-pmem-pci"
mk_initramfs_with_ctl
ctl() { "$MK_CTL_HOST" "$@"; }

src=$WORK/tree
mkdir -p "$src/data" "$src/etc"
for i in 1 2 3 4 5 6; do head -c $((4 << 20)) /dev/urandom > "$src/data/blob$i"; done
for i in $(seq 1 100); do echo "setting $i" > "$src/etc/f$i"; done
ln -s data/blob1 "$src/link"
"$BUILD/mkdaxfs" -q --erofs "$WORK/image" "$src"
data_kib=$(( $(du -s -B1 --apparent-size "$src/data" | cut -f1) >> 10 ))
# The device: the image, padded to 2 MiB (memory hot-plug granularity).
pmem=$MK_SHM/image
cp "$WORK/image" "$pmem"
truncate -s $(( ($(stat -c %s "$pmem") + (2 << 20) - 1) / (2 << 20) * (2 << 20) )) "$pmem"
sum_before=$(md5sum < "$pmem")
SIZE=1M WORDS=$(( (1 << 20) - 4096 ))
shm=$(mk_shm_file ctl $SIZE)
manifest() { (cd "$1" && find . | sort && find . -type f | sort | xargs sha256sum) | sha256sum | cut -d' ' -f1; }
want=$(manifest "$src")

MK_RAM_FILES=1
modules=$(echo $MK_PMEM_MODULES | tr ' ' ,)
guests="d1 d2 p1"
for g in $guests; do
  dax=1; [ $g = p1 ] && dax=0
  MK_PMEM=$pmem mk_boot $g "$shm" $SIZE erofs_dax words=$WORDS dax=$dax modules="$modules"
done
[ "$(ctl wait "$shm" $WORDS 3 300)" = OK ] || { for g in $guests; do mk_tail $g; done; fail "the guests did not all mount the image"; }
for g in $guests; do
  case $(mk_result $g pmem) in
    yes) [ "$(mk_result $g mounted)" = yes ] || { mk_tail $g; fail "guest $g: mount -t erofs /dev/pmem0 failed"; } ;;
    no*) mk_tail $g; skip "guest $g: $(mk_result $g pmem)" ;;
    *) mk_tail $g; fail "guest $g: $(mk_result $g pmem)" ;;
  esac
done
sleep 1
declare -A ram0 ram1
for g in $guests; do ram0[$g]=$(mk_ram_kib $g); done
ctl add "$shm" $((WORDS + 8)) 1 >/dev/null
[ "$(ctl wait "$shm" $((WORDS + 16)) 3 300)" = OK ] || { for g in $guests; do mk_tail $g; done; fail "the guests did not all read the tree"; }
for g in $guests; do ram1[$g]=$(mk_ram_kib $g); done
ctl add "$shm" $((WORDS + 24)) 1 >/dev/null
for g in $guests; do mk_wait $g 120 || fail "guest $g failed"; done

in_device() {  # GUEST: whether its mapped page lies in its pmem region
  local dev phys start size
  dev=$(mk_result "$1" device) phys=$(mk_result "$1" phys)
  start=${dev%+*} size=${dev#*+}
  [[ $start == 0x* && $phys == 0x* ]] || return 1
  (( phys >= start && phys < start + size ))
}
for g in $guests; do
  [ "$(mk_result $g manifest)" = "$want" ] || fail "$g: the tree through kernel EROFS differs from the source"
  echo "$g: mount options $(mk_result $g options); page cache +$(mk_result $g cached_kib) KiB," \
       "guest RAM +$(( ram1[$g] - ram0[$g] )) KiB while reading $data_kib KiB of file data;" \
       "a mapped page at $(mk_result $g phys) (pmem region $(mk_result $g device))"
done
for g in d1 d2; do
  [[ $(mk_result $g options) == *dax=always* ]] || fail "$g: the kernel turned DAX off: $(mk_result $g options)"
  [ "$(mk_result $g cached_kib)" -le $((data_kib / 10)) ] || fail "$g: the page cache grew with DAX"
  [ $(( ram1[$g] - ram0[$g] )) -le $((data_kib / 10 + 8192)) ] || fail "$g: guest RAM grew with DAX"
  in_device $g || fail "$g: a mapped page of a DAX file is not the device's memory"
done
[ "$(mk_result p1 cached_kib)" -ge $((data_kib / 2)) ] ||
  fail "the control guest's page cache did not grow without DAX: the measurement is broken"
in_device p1 && fail "the control guest (no DAX) maps the device's memory: the check is broken"
[ "$(md5sum < "$pmem")" = "$sum_before" ] || fail "the image changed"
echo PASS
