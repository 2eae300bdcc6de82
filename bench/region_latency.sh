#!/usr/bin/env bash
# Random 4 KiB read latency from one image held in a tmpfs region and in a
# hugetlbfs region (2 MiB pages: fewer TLB misses), in one run.
source "$(dirname "$0")/common.bash"
SIZE_MIB=${SIZE_MIB:-2048}
T=$SHM/lat; rm -rf "$T"; mkdir -p "$T/src" "$T/huge"
head -c "${SIZE_MIB}M" /dev/urandom > "$T/src/blob.bin"
"$BUILD/mkdaxfs" -q "$T/img" "$T/src"
rm -rf "$T/src"
old=$(cat /proc/sys/vm/nr_hugepages)
need=$(( SIZE_MIB / 2 + 8 ))
echo $(( old + need )) > /proc/sys/vm/nr_hugepages
cleanup() { umount "$T/huge" 2>/dev/null || true; echo "$old" > /proc/sys/vm/nr_hugepages; rm -rf "$T"; }
trap cleanup EXIT
mount -t hugetlbfs -o pagesize=2M none "$T/huge"
"$BUILD/daxfs" load -q "$T/img" "hugetlbfs:$T/huge/img"
N=5000000
lat() { "$BUILD/bench/daxfs_readall" randread "$1" $N "$2" | awk '{print $1}'; }
echo "Image: ${SIZE_MIB} MiB of file data; $N random reads at page-aligned offsets (memcpy out of the mapping); shmem THP: $(grep -o '\[[a-z_]*\]' /sys/kernel/mm/transparent_hugepage/shmem_enabled)"
echo
echo "| region | ns per 64-byte read | ns per 4 KiB read |"
echo "|---|---|---|"
echo "| tmpfs (4 KiB pages) | $(lat "$T/img" 64) | $(lat "$T/img" 4096) |"
echo "| hugetlbfs (2 MiB pages) | $(lat "hugetlbfs:$T/huge/img" 64) | $(lat "hugetlbfs:$T/huge/img" 4096) |"
