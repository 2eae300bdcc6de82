#!/usr/bin/env bash
# The whole test suite: dependencies, a -Werror build, all unit and FUSE mount
# tests, the same again under AddressSanitizer + UBSan, a bounded fuzz run,
# and the Debian packages tried in a clean root (scripts/package-test.sh).
# Usage: scripts/test.sh [FUZZ_SECONDS]   (run as root for the mount tests)
set -euo pipefail
cd "$(dirname "$0")/.."
FUZZ_SECONDS=${1:-60}
scripts/deps.sh
scripts/build.sh
(cd build && ctest --output-on-failure -j2)

echo "== AddressSanitizer + UBSan build =="
cmake -S . -B build-asan -G Ninja -DDAXFS_WERROR=ON -DDAXFS_SANITIZE=address,undefined \
  -DDAXFS_BUILD_BENCHMARKS=OFF -DCMAKE_BUILD_TYPE=Debug >/dev/null
ninja -C build-asan
(cd build-asan && ASAN_OPTIONS=detect_leaks=1 ctest --output-on-failure -j2)

echo "== fuzzing for ${FUZZ_SECONDS}s =="
scripts/fuzz.sh "$FUZZ_SECONDS"   # fails if libFuzzer finds a crash

echo "== Debian packages: built, lintian, installed and used in a clean debootstrap root =="
scripts/package-test.sh
echo "ALL TESTS PASSED"
