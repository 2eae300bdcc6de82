#!/usr/bin/env bash
# Several processes read the whole tree at once through one mount and through
# separate mounts of the same image; every one sees exactly the source.
source "$(dirname "$0")/lib.bash" "${1:-}"
mkdir -p "$WORK/src"
cp -a /usr/include/linux "$WORK/src/"
make_tree "$WORK/src/rich"
"$MKDAXFS" -q "$WORK/img" "$WORK/src"
want=$(tar --sort=name --numeric-owner -C "$WORK/src" -cf - . | md5sum)
mount_image "$WORK/img" "$WORK/m1"
mount_image "$WORK/img" "$WORK/m2" -o cache=kernel
pids=()
for i in 1 2 3 4; do
  for m in m1 m2; do
    (tar --sort=name --numeric-owner -C "$WORK/$m" -cf - . | md5sum > "$WORK/sum.$m.$i") & pids+=($!)
  done
done
for p in "${pids[@]}"; do wait "$p"; done
for f in "$WORK"/sum.*; do
  [ "$(cat "$f")" = "$want" ] || fail "$f: concurrent tar of the mount differs from the source"
done
echo PASS
