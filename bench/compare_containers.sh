#!/usr/bin/env bash
# Container images (#23), one run, against podman's own overlay storage and
# mkfs.erofs --tar:
#  1. from a `podman save` archive to a mountable tree: mkdaxfs
#     oci-archive:, mkfs.erofs --tar on the merged tar (podman export),
#     podman load + podman image mount;
#  2. container start, create to first output (median of RUNS): podman run
#     IMAGE against daxfs-podman-run IMAGE.img (podman run --rootfs MNT:O);
#  3. two images sharing a base layer: bytes stored by podman's storage,
#     by two daxfs images, and by two daxfs images over one object store;
#  4. memory: N containers (default 8) each read every file and stay up;
#     growth of used memory (MemTotal - MemFree, page cache included, after
#     drop_caches) against the image's size.
# The image: busybox + /usr/lib/python3 (about 270 MB, 12k files) as the
# base layer, and a small layer on top. Run as root on an idle machine.
source "$(dirname "$0")/common.bash"
command -v podman >/dev/null && command -v runc >/dev/null || {
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq podman runc >/dev/null; }
RUNS=${RUNS:-10}
N=${N:-8}
W=$SHM/containers; rm -rf "$W"; mkdir -p "$W/base/bin" "$W/ctx1" "$W/ctx2"
TAG=localhost/daxfs-bench
export PODMAN="podman --runtime runc"
RUN_OPTS=(--rm --network none --ulimit nofile=1024:1024 --ulimit nproc=1024:1024)
HELPER=$ROOT/tools/daxfs-podman-run/daxfs-podman-run
cleanup() {
  podman ps -aq --filter label=daxfs-bench | xargs -r podman rm -f >/dev/null 2>&1 || true
  for i in base app1 app2; do podman image unmount "$TAG-$i:1" >/dev/null 2>&1 || true; done
  podman rmi -f "$TAG-app1:1" "$TAG-app2:1" "$TAG-base:1" >/dev/null 2>&1 || true
  awk -v w="$W" 'index($1, w) == 1 || index($2, w) == 1 { print $2 }' /proc/mounts | sort -r | xargs -r umount -l
  rm -rf "$W"
}
trap cleanup EXIT
cleanup; mkdir -p "$W/base/bin" "$W/ctx1" "$W/ctx2"

cp "$(command -v busybox)" "$W/base/bin/"
for a in sh cat find xargs md5sum sleep true; do ln -s busybox "$W/base/bin/$a"; done
mkdir -p "$W/base/usr/lib" && cp -a /usr/lib/python3 "$W/base/usr/lib/"
tar -C "$W/base" -c . | podman import -q - "$TAG-base:1" >/dev/null
for i in 1 2; do
  printf 'FROM %s\nRUN echo app%s > /app && rm -rf /usr/lib/python3/dist-packages/numpy/tests\n' "$TAG-base:1" "$i" > "$W/ctx$i/Containerfile"
  podman --runtime runc build -q --network none --ulimit nofile=1024:1024 -t "$TAG-app$i:1" "$W/ctx$i" >/dev/null
done
podman save -q --format oci-archive -o "$W/app1.tar" "$TAG-app1:1"
podman save -q --format oci-archive -o "$W/app2.tar" "$TAG-app2:1"
podman export "$(podman create --label daxfs-bench "$TAG-app1:1" /bin/true)" > "$W/merged1.tar"
data=$(du -s --apparent-size -B1 "$W/base" | cut -f1)
echo "Image: busybox + /usr/lib/python3, $(find "$W/base" | wc -l) entries, $((data / 1000000)) MB; $(nproc) CPUs; images on tmpfs"
echo

layers() { podman image inspect --format '{{.GraphDriver.Data.UpperDir}}:{{.GraphDriver.Data.LowerDir}}' "$1" | tr ':' '\n'; }
# Object-store images of both (step 3 measures them; steps 2 and 4 run one).
"$BUILD/mkdaxfs" -q --objects "$W/objs" "$W/o1.img" "oci-archive:$W/app1.tar"
"$BUILD/mkdaxfs" -q --objects "$W/objs" "$W/o2.img" "oci-archive:$W/app2.tar"
two_pod=$( { layers "$TAG-app1:1"; layers "$TAG-app2:1"; } | grep . | sort -u | xargs du -s -B1 -c | tail -1 | cut -f1)

# 1. Archive to mountable tree.
t_dax=$(best_of 3 "$BUILD/mkdaxfs" -q "$W/app1.img" "oci-archive:$W/app1.tar")
t_ero=$(best_of 3 mkfs.erofs --quiet --tar=f "$W/app1.erofs" "$W/merged1.tar")
[ -s "$W/app1.erofs" ] || t_ero=""  # erofs-utils before 1.6 has no --tar
podman_load() {  # from nothing: no layer of it left in podman's storage
  podman rmi -f "$TAG-app1:1" "$TAG-app2:1" "$TAG-base:1" >/dev/null 2>&1 || true
  podman load -q -i "$W/app1.tar" >/dev/null && podman image mount "$TAG-app1:1" >/dev/null
}
t_pod=$(best_of 3 podman_load)
echo "| from a podman save archive to a mountable tree | seconds | vs mkdaxfs |"
echo "|---|---|---|"
printf '| mkdaxfs IMG oci-archive:app.tar | %.2f | 1.00 |\n' "$t_dax"
if [ -n "$t_ero" ]; then
  printf '| mkfs.erofs --tar=f (on podman export'"'"'s merged tar, not counted) | %.2f | %s |\n' "$t_ero" "$(ratio "$t_ero" "$t_dax")"
else
  echo "| mkfs.erofs --tar=f | (this erofs-utils, $(dpkg-query -W -f '${Version}' erofs-utils 2>/dev/null), has no --tar) | |"
fi
printf '| podman load + podman image mount | %.2f | %s |\n' "$t_pod" "$(ratio "$t_pod" "$t_dax")"
echo

# 2. Start time: create to first output.
median() { sort -n | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }
start_podman() { podman --runtime runc run "${RUN_OPTS[@]}" "$TAG-app1:1" /bin/cat /app; }
start_daxfs() { "$HELPER" "$W/app1.img" "${RUN_OPTS[@]}" -- /bin/cat /app; }
start_objects() { "$HELPER" "$W/o1.img" "${RUN_OPTS[@]}" -- /bin/cat /app; }
start_podman >/dev/null; start_daxfs >/dev/null; start_objects >/dev/null  # warm: first mount, runc binary
s_pod=$(for _ in $(seq "$RUNS"); do seconds start_podman; done | median)
s_dax=$(for _ in $(seq "$RUNS"); do seconds start_daxfs; done | median)
s_obj=$(for _ in $(seq "$RUNS"); do seconds start_objects; done | median)
echo "| container start, create to first output (median of $RUNS) | seconds | vs podman |"
echo "|---|---|---|"
printf '| podman run IMAGE (overlay storage) | %.3f | 1.00 |\n' "$s_pod"
printf '| daxfs-podman-run IMAGE.img (--rootfs MOUNT:O) | %.3f | %s |\n' "$s_dax" "$(ratio "$s_dax" "$s_pod")"
printf '| daxfs-podman-run, object-store image (FUSE passthrough) | %.3f | %s |\n' "$s_obj" "$(ratio "$s_obj" "$s_pod")"
echo

# 3. Two images sharing the base layer.
"$BUILD/mkdaxfs" -q "$W/app2.img" "oci-archive:$W/app2.tar"
two_dax=$(( $(stat -c %s "$W/app1.img") + $(stat -c %s "$W/app2.img") ))
two_obj=$(( $(du -s -B1 "$W/objs" | cut -f1) + $(stat -c %s "$W/o1.img") + $(stat -c %s "$W/o2.img") ))
echo "| two images on one base layer | MB stored | vs podman |"
echo "|---|---|---|"
printf '| podman storage (overlay layers) | %d | 1.00 |\n' "$((two_pod / 1000000))"
printf '| two daxfs images | %d | %s |\n' "$((two_dax / 1000000))" "$(ratio "$two_dax" "$two_pod")"
printf '| two daxfs images over one object store (--objects) | %d | %s |\n' "$((two_obj / 1000000))" "$(ratio "$two_obj" "$two_pod")"
echo

# 4. Memory of N containers that read everything.
reader='find / -xdev -type f -exec cat {} + > /dev/null; echo ready; sleep 600'
grow() {  # how: podman | daxfs
  drop_caches
  local before after
  before=$(used_kib)
  for i in $(seq "$N"); do
    case $1 in
      podman) podman --runtime runc run -d --label daxfs-bench "${RUN_OPTS[@]:1}" "$TAG-app1:1" /bin/sh -c "$reader" >/dev/null ;;
      daxfs) "$HELPER" "$W/app1.img" -d --label daxfs-bench "${RUN_OPTS[@]:1}" -- /bin/sh -c "$reader" >/dev/null ;;
      objects) "$HELPER" "$W/o1.img" -d --label daxfs-bench "${RUN_OPTS[@]:1}" -- /bin/sh -c "$reader" >/dev/null ;;
    esac
  done
  for c in $(podman ps -q --filter label=daxfs-bench); do
    until podman logs "$c" 2>/dev/null | grep -q ready; do sleep 0.5; done
  done
  after=$(used_kib)
  podman ps -q --filter label=daxfs-bench | xargs -r podman rm -f -t 0 >/dev/null
  echo $(( (after - before) * 1024 ))
}
podman load -q -i "$W/app1.tar" >/dev/null  # step 1 removed it
m_pod=$(grow podman)
m_dax=$(grow daxfs)
m_obj=$(grow objects)
echo "| $N containers reading every file | memory growth MB | vs one copy of the image ($((data / 1000000)) MB) |"
echo "|---|---|---|"
printf '| podman (overlay storage on disk: page cache) | %d | %s |\n' "$((m_pod / 1000000))" "$(ratio "$m_pod" "$data")"
printf '| daxfs-podman-run (image already in /dev/shm) | %d | %s |\n' "$((m_dax / 1000000))" "$(ratio "$m_dax" "$data")"
printf '| daxfs-podman-run, object-store image (objects already in /dev/shm) | %d | %s |\n' "$((m_obj / 1000000))" "$(ratio "$m_obj" "$data")"
echo
echo "(The container reads with busybox cat, which uses sendfile(2): the kernel splices"
echo "FUSE files through the page cache even with FOPEN_DIRECT_IO, so a single-file image"
echo "gets a page-cache copy of what is read that way; passthrough to object files does not.)"
