#!/usr/bin/env bash
# Builds the Debian packages with Debian's own tooling (dpkg-buildpackage,
# debhelper), checks them with lintian (no errors allowed), installs them
# into a clean Debian 12 root made with debootstrap, and there runs, with
# the installed binaries only: the README's demo (an image of a real
# directory, mounted, read), a mount from an fstab line (mount -t
# fuse.daxfs), `man mkdaxfs`, `import daxfs` with /usr/bin/python3, and an
# out-of-tree C++ program built both with find_package(daxfs) and with
# pkg-config that reads a file zero-copy.
# Usage (root, network to Debian's archive): scripts/package-test.sh [WORKDIR]
# (WORKDIR defaults to build-deb/; REUSE_DEBS=1: test the packages already
# in WORKDIR instead of building; the debootstrap root is kept for reuse.)
# The packages are built from the working tree, uncommitted changes to
# tracked files included. scripts/test.sh runs this as its last stage.
set -euo pipefail
START=$SECONDS
SRC=$(cd "$(dirname "$0")/.." && pwd)
T=$(mkdir -p "${1:-$SRC/build-deb}" && cd "${1:-$SRC/build-deb}" && pwd)
# The Debian mirror and proxy this machine's apt uses (a CI machine may
# reach the archive only through them); MIRROR overrides.
apt_mirror() {
  local f
  for f in /etc/apt/sources.list.d/*.sources; do
    [ -f "$f" ] || continue
    # deb822: the URIs of the first stanza whose suites include bookworm
    awk 'BEGIN { RS = ""; FS = "\n" }
         /(^|\n)Suites:[^\n]*bookworm( |\n|$)/ && /(^|\n)Types:[^\n]*deb( |\n|$)/ {
           for (i = 1; i <= NF; i++) if ($i ~ /^URIs:/) { split($i, u, " "); print u[2]; exit } }' "$f"
  done
  cat /etc/apt/sources.list /etc/apt/sources.list.d/*.list 2>/dev/null |
    awk '$1 == "deb" { for (i = 2; i <= NF; i++) if ($i !~ /^\[/ && $i !~ /\]$/) { if ($(i + 1) == "bookworm") print $i; break } }'
  return 0
}
MIRROR=${MIRROR:-$(apt_mirror 2>/dev/null | head -n 1 || true)}
MIRROR=${MIRROR:-http://deb.debian.org/debian}
eval "$(apt-config shell APT_PROXY Acquire::http::Proxy 2>/dev/null)"
[ -z "${APT_PROXY:-}" ] || export http_proxy=$APT_PROXY
[ "$(id -u)" = 0 ] || { echo "package-test.sh: run as root (debootstrap, chroot, mounts)" >&2; exit 1; }
need=(debhelper dh-python lintian debootstrap dpkg-dev)
missing=(); for p in "${need[@]}"; do dpkg -s "$p" >/dev/null 2>&1 || missing+=("$p"); done
[ ${#missing[@]} = 0 ] || DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}"
# In a mount namespace of its own: the root's mounts (/dev, /proc, apt's
# cache) vanish with this process however it ends, so a killed run leaves
# no host directory bind-mounted inside the tree for an rm -rf to reach.
if [ -z "${DAXFS_PACKAGE_TEST_NS:-}" ]; then
  exec env DAXFS_PACKAGE_TEST_NS=1 unshare --mount --propagation private "$0" "$@"
fi

R=$T/root
cleanup() {
  [ -z "${boot_pid:-}" ] || kill -- "-$boot_pid" 2>/dev/null || true
  for m in "$R/mnt/app" "$R/mnt/fstab" "$R/var/cache/apt/archives" "$R/proc" "$R/sys" "$R/dev/pts" "$R/dev"; do
    mountpoint -q "$m" 2>/dev/null && umount -l "$m"
  done
  return 0
}
trap cleanup EXIT
cleanup
# The clean root is made meanwhile (network and disk, while the build
# uses the CPUs), with the packages apt already fetched for this machine.
boot_pid=
if [ ! -x "$R/usr/bin/apt-get" ]; then
  if grep -qF " $R/" /proc/self/mountinfo; then
    echo "FAIL: something is still mounted under $R (an older run?): unmount it first" >&2; exit 1
  fi
  rm -rf --one-file-system "$R"
  # (its own process group, so that a failed build stops all of it)
  setsid debootstrap --variant=minbase --cache-dir=/var/cache/apt/archives bookworm "$R" "$MIRROR" \
    > "$T/debootstrap.log" 2>&1 &
  boot_pid=$!
fi
if [ "${REUSE_DEBS:-0}" = 1 ] && ls "$T"/daxfs_*.deb >/dev/null 2>&1; then
  echo "== reusing the packages in $T =="
else
  rm -rf "$T/src" "$T"/*.deb "$T"/*.changes "$T"/*.buildinfo
  echo "== dpkg-buildpackage (a clean copy of the working tree) =="
  mkdir -p "$T/src"
  # The committed tree with the uncommitted changes to tracked files; or,
  # where git cannot read the tree, the tree as it is without build outputs.
  if tree=$(git -C "$SRC" stash create 2>/dev/null) &&
     git -C "$SRC" archive --format=tar -o "$T/src.tar" "${tree:-HEAD}" 2>/dev/null; then
    tar -x -C "$T/src" -f "$T/src.tar" && rm -f "$T/src.tar"
  else
    tar -C "$SRC" --exclude='./build*' --exclude=./.git --exclude='./obj-*' -cf - . | tar -x -C "$T/src"
  fi
  (cd "$T/src" && DEB_BUILD_OPTIONS="nocheck noddebs parallel=$(nproc)" dpkg-buildpackage -b -us -uc \
    > "$T/build.log" 2>&1) || { tail -30 "$T/build.log"; echo "FAIL: dpkg-buildpackage" >&2; exit 1; }
  rm -rf "$T/src"
fi
ls "$T"/*.deb

echo "== lintian (at $((SECONDS - START)) s) =="
lintian --tag-display-limit 0 "$T"/daxfs_*.changes > "$T/lintian.log" 2>&1 || true
cat "$T/lintian.log"
if grep -q '^E: ' "$T/lintian.log"; then echo "FAIL: lintian reports errors" >&2; exit 1; fi

echo "== a clean Debian 12 root (debootstrap) (at $((SECONDS - START)) s) =="
if [ -n "$boot_pid" ]; then
  wait "$boot_pid" || { tail -20 "$T/debootstrap.log"; echo "FAIL: debootstrap" >&2; exit 1; }
  boot_pid=
fi
cp /etc/resolv.conf "$R/etc/resolv.conf"
[ -z "${APT_PROXY:-}" ] || echo "Acquire::http::Proxy \"$APT_PROXY\";" > "$R/etc/apt/apt.conf.d/01proxy"
mount --bind /dev "$R/dev"; mount -t devpts devpts "$R/dev/pts" 2>/dev/null || true
mount -t proc proc "$R/proc"; mount -t sysfs sysfs "$R/sys"
mount --bind /var/cache/apt/archives "$R/var/cache/apt/archives"
rm -rf "$R/debs" && mkdir -p "$R/debs" && cp "$T"/*.deb "$R/debs/" && rm -f "$R"/debs/*-dbgsym_*.deb
rm -rf "$R/consumer" && cp -r "$SRC/tests/install/consumer" "$R/consumer"
in_root() { chroot "$R" /usr/bin/env -i PATH=/usr/sbin:/usr/bin:/sbin:/bin HOME=/root LANG=C.UTF-8 "$@"; }
in_root apt-get update -qq
debs=(); for f in "$R"/debs/*.deb; do debs+=("/debs/$(basename "$f")"); done
# A reused root: what an earlier run installed goes first (package names change).
old=$(in_root dpkg-query -W -f '${Package}\n' 2>/dev/null | grep -E '^(daxfs|libdaxfs.*|python3-daxfs)$' || true)
[ -z "$old" ] || in_root dpkg --purge $old > /dev/null
in_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
  "${debs[@]}" man-db g++ cmake ninja-build pkg-config > "$T/apt.log" 2>&1 || { tail -20 "$T/apt.log"; exit 1; }

echo "== the installed tools, library and module (at $((SECONDS - START)) s) =="
in_root bash -euxo pipefail -c '
  mkdir -p /srv/demo /mnt/app /mnt/fstab
  cp -a /usr/share/doc/. /srv/demo/
  # The README demo: an image of a real directory, mounted, read.
  mkdaxfs /dev/shm/demo.img /srv/demo
  daxfs-mount /dev/shm/demo.img /mnt/app
  diff -r /srv/demo /mnt/app
  umount /mnt/app
  # mount(8) with an fstab line.
  grep -q " /mnt/fstab " /etc/fstab || echo "/dev/shm/demo.img /mnt/fstab fuse.daxfs ro,allow_other 0 0" >> /etc/fstab
  mount /mnt/fstab
  grep -q " /mnt/fstab fuse.daxfs " /proc/mounts
  cmp /srv/demo/daxfs/copyright /mnt/fstab/daxfs/copyright
  umount /mnt/fstab
  fsck.daxfs /dev/shm/demo.img
  man -P cat mkdaxfs | grep -q "build a daxfs image"
  man -w mount.fuse.daxfs
  /usr/bin/python3 -c "import daxfs, sys
with daxfs.open(\"/dev/shm/demo.img\") as img:
    view = img.view(\"/daxfs/copyright\")  # a memoryview of the shared mapping
    sys.stdout.buffer.write(bytes(view))
    view.release()" | cmp - /srv/demo/daxfs/copyright
  # An out-of-tree C++ program, both ways.
  rm -rf /tmp/cb /tmp/pc
  cmake -S /consumer -B /tmp/cb -G Ninja >/dev/null && cmake --build /tmp/cb >/dev/null
  /tmp/cb/daxfs_consumer /dev/shm/demo.img /daxfs/copyright | cmp - /srv/demo/daxfs/copyright
  g++ -std=c++20 -o /tmp/pc /consumer/main.cc $(pkg-config --cflags --libs daxfs)
  /tmp/pc /dev/shm/demo.img /daxfs/copyright | cmp - /srv/demo/daxfs/copyright
  rm -f /dev/shm/demo.img
'
echo "PASS: packages built, lintian clean of errors, installed and working in a clean root ($((SECONDS - START)) s)"
