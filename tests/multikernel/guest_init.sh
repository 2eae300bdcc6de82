#!/bin/busybox sh
# /init of a multikernel test guest (PID 1 inside the initramfs that
# vm.bash's mk_initramfs builds; busybox ash, not bash).
#
# 1. mounts proc, sys, devtmpfs and a tmpfs /tmp, loads fuse.ko;
# 2. exports every kernel parameter mk.KEY=VALUE as MK_KEY=VALUE
#    (mk.name=g1 -> MK_NAME=g1, mk.count=5 -> MK_COUNT=5);
# 3. finds the ivshmem device's shared-memory BAR (PCI vendor 0x1af4,
#    device 0x1110, BAR 2) and exports
#      REGION_DEV  its sysfs resource file,
#      SHM_SIZE    its size in bytes,
#      REGION      the daxfs region descriptor: resource:$REGION_DEV+$SHM_SIZE;
# 4. runs /tests/$MK_SCRIPT.sh, then prints "MK-EXIT rc=N" and powers off.
# Lines the host reads start with "MK-": MK-START, MK-INFO, MK-RESULT, MK-EXIT.

/bin/busybox --install -s /bin
export PATH=/bin HOME=/tmp LC_ALL=C
mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev
mount -t tmpfs tmpfs /tmp
exec </dev/console >/dev/console 2>&1
dmesg -n 1  # no kernel chatter between the test's lines on the console

for word in $(cat /proc/cmdline); do
  case $word in
    mk.*=*)
      key=${word%%=*}
      key=$(echo "${key#mk.}" | tr 'a-z.-' 'A-Z__')
      export "MK_$key=${word#*=}"
      ;;
  esac
done
echo "MK-START name=$MK_NAME uptime=$(cut -d' ' -f1 /proc/uptime)"

for dev in /sys/bus/pci/devices/*; do
  if [ "$(cat "$dev/vendor")" = 0x1af4 ] && [ "$(cat "$dev/device")" = 0x1110 ]; then
    REGION_DEV=$dev/resource2
    SHM_SIZE=$(stat -c %s "$REGION_DEV")
    REGION="resource:$REGION_DEV+$SHM_SIZE"
    export REGION_DEV SHM_SIZE REGION
    break
  fi
done
[ -n "$REGION_DEV" ] || echo "MK-INFO no ivshmem device"

if insmod /lib/modules/fuse.ko 2>/tmp/insmod.err && [ -c /dev/fuse ]; then
  echo "MK-INFO fuse=yes"
else
  echo "MK-INFO fuse=no ($(cat /tmp/insmod.err))"
fi

script=/tests/$MK_SCRIPT.sh
if [ -f "$script" ]; then
  sh "$script"
  rc=$?
else
  echo "MK-INFO no guest script $script (mk.script=$MK_SCRIPT)"
  rc=127
fi
sync
echo "MK-EXIT rc=$rc uptime=$(cut -d' ' -f1 /proc/uptime)"
poweroff -f
