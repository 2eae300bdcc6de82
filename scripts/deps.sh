#!/usr/bin/env bash
# Installs what daxfs needs to build and test (Debian 12, as root).
# Without arguments only missing packages are installed; --update always
# refreshes the package lists and installs (what CI does).
set -euo pipefail
if [ "$(id -u)" != 0 ]; then echo "deps.sh: run as root (apt-get)" >&2; exit 1; fi
need=(build-essential cmake ninja-build pkg-config libfuse3-dev fuse3 libcli11-dev libgtest-dev
      libbenchmark-dev libxxhash-dev libarchive-dev libssl-dev clang libclang-rt-14-dev attr python3 tar gzip
      bc liburing-dev pybind11-dev python3-dev python3-numpy python3-pytest python3-torch
      qemu-system-x86 busybox-static cpio binutils xz-utils zstd lz4 erofs-utils
      nlohmann-json3-dev podman runc skopeo scdoc
      debhelper dh-python lintian debootstrap dpkg-dev)
missing=()
for p in "${need[@]}"; do dpkg -s "$p" >/dev/null 2>&1 || missing+=("$p"); done
if [ "${1:-}" = --update ] || [ ${#missing[@]} -gt 0 ]; then
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${need[@]}"
fi
