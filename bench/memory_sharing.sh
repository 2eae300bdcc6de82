#!/usr/bin/env bash
# Memory cost of N readers of one tree, side by side (default N=8):
#   daxfs library: N processes map the image (tmpfs) and read every file
#   daxfs-mount cache=direct / auto / kernel: N mounts, tar c of each
#   kernel EROFS (N mounts of one image file), kernel squashfs (N loop
#   mounts), squashfuse_ll (N mounts), and N private tmpfs copies.
# Memory = MemTotal - MemFree (page cache, Shmem, processes) after all
# reads, minus the same before (image staged, caches dropped), reported as a
# multiple of the image size: 1.00 means the readers cost nothing extra. The
# kernel's reclaimable inode/dentry caches (per mounted superblock, whatever
# the filesystem) are shown separately, and so is the growth of the page
# cache (Cached, Shmem included), which is the steadier number of the two.
source "$(dirname "$0")/common.bash"
N=${N:-8}
T=$SHM/mem; rm -rf "$T"; mkdir -p "$T/src" "$T/m"
cp -a /usr/include /usr/share/doc "$T/src/"   # many small files
head -c "${BLOB_MIB:-512}M" /dev/urandom > "$T/src/blob.bin"
"$BUILD/mkdaxfs" -q "$T/tree.daxfs" "$T/src"
mkfs.erofs "$T/tree.erofs" "$T/src" >/dev/null 2>&1
mksquashfs "$T/src" "$T/tree.sqfs" -noI -noD -noF -noX -no-progress -noappend -quiet >/dev/null
img_kib=$(( $(stat -c %s "$T/tree.daxfs") / 1024 ))
mounted=()
cleanup() { for m in "${mounted[@]}"; do umount "$m" 2>/dev/null || umount -l "$m" 2>/dev/null || true; done; }
trap cleanup EXIT

# baseline: drop caches and remember the memory counters; report NAME: one
# table row for the growth since the baseline.
baseline() { drop_caches; BEFORE=$(used_kib); SLAB0=$(slab_kib); CACHED0=$(cached_kib); }
report() {
  local extra=$(( $(used_kib) - BEFORE )) slab=$(( $(slab_kib) - SLAB0 )) cached=$(( $(cached_kib) - CACHED0 ))
  printf '| %s | %d | %d | %.2f | %d | %.2f |\n' "$1" $(( extra / 1024 )) $(( slab / 1024 )) \
    "$(echo "($img_kib + $extra) / $img_kib" | bc -l)" $(( cached / 1024 )) \
    "$(echo "($img_kib + $cached) / $img_kib" | bc -l)"
}
read_mounts() {  # run tar c on every mount in parallel
  local pids=()
  for i in $(seq "$N"); do (tar cf - -C "$T/m/$i" . | cat >/dev/null) & pids+=($!); done
  for p in "${pids[@]}"; do wait "$p"; done
}
scenario_mounts() {  # name mount-command... (mountpoint appended)
  local name=$1; shift
  baseline
  for i in $(seq "$N"); do mkdir -p "$T/m/$i"; "$@" "$T/m/$i"; mounted+=("$T/m/$i"); done
  read_mounts
  report "$name"
  for i in $(seq "$N"); do umount "$T/m/$i"; done; mounted=()
}

echo "Image: $(du -h "$T/tree.daxfs" | cut -f1) ($(find "$T/src" | wc -l) entries); N=$N readers; kernel $(uname -r)"
echo
echo "| scenario | extra MiB | of which inode/dentry slab MiB | memory / image | page-cache growth MiB | image + page cache / image |"
echo "|---|---|---|---|---|---|"
# Library readers hold their mapping while Pss is read.
baseline
fifo=$T/hold; mkfifo "$fifo"; exec 9<>"$fifo"
pss=()
for i in $(seq "$N"); do "$BUILD/bench/daxfs_readall" walk "$T/tree.daxfs" --hold <"$fifo" >"$T/pss.$i" 9>&- & done
for i in $(seq "$N"); do while [ ! -s "$T/pss.$i" ]; do sleep 0.05; done; done
report "daxfs library, $N processes"
exec 9>&-; wait
pss_total=$(cat "$T"/pss.* | awk "{s+=\$2} END{print s}")
scenario_mounts "daxfs-mount cache=direct" "$BUILD/daxfs-mount" "$T/tree.daxfs" -o cache=direct
scenario_mounts "daxfs-mount cache=auto" "$BUILD/daxfs-mount" "$T/tree.daxfs" -o cache=auto
scenario_mounts "daxfs-mount cache=kernel" "$BUILD/daxfs-mount" "$T/tree.daxfs" -o cache=kernel
scenario_mounts "kernel EROFS (file-backed)" mount -t erofs -o ro "$T/tree.erofs"
scenario_mounts "kernel squashfs (loop)" mount -t squashfs -o ro,loop "$T/tree.sqfs"
scenario_mounts "squashfuse_ll" squashfuse_ll "$T/tree.sqfs"
baseline
for i in $(seq "$N"); do cp -a "$T/src" "$T/copy.$i"; done
report "$N private tmpfs copies"
echo
echo "Sum of Pss of the $N library readers while holding their mappings: $(( pss_total / 1024 )) MiB (image shared: each pays 1/$N)."
rm -rf "$T"
