# Guest side of shared_image.sh: mounts the read-only image in the BAR
# (cache=direct, the default: no page-cache copy in this kernel), says so
# (word 0), waits for the host to measure (word 1), tars the whole tree into
# a pipe and checksums its files, says so (word 2), waits for the host's
# second measurement (word 3) and unmounts.
set -u
manifest() { (cd "$1" && find . | sort && find . -type f | sort | xargs sha256sum) | sha256sum | cut -d' ' -f1; }
w0=$MK_WORDS w1=$((MK_WORDS + 8)) w2=$((MK_WORDS + 16)) w3=$((MK_WORDS + 24))
mkdir -p /mnt/img
daxfs-mount ${MK_OPTS:+-o "$MK_OPTS"} "$REGION" /mnt/img || exit 1
mk_ctl add "$REGION_DEV" "$w0" 1 >/dev/null
[ "$(mk_ctl wait "$REGION_DEV" "$w1" 1 300)" = OK ] || exit 1
start=$(cut -d' ' -f1 /proc/uptime)
echo "MK-RESULT tar=$(tar -cf - -C /mnt/img . | wc -c)"
echo "MK-RESULT seconds=$(awk -v s="$start" '{print $1 - s}' /proc/uptime)"
echo "MK-RESULT manifest=$(manifest /mnt/img)"
mk_ctl add "$REGION_DEV" "$w2" 1 >/dev/null
[ "$(mk_ctl wait "$REGION_DEV" "$w3" 1 300)" = OK ] || exit 1
umount /mnt/img
