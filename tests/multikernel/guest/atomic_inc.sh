# Guest side of smoke.sh's first scenario: MK_COUNT increments of the shared
# word, after a barrier of MK_GUESTS guests (MK_MODE=plain: non-atomic).
set -e
start=$(cut -d' ' -f1 /proc/uptime)
atomic_inc "$REGION_DEV" "$MK_GUESTS" "$MK_COUNT" "${MK_MODE:-atomic}"
echo "MK-RESULT seconds=$(awk -v s="$start" '{print $1 - s}' /proc/uptime)"
