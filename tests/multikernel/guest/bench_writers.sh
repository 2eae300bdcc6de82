# Guest side of bench/multikernel_writers.sh: MK_WRITERS writer processes,
# MK_ROUNDS rounds each, on the shared branch region ($REGION, the BAR);
# prints the benchmark's line as MK-RESULT line=...
set -u
out=$(daxfs_branch_writers run "$REGION" "$MK_WRITERS" "$MK_ROUNDS" "$MK_NAME" 2>/tmp/err) || {
  echo "MK-INFO bench failed: $(cat /tmp/err)"; exit 1; }
echo "MK-RESULT line=$out"
