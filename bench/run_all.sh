#!/usr/bin/env bash
# Runs every side-by-side benchmark in one go and prints Markdown suitable
# for docs/PERFORMANCE.md. Takes about 20 minutes; run as root on an idle
# machine (memory numbers come from /proc/meminfo). The output is also kept
# in bench/results/run.md, every table as CSV in bench/results/csv/, and
# each table drawn to docs/charts/ (bench/plot.py; needs python3-matplotlib).
set -euo pipefail
cd "$(dirname "$0")"
mkdir -p results
{
echo "## Build time"; echo; ./compare_build.sh; echo
echo "## Mounted workloads"; echo; ./compare_mounts.sh; echo
echo "## The EROFS view (#22)"; echo; ./compare_erofs_view.sh; echo
echo "## Memory of N readers"; echo; ./memory_sharing.sh; echo
echo "## Image size: compact images (#10)"; echo; ./compare_image_size.sh both; echo
echo "## Container images (#23)"; echo; ./compare_containers.sh; echo
echo "## Region latency"; echo; ./region_latency.sh; echo
echo "## Library micro-benchmarks"; echo; echo '```'
../build/bench/daxfs_bench --benchmark_min_time=0.5 2>/dev/null | grep -E '^(BM_|Benchmark|-)'
echo '```'
} | tee results/run.md
rm -rf results/csv
/usr/bin/python3 md_tables.py results/run.md results/csv > /dev/null
if /usr/bin/python3 -c 'import matplotlib' 2>/dev/null; then
  rm -f ../docs/charts/*.png
  /usr/bin/python3 plot.py ../docs/charts results/csv/*.csv > /dev/null
else
  echo "(no python3-matplotlib: charts not redrawn)" >&2
fi
