#!/usr/bin/env bash
# Runs every side-by-side benchmark in one go and prints Markdown suitable
# for docs/PERFORMANCE.md. Takes about 15 minutes; run as root on an idle
# machine (memory numbers come from /proc/meminfo).
set -euo pipefail
cd "$(dirname "$0")"
echo "## Build time"; echo; ./compare_build.sh; echo
echo "## Mounted workloads"; echo; ./compare_mounts.sh; echo
echo "## The EROFS view"; echo; ./compare_erofs_view.sh; echo
echo "## Memory of $((${N:-8})) readers"; echo; ./memory_sharing.sh; echo
echo "## Region latency"; echo; ./region_latency.sh; echo
echo "## Library micro-benchmarks"; echo; echo '```'
../build/bench/daxfs_bench --benchmark_min_time=0.5 2>/dev/null | grep -E '^(BM_|Benchmark|-)'
echo '```'
