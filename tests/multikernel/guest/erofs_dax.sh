# Guest side of erofs_dax.sh: loads the virtio-pmem and EROFS modules,
# mounts the image on /dev/pmem0 with the kernel's EROFS driver (with DAX
# when MK_DAX=1), says so (word 0), waits for the host to measure (word 1),
# reads every file and checksums the tree, reports how much its page cache
# grew and where a mapped page of a large file lies, says so (word 2),
# waits for the host's second measurement (word 3) and unmounts.
set -u
manifest() { (cd "$1" && find . | sort && find . -type f | sort | xargs sha256sum) | sha256sum | cut -d' ' -f1; }
cached_kib() { awk '/^Cached:/ {print $2}' /proc/meminfo; }
w0=$MK_WORDS w1=$((MK_WORDS + 8)) w2=$((MK_WORDS + 16)) w3=$((MK_WORDS + 24))
ready() { mk_ctl add "$REGION_DEV" "$w0" 1 >/dev/null; }
# pmem=no... makes the host skip (what this kernel lacks), anything else
# but yes fail (a module that does not load is a broken list or kernel).
for m in $(echo "$MK_MODULES" | tr , ' '); do
  [ -f "/lib/modules/$m.ko" ] || continue  # built in, or not in this kernel (checked below)
  if ! insmod "/lib/modules/$m.ko" 2>/tmp/insmod.err && ! grep -q exists /tmp/insmod.err; then
    echo "MK-RESULT pmem=error: insmod $m: $(cat /tmp/insmod.err)"; ready; exit 1
  fi
done
grep -qw erofs /proc/filesystems || { echo "MK-RESULT pmem=no EROFS in this guest kernel"; ready; exit 0; }
for _ in $(seq 100); do [ -b /dev/pmem0 ] && break; sleep 0.1; done
[ -b /dev/pmem0 ] || { echo "MK-RESULT pmem=no /dev/pmem0 (no virtio-pmem driver in this guest kernel?)"; ready; exit 0; }
echo "MK-RESULT pmem=yes"
mkdir -p /mnt/img
opts=ro
[ "${MK_DAX:-0}" = 1 ] && opts=ro,dax=always
mount -t erofs -o "$opts" /dev/pmem0 /mnt/img || { echo "MK-RESULT mounted=no"; ready; exit 1; }
echo "MK-RESULT mounted=yes"
echo "MK-RESULT options=$(awk '$2 == "/mnt/img" {print $4}' /proc/mounts)"
# Where the device's memory is (guest physical addresses).
region=$(ls -d /sys/bus/nd/devices/region* 2>/dev/null | head -n 1)
echo "MK-RESULT device=$(cat "$region/resource" 2>/dev/null)+$(cat "$region/size" 2>/dev/null)"
ready
[ "$(mk_ctl wait "$REGION_DEV" "$w1" 1 300)" = OK ] || exit 1
before=$(cached_kib)
echo "MK-RESULT manifest=$(manifest /mnt/img)"
echo "MK-RESULT cached_kib=$(( $(cached_kib) - before ))"
echo "MK-RESULT phys=$(mk_ctl phys /mnt/img/data/blob1 $((1 << 20)))"
mk_ctl add "$REGION_DEV" "$w2" 1 >/dev/null
[ "$(mk_ctl wait "$REGION_DEV" "$w3" 1 300)" = OK ] || exit 1
umount /mnt/img
