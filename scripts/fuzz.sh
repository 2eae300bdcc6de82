#!/usr/bin/env bash
# Builds the libFuzzer target with clang + ASan/UBSan and fuzzes the image
# parser for SECONDS (default 60). New crash inputs land in fuzz/regressions/
# (commit them: the test suite replays every file there).
set -euo pipefail
cd "$(dirname "$0")/.."
SECONDS_TO_RUN=${1:-60}
BUILD=build-fuzz
CC=clang CXX=clang++ cmake -S . -B $BUILD -G Ninja -DDAXFS_BUILD_FUZZ=ON -DDAXFS_BUILD_TESTS=OFF \
  -DDAXFS_BUILD_BENCHMARKS=OFF -DDAXFS_BUILD_FUSE=OFF -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
ninja -C $BUILD fuzz_image
corpus=$(mktemp -d)
trap 'rm -rf "$corpus"' EXIT
cp fuzz/corpus/* "$corpus/"
mkdir -p fuzz/regressions
$BUILD/fuzz/fuzz_image -max_total_time="$SECONDS_TO_RUN" -max_len=65536 -timeout=10 \
  -artifact_prefix=fuzz/regressions/ "$corpus" fuzz/regressions 2>&1 | tail -5
