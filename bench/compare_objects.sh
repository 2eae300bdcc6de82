#!/usr/bin/env bash
# Object-store images (issue 13) side by side with kernel EROFS (loop, as it
# must be for an image on tmpfs), tmpfs itself, squashfuse_ll (uncompressed
# image) and the three cache modes of single-region images,
# in one run on the same tree (bench/common.bash: /usr/share, /usr/include,
# /usr/bin and a 512 MiB blob on tmpfs). The object directory is on tmpfs
# too, so the objects are the one shared copy.
# daxfs-objects: daxfs-mount (FUSE passthrough); daxfs-overlay: OverlayFS
# with daxfs-mount -o overlay_lower as metadata and the objects as a
# data-only lower layer.
# The object directory is a tmpfs of its own mounted huge=within_size, as
# README advises: objects of 2 MiB and more get huge pages (mkdaxfs sizes
# each object before writing it), so the kernel's page-cache lookups on a
# large object cost what they cost on EROFS's large folios.
# Workloads (warm): tar c of the tree, sequential read of the large files,
# fio 4 KiB random reads (1 job). All peers are mounted at once and the
# workloads run in ROUNDS rounds (default 3) that visit every peer in turn;
# each cell is the best round, so that a noisy minute on this shared VM
# does not land on one peer only. Memory: page-cache growth while 8 mounts
# of each peer read the same subset (include/ and big/).
# Store size: two images that share 90% of their files vs one.
source "$(dirname "$0")/common.bash"
stage_tree
IMG=$SHM/img; MNT=$SHM/mnt; OBJS=$SHM/objs; mkdir -p "$IMG" "$MNT" "$OBJS"
ROUNDS=${ROUNDS:-3}
if mountpoint -q "$OBJS"; then umount "$OBJS"; fi
rm -rf "${OBJS:?}"/* "$IMG"/*
mount -t tmpfs -o huge=within_size,mode=755 objects "$OBJS"
"$BUILD/mkdaxfs" -q "$IMG/tree.daxfs" "$SRC"
"$BUILD/mkdaxfs" -q --objects "$OBJS" "$IMG/tree.obj" "$SRC"
mkfs.erofs "$IMG/tree.erofs" "$SRC" >/dev/null 2>&1
mksquashfs "$SRC" "$IMG/tree.sqfs" -noI -noD -noF -noX -no-progress -noappend -quiet >/dev/null
cleanup() {  # overlays before their metadata mounts, the objects last
  for m in $(grep -o " $MNT/[^ ]*" /proc/mounts | tac); do umount "$m" 2>/dev/null || umount -l "$m" 2>/dev/null || true; done
  if mountpoint -q "$OBJS"; then umount "$OBJS" 2>/dev/null || umount -l "$OBJS" || true; fi
}
trap cleanup EXIT
mount_peer() {
  local p=$1 d=$2; mkdir -p "$d"
  case $p in
    tmpfs) ;;
    erofs) mount -t erofs -o ro "$IMG/tree.erofs" "$d" ;;
    daxfs-direct) "$BUILD/daxfs-mount" "$IMG/tree.daxfs" "$d" -o cache=direct ;;
    daxfs-kernel) "$BUILD/daxfs-mount" "$IMG/tree.daxfs" "$d" -o cache=kernel ;;
    daxfs-auto) "$BUILD/daxfs-mount" "$IMG/tree.daxfs" "$d" -o cache=auto ;;
    squashfuse_ll) squashfuse_ll "$IMG/tree.sqfs" "$d" ;;
    daxfs-objects) "$BUILD/daxfs-mount" "$IMG/tree.obj" "$d" ;;
    daxfs-overlay)  # metadata from daxfs, data from the objects (composefs' arrangement)
      mkdir -p "$d.meta"
      "$BUILD/daxfs-mount" "$IMG/tree.obj" "$d.meta" -o cache=kernel,overlay_lower
      mount -t overlay overlay -o "ro,metacopy=on,redirect_dir=follow,lowerdir=$d.meta::$OBJS" "$d" ;;
  esac
}
peers=(tmpfs erofs squashfuse_ll daxfs-direct daxfs-auto daxfs-kernel daxfs-objects daxfs-overlay)
unmount_peer() { umount "$1"; if [ -d "$1.meta" ]; then umount "$1.meta"; fi; }
dir_of() { [ "$1" = tmpfs ] && echo "$SRC" || echo "$MNT/$1"; }
mapfile -t big_files < <(cd "$SRC" && find . -type f -size +1M | sort | head -200)
w_tar() { tar cf - -C "$1" . | cat >/dev/null; }
w_seq() { (cd "$1" && cat "${big_files[@]}" >/dev/null); }
fio_iops() {
  fio --name=r --filename="$1/big/blob.bin" --readonly --invalidate=0 --rw=randread --bs=4k --ioengine=psync \
      --numjobs=1 --time_based --runtime=4 --output-format=terse 2>/dev/null | awk -F';' '{print $8}'
}
declare -A R
drop_caches
for p in "${peers[@]}"; do
  d=$(dir_of "$p"); [ "$p" = tmpfs ] || mount_peer "$p" "$d"
  w_tar "$d"; w_seq "$d"   # warm
done
# keep_best KEY VALUE lower|higher
keep_best() {
  local cur=${R[$1]:-}
  if [ -z "$cur" ] || { [ "$3" = lower ] && [ "$(echo "$2 < $cur" | bc -l)" = 1 ]; } ||
     { [ "$3" = higher ] && [ "$(echo "$2 > $cur" | bc -l)" = 1 ]; }; then R[$1]=$2; fi
}
for round in $(seq "$ROUNDS"); do
  for p in "${peers[@]}"; do
    d=$(dir_of "$p")
    keep_best "$p,tar" "$(printf '%.3f' "$(seconds w_tar "$d")")" lower
    keep_best "$p,seq" "$(printf '%.3f' "$(seconds w_seq "$d")")" lower
    keep_best "$p,fio" "$(fio_iops "$d")" higher
  done
  echo "round $round of $ROUNDS done" >&2
done
for p in "${peers[@]}"; do [ "$p" = tmpfs ] || unmount_peer "$(dir_of "$p")"; done

# Memory: 8 mounts of one peer read the same files; growth of the page
# cache of non-tmpfs files (Cached - Shmem: the tree, images and objects on
# tmpfs were there before and stay the one copy; other jobs' tmpfs files
# do not count).
subset_kib=$(du -sk "$SRC/include" "$SRC/big" | awk '{s+=$1} END{print s}')
for p in erofs squashfuse_ll daxfs-direct daxfs-auto daxfs-kernel daxfs-objects daxfs-overlay; do
  drop_caches
  before=$(file_cache_kib)
  for i in 1 2 3 4 5 6 7 8; do
    mount_peer "$p" "$MNT/$p-$i"
    tar cf - -C "$MNT/$p-$i" ./include ./big | cat >/dev/null
  done
  R[$p,mem]=$(( ($(file_cache_kib) - before) / 1024 ))
  for i in 1 2 3 4 5 6 7 8; do unmount_peer "$MNT/$p-$i"; done
done

# Store size: a second tree with 90% of the files unchanged.
images_line="Images: daxfs $(du -h "$IMG/tree.daxfs" | cut -f1), object-store metadata $(du -h "$IMG/tree.obj" | cut -f1) + objects $(du -sh "$OBJS" | cut -f1), EROFS $(du -h "$IMG/tree.erofs" | cut -f1)"
rm -rf "$IMG"/tree.*; umount "$OBJS"  # room on tmpfs
rm -rf "$SHM/src2" "$SHM/objs2"
cp -a "$SRC" "$SHM/src2"
n=0; while IFS= read -r f; do
  n=$((n + 1)); [ $((n % 10)) = 0 ] && printf 'changed' >> "$f"
done < <(find "$SHM/src2" -type f -size +0 | sort)
"$BUILD/mkdaxfs" -q --objects "$SHM/objs2" "$IMG/one.obj" "$SRC"
one_kib=$(du -sk "$SHM/objs2" | cut -f1)
"$BUILD/mkdaxfs" -q --objects "$SHM/objs2" "$IMG/two.obj" "$SHM/src2"
two_kib=$(du -sk "$SHM/objs2" | cut -f1)

echo "Tree: $(find "$SRC" | wc -l) entries, $(du -sh "$SRC" | cut -f1); $(nproc) CPUs; kernel $(uname -r)"
echo "$images_line"
echo
echo "| peer | tar c s | seq read s | fio 4k randread IOPS | 8 mounts: page-cache growth MiB (subset $((subset_kib / 1024)) MiB) |"
echo "|---|---|---|---|---|"
for p in "${peers[@]}"; do
  echo "| $p | ${R[$p,tar]} | ${R[$p,seq]} | ${R[$p,fio]} | ${R[$p,mem]:-n/a} |"
done
echo
echo "| peer | tar c vs EROFS | seq read vs EROFS | randread vs EROFS |"
echo "|---|---|---|---|"
for p in "${peers[@]}"; do
  echo "| $p | $(ratio "${R[$p,tar]}" "${R[erofs,tar]}") | $(ratio "${R[$p,seq]}" "${R[erofs,seq]}") | $(ratio "${R[$p,fio]}" "${R[erofs,fio]}") |"
done
echo
rm -rf "$SHM/src2" "$SHM/objs2" "$IMG"/one.obj "$IMG"/two.obj
echo "Object store: one image $((one_kib / 1024)) MiB, plus a second sharing 90% of its files $((two_kib / 1024)) MiB ($(ratio "$two_kib" "$one_kib")x)"
