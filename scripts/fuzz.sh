#!/usr/bin/env bash
# Builds the libFuzzer targets with clang + ASan/UBSan and fuzzes for SECONDS
# in all (default 60), split between the image parser (fuzz_image), the
# builder's archive input (fuzz_archive), the safetensors header parser
# (fuzz_safetensors), branch regions (fuzz_branches) and container images
# as OCI layouts (fuzz_container). New crash inputs
# land in fuzz/regressions*/ (commit them: the test suite replays every file
# there).
set -euo pipefail
cd "$(dirname "$0")/.."
SECONDS_TO_RUN=${1:-60}
BUILD=build-fuzz
CC=clang CXX=clang++ cmake -S . -B $BUILD -G Ninja -DDAXFS_BUILD_FUZZ=ON -DDAXFS_BUILD_TESTS=OFF \
  -DDAXFS_BUILD_BENCHMARKS=OFF -DDAXFS_BUILD_FUSE=OFF -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
ninja -C $BUILD fuzz_image fuzz_archive fuzz_safetensors fuzz_branches fuzz_container
work=$(mktemp -d)
trap 'rm -rf "$work" /tmp/daxfs-fuzz-archive.* /tmp/daxfs-fuzz-container.*' EXIT
# The total split five ways (the first targets get the remainder).
fifth=$(( SECONDS_TO_RUN / 5 ))
extra=$(( SECONDS_TO_RUN - 5 * fifth ))
# fuzz TARGET CORPUS REGRESSIONS MAX_LEN SECONDS
fuzz() {
  [ "$5" -gt 0 ] || return 0
  mkdir -p "$work/$1" "$3"
  cp "$2"/* "$work/$1/"
  echo "== $1 for ${5}s =="
  $BUILD/fuzz/$1 -max_total_time="$5" -max_len="$4" -timeout=10 -rss_limit_mb=4096 \
    -artifact_prefix="$3/" "$work/$1" "$3" 2>&1 | tail -5
}
fuzz fuzz_image fuzz/corpus fuzz/regressions 65536 $(( fifth + (extra > 0) ))
fuzz fuzz_archive fuzz/corpus_archive fuzz/regressions_archive 65536 $(( fifth + (extra > 1) ))
fuzz fuzz_safetensors fuzz/corpus_safetensors fuzz/regressions_safetensors 65536 $(( fifth + (extra > 2) ))
fuzz fuzz_container fuzz/corpus_container fuzz/regressions_container 65536 $(( fifth + (extra > 3) ))
# Branch seeds are regions without their trailing zeros (about 200 KiB).
fuzz fuzz_branches fuzz/corpus_branch fuzz/regressions_branch 262144 "$fifth"
