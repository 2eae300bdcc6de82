# Guest side of branches.sh: MK_ROUNDS rounds on the shared branch region
# ($REGION, the BAR): create a branch of main (or of MK_PARENT), write
# MK_FILES files into it, then commit it (every third round: abort), and a
# gc now and then. Each acknowledged commit or abort is printed as
#   MK-INFO ack commit|abort NAME
# so that the host can check that exactly those are in main.
set -u
p=${MK_PARENT:-main}
fails=0
for r in $(seq 1 "$MK_ROUNDS"); do
  b="$MK_NAME-$r"
  daxfs branch create "$REGION" "$b" --parent "$p" >/dev/null 2>/tmp/err || {
    echo "MK-INFO create $b failed: $(cat /tmp/err)"; fails=$((fails + 1)); continue; }
  ok=1
  for k in $(seq 1 "$MK_FILES"); do
    echo "$b file $k" | daxfs branch write "$REGION" "$b" "/$b-$k" 2>/tmp/err || {
      echo "MK-INFO write $b/$k failed: $(cat /tmp/err)"; ok=0; break; }
  done
  if [ $ok = 1 ] && [ $((r % 3)) != 0 ]; then
    if daxfs branch commit "$REGION" "$b" >/dev/null 2>/tmp/err; then
      echo "MK-INFO ack commit $b"
    else
      echo "MK-INFO commit $b failed: $(cat /tmp/err)"; fails=$((fails + 1))
      daxfs branch abort "$REGION" "$b" 2>/dev/null && echo "MK-INFO ack abort $b"
    fi
  else
    daxfs branch abort "$REGION" "$b" >/dev/null 2>/tmp/err && echo "MK-INFO ack abort $b" ||
      { echo "MK-INFO abort $b failed: $(cat /tmp/err)"; fails=$((fails + 1)); }
  fi
  [ $((r % 4)) != 0 ] || daxfs branch gc "$REGION" >/dev/null 2>&1 || true
done
echo "MK-RESULT fails=$fails"
[ "$fails" = 0 ]
