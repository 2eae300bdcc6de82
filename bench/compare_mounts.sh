#!/usr/bin/env bash
# One run, every peer, the same tree: daxfs-mount (cache=direct, auto and
# kernel), squashfuse_ll, kernel EROFS on an image file, kernel
# squashfs (loop), fuse-overlayfs over the tree, and tmpfs itself.
# Workloads (warm: each is run once before timing, best of 3):
#   find, stat of every entry, tar c of the tree, sequential read of large
#   files, fio 4 KiB random reads with 1 and 2 jobs.
# Prints a Markdown table of seconds (fio: IOPS) and ratios vs kernel EROFS.
source "$(dirname "$0")/common.bash"
stage_tree
IMG=$SHM/img; MNT=$SHM/mnt; mkdir -p "$IMG" "$MNT"
"$BUILD/mkdaxfs" -q "$IMG/tree.daxfs" "$SRC"
mkfs.erofs "$IMG/tree.erofs" "$SRC" >/dev/null 2>&1
mksquashfs "$SRC" "$IMG/tree.sqfs" -noI -noD -noF -noX -no-progress -noappend -quiet >/dev/null
cleanup() { for m in "$MNT"/*; do umount "$m" 2>/dev/null || umount -l "$m" 2>/dev/null || true; done; }
trap cleanup EXIT
mkdir -p "$SHM/ovl-upper" "$SHM/ovl-work"
# One peer mounted at a time, caches dropped in between, so that no peer's
# page cache is evicted by another's.
mount_peer() {
  local d=$MNT/$1; mkdir -p "$d"
  case $1 in
    tmpfs) ;;
    daxfs-direct) "$BUILD/daxfs-mount" "$IMG/tree.daxfs" "$d" -o cache=direct ;;
    daxfs-auto) "$BUILD/daxfs-mount" "$IMG/tree.daxfs" "$d" -o cache=auto ;;
    daxfs-kernel) "$BUILD/daxfs-mount" "$IMG/tree.daxfs" "$d" -o cache=kernel ;;
    squashfuse_ll) squashfuse_ll "$IMG/tree.sqfs" "$d" ;;
    erofs) mount -t erofs -o ro "$IMG/tree.erofs" "$d" ;;
    squashfs) mount -t squashfs -o ro,loop "$IMG/tree.sqfs" "$d" ;;
    fuse-overlayfs) fuse-overlayfs -o "lowerdir=$SRC,upperdir=$SHM/ovl-upper,workdir=$SHM/ovl-work" "$d" ;;
  esac
}
peers=(tmpfs erofs squashfs daxfs-direct daxfs-auto daxfs-kernel squashfuse_ll fuse-overlayfs)
dir_of() { [ "$1" = tmpfs ] && echo "$SRC" || echo "$MNT/$1"; }
mapfile -t big_files < <(cd "$SRC" && find . -type f -size +1M | sort | head -200)

w_find() { find "$1" >/dev/null; }
w_stat() { find "$1" -printf '%s %m %U %T@\n' >/dev/null; }
w_tar() { tar cf - -C "$1" . | cat >/dev/null; }
w_seq() { (cd "$1" && cat "${big_files[@]}" >/dev/null); }
fio_iops() {
  # --invalidate=0: measure warm caches like the other workloads (fio drops
  # the file's page cache before the run by default).
  fio --name=r --filename="$1/big/blob.bin" --readonly --invalidate=0 --rw=randread --bs=4k --ioengine=psync \
      --numjobs="$2" --group_reporting --time_based --runtime=4 --output-format=terse 2>/dev/null |
    awk -F';' '{print $8}'
}
declare -A R
for p in "${peers[@]}"; do
  drop_caches
  mount_peer "$p"
  d=$(dir_of "$p")
  for w in find stat tar seq; do
    "w_$w" "$d" >/dev/null 2>&1 || true   # warm-up
    R[$p,$w]=$(best_of 3 "w_$w" "$d")
  done
  R[$p,fio1]=$(fio_iops "$d" 1)
  R[$p,fio2]=$(fio_iops "$d" 2)
  [ "$p" = tmpfs ] || umount "$d"
done
echo "Tree: $(find "$SRC" | wc -l) entries, $(du -sh "$SRC" | cut -f1); big-file set: ${#big_files[@]} files; $(nproc) CPUs; kernel $(uname -r)"
echo
echo "| peer | find s | stat-all s | tar c s | seq read s | fio 4k randread 1 job IOPS | 2 jobs IOPS |"
echo "|---|---|---|---|---|---|---|"
for p in "${peers[@]}"; do
  echo "| $p | ${R[$p,find]} | ${R[$p,stat]} | ${R[$p,tar]} | ${R[$p,seq]} | ${R[$p,fio1]} | ${R[$p,fio2]} |"
done
echo
echo "Ratios vs kernel EROFS (time: lower is better; IOPS: higher is better):"
echo
echo "| peer | find | stat-all | tar c | seq read | fio 1 job | fio 2 jobs |"
echo "|---|---|---|---|---|---|---|"
for p in "${peers[@]}"; do
  echo "| $p | $(ratio "${R[$p,find]}" "${R[erofs,find]}") | $(ratio "${R[$p,stat]}" "${R[erofs,stat]}") | $(ratio "${R[$p,tar]}" "${R[erofs,tar]}") | $(ratio "${R[$p,seq]}" "${R[erofs,seq]}") | $(ratio "${R[$p,fio1]}" "${R[erofs,fio1]}") | $(ratio "${R[$p,fio2]}" "${R[erofs,fio2]}") |"
done
