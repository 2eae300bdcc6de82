#!/usr/bin/env bash
# Branch mounts in independent kernels (issue: many kernels, one region):
# one branch region in a host tmpfs file is the ivshmem BAR of 3 guests,
# each running daxfs-mount of it in its own kernel.
#  1. The branchfs control protocol and the sibling rule across kernels:
#     guests s1 and s2 each make a child of main with the CREATE ioctl
#     through their own mount (fstype=branchfs: first-wins siblings), write
#     4 files into it and commit by ioctl at the same moment (a barrier in
#     the BAR): exactly one commit wins, the other gets ESTALE (the
#     client's ConflictError) and aborts; both kernels' mounts then show
#     the winner's files in main and not the loser's, as the host does.
#  2. A paused kernel is fenced: guest p1's mount of branch pb holds its
#     writer lease; the host stops the whole VM (SIGSTOP of its qemu),
#     writes to pb itself (it watches the paused holder for the lease
#     timeout, then takes the lease over), resumes the VM: the guest's
#     next write fails with ESTALE and nothing it did after the takeover
#     is in pb; the host's write and the guest's first one are.
# Afterwards daxfs branch check is clean.
# Usage: mounts.sh [BUILD_DIR]; exit 0 PASS, 1 FAIL, 77 SKIP.
set -euo pipefail
source "$(dirname "$0")/vm.bash" "${1:-}"
export LC_ALL=C
SIZE=64M
TIMEOUT=2
WORDS=$(( (64 << 20) - 4096 ))   # barrier words: the BAR's last page, past the region
mk_prepare
mk_initramfs_with_ctl
shm=$(mk_shm_file region $SIZE)
mk_branch_region "$shm" 32M $TIMEOUT pb

mk_boot s1 "$shm" $SIZE branch_mount role=sibling words=$WORDS
mk_boot s2 "$shm" $SIZE branch_mount role=sibling words=$WORDS
mk_boot p1 "$shm" $SIZE branch_mount role=pause branch=pb words=$WORDS

# --- 2. pause p1 while its mount holds pb's lease --------------------------
[ "$("$MK_CTL_HOST" wait "$shm" $((WORDS + 16)) 1 300)" = OK ] || { mk_tail p1; fail "p1 never wrote through its mount"; }
mk_kill p1 STOP
t0=$EPOCHREALTIME
echo "written by the host" | "$BUILD/daxfs" branch write "$shm" pb /taken ||
  { mk_kill p1 CONT; fail "the host could not take pb's lease over from the paused guest"; }
takeover=$(echo "$EPOCHREALTIME - $t0" | bc)
mk_kill p1 CONT
"$MK_CTL_HOST" add "$shm" $((WORDS + 16)) 1 >/dev/null

for g in s1 s2 p1; do mk_wait $g 400 || fail "guest $g failed"; done

# --- checks ----------------------------------------------------------------
"$BUILD/daxfs" branch check -q "$shm" || fail "daxfs branch check after the guests"
late=$(mk_result p1 late)
[[ $late == "failed: "*"Stale file handle"* ]] || fail "p1's write after the takeover: $late (want ESTALE)"
[ "$(mk_result p1 f0)" = one ] || fail "p1 reads f0 as '$(mk_result p1 f0)' after resuming"
[ "$("$BUILD/daxfs" branch cat "$shm" pb /f0)" = one ] || fail "pb lost the guest's write made before the pause"
[ "$("$BUILD/daxfs" branch cat "$shm" pb /taken)" = "written by the host" ] || fail "pb lost the host's write"
if "$BUILD/daxfs" branch cat "$shm" pb /late >/dev/null 2>&1; then fail "the fenced guest's write reached pb"; fi
echo "pause: the host took pb's lease over from the paused guest in $takeover s (lease timeout $TIMEOUT s);" \
     "the resumed guest's write failed with ESTALE; pb holds what it should"
"$BUILD/daxfs" branch commit "$shm" pb >/dev/null || fail "commit of pb after the takeover"

winner="" loser=""
for g in s1 s2; do
  case $(mk_result $g commit) in
    OK) winner="$winner$g" ;;
    ESTALE) loser="$loser$g"; [ "$(mk_result $g abort)" = OK ] || fail "$g: abort after losing: $(mk_result $g abort)" ;;
    *) fail "$g: commit answered '$(mk_result $g commit)'" ;;
  esac
done
[ ${#winner} = 2 ] && [ ${#loser} = 2 ] || fail "first-wins siblings: winners '$winner', losers '$loser' (want one each)"
want="$winner-1 $winner-2 $winner-3 $winner-4 "
for g in s1 s2; do
  [ "$(mk_result $g main)" = "$want" ] || fail "$g's mount shows main's files as '$(mk_result $g main)', want '$want'"
  # (pb, the host's, is still active then: the host commits it afterwards.)
  [ "$(mk_result $g branches)" = "@pb " ] || fail "$g's mount lists the branches '$(mk_result $g branches)', want only @pb"
done
host=$("$BUILD/daxfs" branch ls "$shm" main / | awk '{print $NF}' | grep -- '-[0-9]$' | sort | tr '\n' ' ')
[ "$host" = "$want" ] || fail "the host sees main's files as '$host', want '$want'"
for k in 1 2 3 4; do
  [ "$("$BUILD/daxfs" branch cat "$shm" main "/$winner-$k")" = "$winner file $k" ] || fail "main's /$winner-$k is wrong"
done
"$BUILD/daxfs" branch check -q "$shm" || fail "daxfs branch check at the end"
echo "siblings: $winner's commit won through its mount, $loser's got ESTALE and aborted;" \
     "both kernels' mounts and the host show exactly $winner's files in main"
echo PASS
