#!/usr/bin/env bash
# Configures and builds into build/ (Release with debug info, -Werror).
set -euo pipefail
cd "$(dirname "$0")/.."
cmake -S . -B build -G Ninja -DDAXFS_WERROR=ON >/dev/null
ninja -C build
