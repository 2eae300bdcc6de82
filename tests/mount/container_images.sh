#!/usr/bin/env bash
# Container images in: mkdaxfs reads `podman save`'s OCI archive, its
# docker-archive and an OCI layout directory, applies the layers (whiteouts,
# opaque directories, hard links within and across layers, xattrs, devices,
# symlinks) and gives the tree podman itself gives for the image
# (`podman image mount`), file by file. Damaged input (a corrupted or
# missing blob, an absent platform, a layer that leaves the root or writes
# through a symlink) is refused with a message naming it, and nothing is
# written.
source "$(dirname "$0")/lib.bash" "${1:-}"
command -v podman >/dev/null || skip "no podman"
command -v runc >/dev/null || skip "no runc"
command -v busybox >/dev/null || skip "no busybox"
# shellcheck source=tests/mount/podman.bash
source "$(dirname "$0")/podman.bash"

# 1. An image of four layers, built by podman.
make_test_images "$WORK/ctx" app || skip "podman cannot build images on this machine"
for form in oci-archive docker-archive oci-dir; do
  case $form in
    oci-dir) podman save -q --format oci-dir -o "$WORK/app-oci" "$APP_IMAGE"; ref=oci:$WORK/app-oci ;;
    *) podman save -q --format "$form" -o "$WORK/app-$form.tar" "$APP_IMAGE"; ref=$form:$WORK/app-$form.tar ;;
  esac
  "$MKDAXFS" -q "$WORK/$form.img" "$ref" || fail "$form: mkdaxfs $ref"
done
ref_root=$(podman image mount "$APP_IMAGE")
PODMAN_MOUNTED=$APP_IMAGE
for form in oci-archive docker-archive oci-dir; do
  mount_image "$WORK/$form.img" "$WORK/m-$form"
  # Directory link counts differ only because OverlayFS reports 1 for a
  # merged directory; links are compared as groups of names per inode.
  diff <(describe_container_tree "$ref_root") <(describe_container_tree "$WORK/m-$form") > "$WORK/diff" ||
    { head -20 "$WORK/diff" >&2; fail "$form: the tree differs from podman's"; }
  (cd "$ref_root" && find . -type f -print0) | while IFS= read -r -d '' f; do
    cmp -s "$ref_root/$f" "$WORK/m-$form/$f" || echo "$f"
  done > "$WORK/diff"
  [ ! -s "$WORK/diff" ] || { head "$WORK/diff" >&2; fail "$form: contents differ"; }
  umount "$WORK/m-$form"
done
# What the layers did, seen in the result (the comparison above could pass
# on a tree without them if podman's were wrong too).
m=$WORK/m-oci-archive
mount_image "$WORK/oci-archive.img" "$m"
[ ! -e "$m/etc/motd" ] || fail "a whiteout did not remove /etc/motd"
[ "$(ls "$m/opt/old")" = new ] || fail "the opaque /opt/old still shows lower entries: $(ls "$m/opt/old")"
[ "$(getfattr -h --absolute-names --only-values -n user.layer "$m/opt/app/version")" = three ] || fail "xattr of a later layer lost"
[ "$(stat -c %i "$m/etc/base-a")" = "$(stat -c %i "$m/etc/base-a-link")" ] || fail "hard link within a layer lost"
[ "$(stat -c %i "$m/opt/app/cross-a")" = "$(stat -c %i "$m/opt/app/cross-b")" ] || fail "hard link across layers lost"
[ -c "$m/etc/null" ] && [ -p "$m/etc/fifo" ] || fail "devices or fifos lost"
"$DAXFS" info "$WORK/oci-archive.img" | grep -q '^  cmd: *\["/bin/sh", "-c", "cat /opt/app/version"\]' ||
  fail "the image config is not recorded: $("$DAXFS" info "$WORK/oci-archive.img")"
"$DAXFS" info --config "$WORK/oci-archive.img" | grep -q '"diff_ids"' || fail "daxfs info --config"

# 1b. One image per layer (--per-layer), stacked by OverlayFS over kernel
# EROFS mounts of the layer images: the same tree, with no daxfs process;
# a second build reuses every layer image.
if grep -qw erofs /proc/filesystems || modprobe erofs 2>/dev/null; then
  mkdir -p "$WORK/layers"
  "$MKDAXFS" --per-layer "$WORK/layers" "oci-archive:$WORK/app-oci-archive.tar" > "$WORK/per-layer.out" ||
    fail "--per-layer: $(cat "$WORK/per-layer.out")"
  lower=
  while read -r n img; do
    mkdir -p "$WORK/layer$n"
    remember_mount "$WORK/layer$n"
    mount -t erofs -o ro,loop "$img" "$WORK/layer$n" || fail "mount -t erofs $img"
    MOUNTS=("$WORK/layer$n" "${MOUNTS[@]}")
    lower=$WORK/layer$n${lower:+:$lower}
  done < <(sed -n 's/^layer \([0-9]*\): \(.*\) (.*)$/\1 \2/p' "$WORK/per-layer.out")
  [ "$(grep -c '^layer ' "$WORK/per-layer.out")" = 4 ] || fail "--per-layer: $(cat "$WORK/per-layer.out")"
  mkdir -p "$WORK/stack"
  remember_mount "$WORK/stack"
  mount -t overlay overlay -o "ro,lowerdir=$lower" "$WORK/stack" || fail "overlay of the layer images"
  MOUNTS=("$WORK/stack" "${MOUNTS[@]}")
  diff <(describe_container_tree "$ref_root") <(describe_container_tree "$WORK/stack") > "$WORK/diff" ||
    { head -20 "$WORK/diff" >&2; fail "--per-layer: the stacked layers differ from podman's tree"; }
  diff -r --no-dereference "$ref_root" "$WORK/stack" 2>&1 |
    grep -v '^File .* is a \(fifo\|character special file\)' | grep . && fail "--per-layer: contents differ"
  "$MKDAXFS" --per-layer "$WORK/layers" "oci-archive:$WORK/app-oci-archive.tar" > "$WORK/again.out"
  [ "$(grep -c 'already there' "$WORK/again.out")" = 4 ] || fail "--per-layer did not reuse: $(cat "$WORK/again.out")"
  umount "$WORK/stack"
fi

# 2. Refusals: each leaves no image behind.
refuse() {  # NAME EXPECTED-MESSAGE-REGEX mkdaxfs-args...
  local name=$1 want=$2; shift 2
  rm -f "$WORK/bad.img"
  if "$MKDAXFS" -q "$WORK/bad.img" "$@" 2> "$WORK/err"; then fail "$name: accepted"; fi
  grep -Eq -- "$want" "$WORK/err" || fail "$name: message: $(cat "$WORK/err")"
  [ ! -e "$WORK/bad.img" ] || fail "$name: an image was written"
}
cp -a "$WORK/app-oci" "$WORK/broken"
layer=$(ls -S "$WORK/broken/blobs/sha256" | head -1)  # the largest blob: a layer
printf 'X' | dd of="$WORK/broken/blobs/sha256/$layer" bs=1 seek=100 conv=notrunc status=none
refuse "corrupted blob" "$layer.*does not match its digest" "oci:$WORK/broken"
rm "$WORK/broken/blobs/sha256/$layer"
refuse "missing blob" "$layer.*missing" "oci:$WORK/broken"
refuse "absent platform" "is for linux/[a-z0-9_]+, not linux/s390x|no manifest for platform linux/s390x" --platform linux/s390x "oci-archive:$WORK/app-oci-archive.tar"
refuse "absent name" "no image named 'nope'" "oci:$WORK/app-oci:nope"
refuse "not an archive" "not a tar archive|no manifest.json" "docker-archive:/etc/hostname"
# Hand-made layers: one entry leaves the root; one writes through an
# absolute symlink a lower layer made.
python3 - "$WORK" <<'PY'
import io, sys, tarfile
w = sys.argv[1]
def layer(path, entries):
    with tarfile.open(path, "w") as t:
        for name, kind, data in entries:
            i = tarfile.TarInfo(name)
            if kind == "file":
                i.size = len(data); t.addfile(i, io.BytesIO(data))
            elif kind == "symlink":
                i.type = tarfile.SYMTYPE; i.linkname = data; t.addfile(i)
            elif kind == "hardlink":
                i.type = tarfile.LNKTYPE; i.linkname = data; t.addfile(i)
layer(f"{w}/escape.tar", [("etc/ok", "file", b"ok\n"), ("../escaped", "file", b"bad\n")])
layer(f"{w}/link1.tar", [("etc", "symlink", "/etc")])
layer(f"{w}/link2.tar", [("etc/passwd", "file", b"root::0:0::/:/bin/sh\n")])
layer(f"{w}/hl1.tar", [("data/f", "file", b"lower\n")])
layer(f"{w}/hl2.tar", [("data/g", "hardlink", "data/f"), ("data/.wh.nothing", "file", b"")])
PY
make_oci_layout "$WORK/escape-oci" "$WORK/escape.tar"
refuse "layer leaving the root" "leaves the root" "oci:$WORK/escape-oci"
make_oci_layout "$WORK/link-oci" "$WORK/link1.tar" "$WORK/link2.tar"
refuse "layer writing through a symlink" "goes through /etc, which is a symlink" "oci:$WORK/link-oci"
# A multi-platform index: this machine's platform by default, --platform
# for another, a platform the index lacks refused.
python3 - "$WORK/multi-oci" <<'PY'
import hashlib, io, json, os, platform, sys, tarfile
out = sys.argv[1]
os.makedirs(f"{out}/blobs/sha256")
def blob(data, media):
    d = hashlib.sha256(data).hexdigest()
    open(f"{out}/blobs/sha256/{d}", "wb").write(data)
    return {"mediaType": media, "digest": "sha256:" + d, "size": len(data)}
host = {"x86_64": "amd64", "aarch64": "arm64"}.get(platform.machine(), platform.machine())
manifests = []
for arch in sorted({host, "arm64", "riscv64"}):
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as t:
        i = tarfile.TarInfo("arch"); data = (arch + "\n").encode(); i.size = len(data); t.addfile(i, io.BytesIO(data))
    layer = blob(buf.getvalue(), "application/vnd.oci.image.layer.v1.tar")
    config = blob(json.dumps({"architecture": arch, "os": "linux", "config": {},
                              "rootfs": {"type": "layers", "diff_ids": [layer["digest"]]}}).encode(),
                  "application/vnd.oci.image.config.v1+json")
    m = blob(json.dumps({"schemaVersion": 2, "config": config, "layers": [layer]}).encode(),
             "application/vnd.oci.image.manifest.v1+json")
    m["platform"] = {"os": "linux", "architecture": arch}
    manifests.append(m)
json.dump({"schemaVersion": 2, "manifests": manifests}, open(f"{out}/index.json", "w"))
open(f"{out}/oci-layout", "w").write('{"imageLayoutVersion": "1.0.0"}')
PY
"$MKDAXFS" -q "$WORK/multi-host.img" "oci:$WORK/multi-oci" || fail "multi-platform index, this machine's platform"
"$MKDAXFS" -q --platform linux/riscv64 "$WORK/multi-riscv.img" "oci:$WORK/multi-oci" || fail "--platform linux/riscv64"
[ "$("$DAXFS" cat "$WORK/multi-riscv.img" /arch)" = riscv64 ] || fail "--platform took another manifest"
[ "$("$DAXFS" cat "$WORK/multi-host.img" /arch)" = "$(dpkg --print-architecture)" ] || fail "the default is not this machine's platform"
refuse "absent platform in an index" "no manifest for platform linux/s390x" --platform linux/s390x "oci:$WORK/multi-oci"

# A hard link in one layer to a file of a lower layer (the helper's
# layouts are accepted when well formed)
# (layer 1 zstd-compressed, layer 2 gzip: what registries serve)
zstd -q "$WORK/hl1.tar" -o "$WORK/hl1.tar.zst"
gzip -c "$WORK/hl2.tar" > "$WORK/hl2.tar.gz"
make_oci_layout "$WORK/hl-oci" "$WORK/hl1.tar.zst" "$WORK/hl2.tar.gz"
"$MKDAXFS" -q "$WORK/hl.img" "oci:$WORK/hl-oci" || fail "a hard link to a lower layer's file was refused"
mount_image "$WORK/hl.img" "$WORK/m-hl"
[ "$(stat -c %i "$WORK/m-hl/data/f")" = "$(stat -c %i "$WORK/m-hl/data/g")" ] &&
  [ "$(stat -c %h "$WORK/m-hl/data/g")" = 2 ] || fail "hard link across layers: $(ls -li "$WORK/m-hl/data")"
echo PASS
