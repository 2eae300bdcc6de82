#!/usr/bin/env bash
# `daxfs serve` holds an image in a sealed memfd; a mount and a library
# client in other processes receive it over the socket and see the tree.
source "$(dirname "$0")/lib.bash" "${1:-}"
make_tree "$WORK/src"
"$MKDAXFS" -q "$WORK/img" "$WORK/src"
"$DAXFS" serve -q "$WORK/img" "$WORK/sock" & server=$!
trap 'kill $server 2>/dev/null || true; cleanup' EXIT
for _ in $(seq 50); do [ -S "$WORK/sock" ] && break; sleep 0.1; done
[ -S "$WORK/sock" ] || fail "server socket did not appear"
rm "$WORK/img"   # clients must not need the file any more
"$DAXFS" info "memfd:$WORK/sock" | grep -q "inodes:" || fail "library client"
mkdir -p "$WORK/m"
"$MOUNT" --from-socket "$WORK/sock" "$WORK/m"
MOUNTS=("$WORK/m")
diff -r --no-dereference -x fifo -x null -x loop9 "$WORK/src" "$WORK/m" || fail "mounted memfd differs"
umount "$WORK/m"
kill -TERM $server; wait $server || true
[ -e "$WORK/sock" ] && fail "socket left behind after SIGTERM"
echo PASS
