# Guest side of mounts.sh: daxfs-mount of the shared branch region in this
# kernel. Words of the BAR past the region (MK_WORDS, a byte offset) are the
# barriers with the other guests and the host (mk_ctl add/wait).
#   MK_ROLE=sibling  mounts as fstype=branchfs (first-wins siblings), makes a
#                    child of main by the CREATE ioctl, writes MK_NAME-1..4
#                    into it, waits for the other sibling (word 0), commits
#                    by ioctl: one sibling wins, the other gets ESTALE and
#                    aborts; then (word 1) lists main through its mount.
#   MK_ROLE=pause    mounts branch MK_BRANCH writable, writes f0 (the mount
#                    now holds its writer lease), says so (word 2 = 1) and
#                    waits for word 2 = 2: meanwhile the host stops this
#                    whole VM, takes the lease over and resumes it. Then a
#                    write must fail (the mount was fenced).
set -u
w0=$MK_WORDS w1=$((MK_WORDS + 8)) w2=$((MK_WORDS + 16))
mkdir -p /mnt/b
if [ "$MK_ROLE" = sibling ]; then
  daxfs-mount -o fstype=branchfs "$REGION" /mnt/b || exit 1
  name=$(mk_ctl create /mnt/b)
  case $name in b*) ;; *) echo "MK-INFO create failed: $name"; exit 1 ;; esac
  echo "MK-INFO branch $name"
  for k in 1 2 3 4; do echo "$MK_NAME file $k" > "/mnt/b/@$name/$MK_NAME-$k" || exit 1; done
  mk_ctl add "$REGION_DEV" "$w0" 1 >/dev/null
  [ "$(mk_ctl wait "$REGION_DEV" "$w0" 2 300)" = OK ] || { echo "MK-INFO no other sibling"; exit 1; }
  r=$(mk_ctl commit "/mnt/b/@$name")
  echo "MK-RESULT commit=$r"
  [ "$r" = OK ] || echo "MK-RESULT abort=$(mk_ctl abort "/mnt/b/@$name")"
  mk_ctl add "$REGION_DEV" "$w1" 1 >/dev/null
  [ "$(mk_ctl wait "$REGION_DEV" "$w1" 2 300)" = OK ] || { echo "MK-INFO the other sibling did not finish"; exit 1; }
  # Main through this kernel's mount, after the other kernel's commit.
  echo "MK-RESULT main=$(ls /mnt/b | grep -- '-[0-9]$' | sort | tr '\n' ' ')"
  echo "MK-RESULT branches=$(cd /mnt/b && ls -d @* 2>/dev/null | tr '\n' ' ')"
else
  daxfs-mount -o "branch=$MK_BRANCH" "$REGION" /mnt/b || exit 1
  echo one > /mnt/b/f0 || exit 1
  mk_ctl add "$REGION_DEV" "$w2" 1 >/dev/null
  [ "$(mk_ctl wait "$REGION_DEV" "$w2" 2 300)" = OK ] || { echo "MK-INFO never resumed"; exit 1; }
  if { echo late > /mnt/b/late; } 2>/tmp/err; then echo "MK-RESULT late=written"
  else echo "MK-RESULT late=failed: $(tr "\n" " " < /tmp/err)"; fi
  echo "MK-RESULT f0=$(cat /mnt/b/f0 2>&1)"
fi
umount /mnt/b
