# Guest side of smoke.sh's second scenario: reads the daxfs image the host
# copied into the shared BAR ($REGION) and prints a checksum per way of
# reading it (a manifest: names, then each file's sha256; see smoke.sh):
#   cli       daxfs check, then daxfs extract of the whole tree
#   cat       daxfs cat of one file (MK_FILE) into a file
#   catpipe   the same into a pipe (daxfs cat vmsplices the mapped pages)
#   fuse      the tree through a daxfs-mount of the region
set -e
manifest() { (cd "$1" && find . | sort && find . -type f | sort | xargs sha256sum) | sha256sum | cut -d' ' -f1; }

echo "MK-INFO region=$REGION"
daxfs check -q "$REGION"
daxfs ls -R "$REGION" | sed 's/^/MK-INFO ls: /'
daxfs extract --no-owners "$REGION" /tmp/tree
echo "MK-RESULT cli=$(manifest /tmp/tree)"
daxfs cat "$REGION" "$MK_FILE" > /tmp/cat.out
echo "MK-RESULT cat=$(sha256sum < /tmp/cat.out | cut -d' ' -f1)"
echo "MK-RESULT catpipe=$(daxfs cat "$REGION" "$MK_FILE" 2>/tmp/cat.err | sha256sum | cut -d' ' -f1)"
[ -s /tmp/cat.err ] && echo "MK-INFO catpipe: $(cat /tmp/cat.err)"
mkdir -p /mnt/daxfs
daxfs-mount "$REGION" /mnt/daxfs
echo "MK-RESULT fuse=$(manifest /mnt/daxfs 2>/tmp/fuse.err)"
[ -s /tmp/fuse.err ] && echo "MK-INFO fuse: $(head -n 1 /tmp/fuse.err) ($(wc -l < /tmp/fuse.err) errors)"
umount /mnt/daxfs
