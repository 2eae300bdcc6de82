# Guest side of kills.sh: rounds of branch work on the shared region
# ($REGION) until the host's stop word (MK_WORDS) is set, or until the host
# kills this whole VM (a victim). Round r: create MK_NAME-r, write MK_FILES
# files /MK_NAME-r-1.. into it, commit it (every third round: abort), every
# fifth round a gc. Prints
#   MK-INFO working                      once the first branch exists
#   MK-INFO ack commit|abort NAME        for each acknowledged end
#   MK-INFO slow OP SECONDS              for a call slower than MK_SLOW s
#   MK-RESULT maxop=SECONDS rounds=N fails=N   at the stop
set -u
now() { cut -d' ' -f1 /proc/uptime; }
max=0 fails=0 r=0
# run OP ARGS...: runs daxfs, timing it; returns its status.
run() {
  local t0 t1 d rc
  t0=$(now)
  daxfs "$@" >/dev/null 2>/tmp/err
  rc=$?
  t1=$(now)
  d=$(awk -v a="$t0" -v b="$t1" 'BEGIN {print b - a}')
  max=$(awk -v a="$max" -v b="$d" 'BEGIN {print (b > a) ? b : a}')
  if awk -v d="$d" -v s="$MK_SLOW" 'BEGIN {exit !(d > s)}'; then echo "MK-INFO slow $1 $2 $d"; fi
  return $rc
}
while [ "$(mk_ctl get "$REGION_DEV" "$MK_WORDS")" = 0 ]; do
  r=$((r + 1))
  b="$MK_NAME-$r"
  run branch create "$REGION" "$b" || { echo "MK-INFO create $b failed: $(cat /tmp/err)"; fails=$((fails + 1)); continue; }
  [ $r = 1 ] && echo "MK-INFO working"
  ok=1
  for k in $(seq 1 "$MK_FILES"); do
    echo "$b file $k" > /tmp/data
    run branch write "$REGION" "$b" "/$b-$k" < /tmp/data || { echo "MK-INFO write $b/$k failed: $(cat /tmp/err)"; ok=0; break; }
  done
  if [ $ok = 1 ] && [ $((r % 3)) != 0 ]; then
    if run branch commit "$REGION" "$b"; then echo "MK-INFO ack commit $b"
    else echo "MK-INFO commit $b failed: $(cat /tmp/err)"; fails=$((fails + 1)); fi
  else
    if run branch abort "$REGION" "$b"; then echo "MK-INFO ack abort $b"
    else echo "MK-INFO abort $b failed: $(cat /tmp/err)"; fails=$((fails + 1)); fi
  fi
  [ $((r % 5)) != 0 ] || run branch gc "$REGION" || echo "MK-INFO gc failed: $(cat /tmp/err)"
done
echo "MK-RESULT maxop=$max"
echo "MK-RESULT rounds=$r"
echo "MK-RESULT fails=$fails"
[ "$fails" = 0 ]
