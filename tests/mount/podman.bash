# Helpers for the container image tests (sourced after lib.bash).
# podman runs with runc (crun cannot raise RLIMIT_NPROC on CI's machines)
# and lowered ulimits (runc cannot set podman's default nofile=1048576).
PODMAN_CMD=(podman --runtime runc)
PODMAN_RUN=(podman --runtime runc run --ulimit nofile=1024:1024 --ulimit nproc=1024:1024 --network none)
TAG_PREFIX=localhost/daxfs-test-$$
PODMAN_MOUNTED=
podman_cleanup() {
  [ -z "$PODMAN_MOUNTED" ] || podman image unmount "$PODMAN_MOUNTED" >/dev/null 2>&1 || true
  podman ps -aq --filter "label=daxfs-test=$$" | xargs -r podman rm -f >/dev/null 2>&1 || true
  podman images --format '{{.Repository}}:{{.Tag}}' | grep "^$TAG_PREFIX-" | xargs -r podman rmi -f >/dev/null 2>&1 || true
}
trap 'podman_cleanup; cleanup' EXIT

# make_test_images CTX NAME: a base image imported from a small busybox
# tree, and NAME built on it by three RUN steps that remove files (whiteouts),
# replace a directory (opaque), link files within and across layers, set an
# xattr and a mode. Sets APP_IMAGE and BASE_IMAGE.
make_test_images() {
  local ctx=$1 name=$2 base=$1/base
  mkdir -p "$base"/{bin,etc,tmp,opt/old/deep,usr/share/data}
  cp "$(command -v busybox)" "$base/bin/busybox"
  for a in sh ls cat rm mkdir ln echo chmod touch sleep head wc find md5sum; do ln -s busybox "$base/bin/$a"; done
  # setfattr with its libraries, for a RUN step that sets an xattr.
  cp -L "$(command -v setfattr)" "$base/bin/"
  for lib in $(ldd "$(command -v setfattr)" | grep -o '/[^ ]*'); do
    mkdir -p "$base$(dirname "$lib")"; cp -L "$lib" "$base$lib"
  done
  echo motd > "$base/etc/motd"
  echo a > "$base/etc/base-a"; ln "$base/etc/base-a" "$base/etc/base-a-link"
  setfattr -n user.origin -v base "$base/etc/base-a"
  echo old > "$base/opt/old/deep/file"; echo keep > "$base/opt/old/keep"
  head -c 300000 /dev/urandom > "$base/usr/share/data/blob"
  # BIG_MB: a larger file, for memory measurements.
  [ -z "${BIG_MB:-}" ] || head -c "${BIG_MB}M" /dev/urandom > "$base/usr/share/data/big"
  echo cross > "$base/usr/share/data/cross"
  mknod "$base/etc/null" c 1 3; mkfifo "$base/etc/fifo"
  BASE_IMAGE=$TAG_PREFIX-base:1
  APP_IMAGE=$TAG_PREFIX-$name:1
  tar --xattrs --xattrs-include='*' -C "$base" -c . | podman import -q - "$BASE_IMAGE" >/dev/null
  cat > "$ctx/Containerfile" <<EOF
FROM $BASE_IMAGE
RUN rm /etc/motd && rm -rf /opt/old/deep && mkdir -p /opt/app && echo v2 > /opt/app/version && \
    ln /usr/share/data/cross /opt/app/cross-a && ln /opt/app/cross-a /opt/app/cross-b && \
    ln -s ../app/version /opt/app/vlink && echo x > '/opt/app/name with spaces'
RUN rm -rf /opt/old && mkdir /opt/old && echo fresh > /opt/old/new && echo more >> /usr/share/data/blob
RUN setfattr -n user.layer -v three /opt/app/version && chmod 4755 /opt/app/version
CMD ["/bin/sh", "-c", "cat /opt/app/version"]
EOF
  "${PODMAN_CMD[@]}" build -q --network none --ulimit nofile=1024:1024 -t "$APP_IMAGE" "$ctx" >/dev/null
}

# One line per entry: what must match between two container root trees.
# No link counts (OverlayFS reports 1 for merged directories and a lower
# file's own count, which may include names a higher layer hid); instead the
# groups of names sharing an inode. Nor the root's own metadata: podman's
# mount shows its storage's top layer directory there (0555, made at pull
# time), where the image's layers say what the root is.
describe_container_tree() {
  (cd "$1" && find . -mindepth 1 -printf '%p|%y|%m|%U|%G|%T@|%l\n' | sort
   find . ! -type d -printf '%p|%s\n' | sort
   find . \( -type c -o -type b \) -exec stat -c '%n|%t|%T' {} + | sort
   getfattr -R -h -d -m - --absolute-names . 2>/dev/null | { grep -v '^$' || true; } | sort
   find . ! -type d -printf '%i|%p\n' | sort -t'|' -k1,1n -k2 |
     awk -F'|' '{ if ($1 == last) line = line " " $2; else { if (n > 1) print line; line = $2; n = 0 } n++; last = $1 }
                END { if (n > 1) print line }' | sort)
}

# make_oci_layout DIR LAYER.tar...: an OCI image layout with these
# (uncompressed) layers, for inputs podman would not make.
make_oci_layout() {
  python3 - "$@" <<'PY'
import hashlib, json, os, platform, sys
out, layers = sys.argv[1], sys.argv[2:]
os.makedirs(f"{out}/blobs/sha256", exist_ok=True)
def blob(data):
    d = hashlib.sha256(data).hexdigest()
    with open(f"{out}/blobs/sha256/{d}", "wb") as f:
        f.write(data)
    return {"digest": "sha256:" + d, "size": len(data)}
arch = {"x86_64": "amd64", "aarch64": "arm64"}.get(platform.machine(), platform.machine())
descs = []
for path in layers:
    with open(path, "rb") as f:
        descs.append(dict(blob(f.read()), mediaType="application/vnd.oci.image.layer.v1.tar"))
config = {"architecture": arch, "os": "linux", "config": {"Cmd": ["/bin/sh"]},
          "rootfs": {"type": "layers", "diff_ids": [d["digest"] for d in descs]}}
cdesc = dict(blob(json.dumps(config).encode()), mediaType="application/vnd.oci.image.config.v1+json")
manifest = {"schemaVersion": 2, "mediaType": "application/vnd.oci.image.manifest.v1+json",
            "config": cdesc, "layers": descs}
mdesc = dict(blob(json.dumps(manifest).encode()), mediaType="application/vnd.oci.image.manifest.v1+json")
with open(f"{out}/index.json", "w") as f:
    json.dump({"schemaVersion": 2, "manifests": [mdesc]}, f)
with open(f"{out}/oci-layout", "w") as f:
    f.write('{"imageLayoutVersion": "1.0.0"}')
PY
}
