#!/usr/bin/env bash
# Containers out: 8 real containers (podman with runc) started at once from
# one daxfs image through daxfs-podman-run, each with a writable OverlayFS
# layer of its own over the one shared mount: all read every file of the
# image (checksums equal to the image's), each writes where only it sees,
# the image stays byte-identical. Then the branch mode: a container writes
# into a daxfs branch, which exports to a new image (like podman commit)
# that keeps the image's config.
source "$(dirname "$0")/lib.bash" "${1:-}"
command -v podman >/dev/null || skip "no podman"
command -v runc >/dev/null || skip "no runc"
command -v busybox >/dev/null || skip "no busybox"
[ -x /usr/bin/python3 ] || skip "no /usr/bin/python3"
# shellcheck source=tests/mount/podman.bash
source "$(dirname "$0")/podman.bash"
RUN=$(cd "$(dirname "$0")/../.." && pwd)/tools/daxfs-podman-run/daxfs-podman-run
export PODMAN="podman --runtime runc"
opts=(--rm --network none --ulimit nofile=1024:1024 --ulimit nproc=1024:1024 --label "daxfs-test=$$")

BIG_MB=48 make_test_images "$WORK/ctx" run || skip "podman cannot build images on this machine"
"${PODMAN_RUN[@]}" --rm --label "daxfs-test=$$" "$APP_IMAGE" /bin/sh -c : ||
  skip "podman cannot run containers on this machine (see the message above)"
podman save -q --format oci-archive -o "$WORK/app.tar" "$APP_IMAGE"
mkdir -p /dev/shm/daxfs-test-$$
IMG=/dev/shm/daxfs-test-$$/app.img
# The shared mounts daxfs-podman-run leaves for later containers: ours go,
# also when the test fails or is killed.
unmount_shared() { awk -v d="/dev/shm/daxfs-test-$$/" 'index($1, d) == 1 { print $2 }' /proc/mounts | xargs -r umount || true; }
trap 'podman_cleanup; unmount_shared; rm -rf /dev/shm/daxfs-test-$$; cleanup' EXIT
"$MKDAXFS" -q "$IMG" "oci-archive:$WORK/app.tar"
before=$(md5sum < "$IMG")
# What every container must read: each file's checksum, from the image.
mount_image "$IMG" "$WORK/ref"
# Files the runtime puts in every container (/etc/hosts, resolv.conf, ...)
# are not compared.
runtime_files() { grep -v -e ' ./etc/hosts$' -e ' ./etc/hostname$' -e ' ./etc/resolv.conf$' -e ' ./run/' \
  -e ' ./etc/passwd$' -e ' ./etc/group$' || true; }
(cd "$WORK/ref" && find . -xdev -type f ! -name fifo -exec md5sum {} + | sort -k2) | runtime_files > "$WORK/want"
umount "$WORK/ref"

# The image's own CMD runs when no command is given.
[ "$("$RUN" "$IMG" "${opts[@]}")" = v2 ] || fail "the image's CMD did not run"

for i in $(seq 1 8); do
  "$RUN" "$IMG" "${opts[@]}" -- /bin/sh -c "
    echo container-$i > /opt/app/mine
    [ \"\$(cat /opt/app/mine)\" = container-$i ] || echo 'own write lost'
    cd / && find . -xdev -type f ! -name fifo ! -path ./opt/app/mine -exec md5sum {} + | sort -k2" > "$WORK/out-$i" 2>&1 &
done
wait
for i in $(seq 1 8); do
  runtime_files < "$WORK/out-$i" > "$WORK/got-$i"
  diff "$WORK/want" "$WORK/got-$i" > "$WORK/diff" || { head "$WORK/diff" >&2; fail "container $i read other contents"; }
done
[ "$(awk -v img="$IMG" '$1 == img' /proc/mounts | wc -l)" = 1 ] || fail "the image is not mounted exactly once"
[ "$(md5sum < "$IMG")" = "$before" ] || fail "the image changed"
# --prune (system-wide: it also unmounts other idle image mounts, which the
# next container of their image mounts again) keeps a mount a running
# container uses, and unmounts it once none does.
ctr=$("$RUN" "$IMG" "${opts[@]:1}" -d -- /bin/sh -c 'sleep 300')
"$RUN" --prune 2>"$WORK/prune.log" || fail "--prune failed: $(cat "$WORK/prune.log")"
[ "$(awk -v img="$IMG" '$1 == img' /proc/mounts | wc -l)" = 1 ] ||
  fail "--prune unmounted the image of a running container: $(cat "$WORK/prune.log")"
podman exec "$ctr" cat /opt/app/version > /dev/null || fail "the running container lost its tree"
podman rm -f -t 0 "$ctr" > /dev/null
"$RUN" --prune 2>"$WORK/prune.log" || fail "--prune failed: $(cat "$WORK/prune.log")"
[ "$(awk -v img="$IMG" '$1 == img' /proc/mounts | wc -l)" = 0 ] || fail "--prune left the idle image mounted"

# Memory: N containers that read every file of the image, charged to the
# containers' own memory cgroups (page cache included; what other tests
# running meanwhile do is not counted), against the same N containers from
# podman's own overlay storage. The image's bytes in /dev/shm are there
# before any container starts and are not counted.
"$MKDAXFS" -q --objects /dev/shm/daxfs-test-$$/objects /dev/shm/daxfs-test-$$/app-objects.img "oci-archive:$WORK/app.tar"
data=$(du -s -B1 --apparent-size "$WORK/ctx/base" | cut -f1)
charged() {  # image|podman: bytes charged to 8 reading containers
  local ids=() i
  for i in $(seq 1 8); do
    if [ "$1" = podman ]; then
      ids+=("$("${PODMAN_RUN[@]}" -d --label "daxfs-test=$$" "$APP_IMAGE" /bin/sh -c 'find / -xdev -type f -exec cat {} + >/dev/null 2>&1; echo ready; sleep 300')")
    else
      ids+=("$("$RUN" "$1" "${opts[@]:1}" -d -- /bin/sh -c 'find / -xdev -type f -exec cat {} + >/dev/null 2>&1; echo ready; sleep 300')")
    fi
  done
  local total=0 id cg
  for id in "${ids[@]}"; do
    for _ in $(seq 300); do podman logs "$id" 2>/dev/null | grep -q ready && break; sleep 0.2; done
    cg=/sys/fs/cgroup/memory$(podman inspect --format '{{.State.CgroupPath}}' "$id")/memory.usage_in_bytes
    [ -r "$cg" ] || cg=/sys/fs/cgroup$(podman inspect --format '{{.State.CgroupPath}}' "$id")/memory.current
    total=$((total + $(cat "$cg" 2>/dev/null || echo 0)))
  done
  podman rm -f -t 0 "${ids[@]}" >/dev/null
  echo "$total"
}
if [ -d /sys/fs/cgroup/memory ] || [ -f /sys/fs/cgroup/cgroup.controllers ]; then
  sync; echo 3 > /proc/sys/vm/drop_caches
  m_img=$(charged "$IMG")
  m_obj=$(charged /dev/shm/daxfs-test-$$/app-objects.img)
  sync; echo 3 > /proc/sys/vm/drop_caches
  m_pod=$(charged podman)
  mb() { echo $(($1 / 1000000)); }
  echo "8 containers reading the whole image ($(mb "$data") MB), charged to their cgroups:"
  echo "  daxfs image $(mb "$m_img") MB, daxfs object-store image $(mb "$m_obj") MB, podman storage $(mb "$m_pod") MB"
  limit=$((data * 11 / 10 + 16000000))  # 1.1 copies, and 2 MB of processes per container
  [ "$m_img" -gt 0 ] && [ "$m_pod" -gt 0 ] || fail "no memory charged: the measurement is broken"
  [ "$m_img" -le "$limit" ] || fail "8 containers on the daxfs image grew by $(mb "$m_img") MB (limit $(mb "$limit"))"
  [ "$m_obj" -le "$limit" ] || fail "8 containers on the object-store image grew by $(mb "$m_obj") MB (limit $(mb "$limit"))"
fi

# Branch mode: the container's writes go to a branch; export makes an image.
REGION=/dev/shm/daxfs-test-$$/region
"$DAXFS" branch init -q "$IMG" "$REGION" --delta 64M
"$RUN" --branch "$REGION" --name ctr1 "$IMG" "${opts[@]}" -- /bin/sh -c \
  'echo changed > /opt/app/version; rm /opt/app/vlink; mkdir -p /srv/new; echo made > /srv/new/file' 2>"$WORK/branch.log" ||
  fail "the container in a branch failed: $(cat "$WORK/branch.log")"
"$DAXFS" branch list "$REGION" | grep -q '^ctr1 *active' || fail "no branch ctr1: $("$DAXFS" branch list "$REGION")"
"$DAXFS" branch export -q "$REGION" ctr1 "$WORK/committed.img"
mount_image "$WORK/committed.img" "$WORK/c"
[ "$(cat "$WORK/c/opt/app/version")" = changed ] && [ ! -e "$WORK/c/opt/app/vlink" ] &&
  [ "$(cat "$WORK/c/srv/new/file")" = made ] || fail "the exported branch lacks the container's changes"
"$DAXFS" info "$WORK/committed.img" | grep -q 'cmd: *\["/bin/sh"' || fail "the exported image lost the config"
[ "$(md5sum < "$IMG")" = "$before" ] || fail "the image changed"
echo PASS
