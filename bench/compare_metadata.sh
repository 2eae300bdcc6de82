#!/usr/bin/env bash
# Metadata round trips (#13), one run, the same trees for every peer:
# `ls -lR` and `find`, warm (after one run, best of 3) and cold (after
# drop_caches, best of 3), on a tree without xattrs and on the same tree with
# some (user xattrs on 1% of the files, a POSIX ACL on 1% of the
# directories), for daxfs-mount cache=direct and cache=kernel, kernel EROFS
# (loop device on tmpfs, as an image in shared memory must be mounted) and
# squashfuse_ll (and cache=direct served by one thread, -s). Then the FUSE requests daxfs-mount receives, by opcode, for
# a cold `find` and a warm `ls -lR` (from its -d output).
#
# The tree is /usr/share + /usr/include + /usr/bin copied with
# `cp --attributes-only`: every name, mode, owner and time, no file data
# (metadata workloads do not read data; the images stay small).
# TREE=1m: 1,000 directories x 1,000 empty files instead, bare only (no
# xattr variant). PEERS="erofs daxfs-direct ..." picks the peers.
source "$(dirname "$0")/common.bash"
TREE=${TREE:-system}
M=$SHM/meta-$TREE; SRC=$M/src; IMG=$M/img; MNT=$M/mnt
if [ ! -f "$M/.staged" ]; then
  rm -rf "$M"; mkdir -p "$SRC"
  if [ "$TREE" = 1m ]; then
    python3 - "$SRC" <<'PY'
import os, sys
for d in range(1000):
    p = os.path.join(sys.argv[1], f"d{d:03}")
    os.mkdir(p)
    for f in range(1000):
        os.close(os.open(os.path.join(p, f"file-{f:04}"), os.O_CREAT | os.O_WRONLY, 0o644))
PY
  else
    cp -a --attributes-only /usr/share /usr/include /usr/bin "$SRC/"
  fi
  touch "$M/.staged"
fi
mkdir -p "$IMG" "$MNT"
cleanup() { for m in "$MNT"/*; do umount "$m" 2>/dev/null || umount -l "$m" 2>/dev/null || true; done; }
trap cleanup EXIT
make_images() {  # TAG
  "$BUILD/mkdaxfs" -q "$IMG/$1.daxfs" "$SRC"
  mkfs.erofs "$IMG/$1.erofs" "$SRC" >/dev/null 2>&1
  if [[ " ${peers[*]} " = *" squashfuse_ll "* ]]; then
    mksquashfs "$SRC" "$IMG/$1.sqfs" -no-progress -noappend -quiet >/dev/null
  fi
}
peers=(erofs daxfs-direct daxfs-kernel daxfs-direct-s squashfuse_ll)
[ -z "${PEERS:-}" ] || read -r -a peers <<< "$PEERS"
# BEFORE=path/to/an/older/daxfs-mount adds it as peer daxfs-before (cache=direct).
[ -z "${BEFORE:-}" ] || peers+=(daxfs-before)
# Without xattrs first, then the same tree with some.
if [ "$TREE" != 1m ]; then
  find "$SRC" -exec setfattr -x user.bench {} + 2>/dev/null || true
  find "$SRC" -type d -exec setfattr -x system.posix_acl_access {} + 2>/dev/null || true
fi
make_images bare
trees=(bare)
n_x=0
if [ "$TREE" != 1m ]; then
trees+=(xattr)
acl=0x0200000001000700ffffffff020005003930000004000500ffffffff10000500ffffffff20000500ffffffff
find "$SRC" -type f | awk 'NR % 100 == 0' | xargs -d '\n' setfattr -n user.bench -v 1
find "$SRC" -mindepth 1 -type d | awk 'NR % 100 == 0' | xargs -d '\n' -n1 setfattr -n system.posix_acl_access -v "$acl"
make_images xattr
n_x=$(getfattr -R -h -m - --absolute-names "$SRC" 2>/dev/null | grep -c '^# file' || true)
fi

mount_peer() {  # PEER TAG DIR [extra daxfs-mount args]
  local p=$1 t=$2 d=$3; shift 3; mkdir -p "$d"
  case $p in
    erofs) mount -t erofs -o ro,loop "$IMG/$t.erofs" "$d" ;;
    daxfs-direct) "$BUILD/daxfs-mount" "$IMG/$t.daxfs" "$d" -o cache=direct "$@" ;;
    daxfs-kernel) "$BUILD/daxfs-mount" "$IMG/$t.daxfs" "$d" -o cache=kernel "$@" ;;
    daxfs-before) "$BEFORE" "$IMG/$t.daxfs" "$d" -o cache=direct "$@" ;;
    daxfs-direct-s) "$BUILD/daxfs-mount" -s "$IMG/$t.daxfs" "$d" -o cache=direct "$@" ;;
    squashfuse_ll) squashfuse_ll "$IMG/$t.sqfs" "$d" ;;
  esac
}
w_ls() { ls -lR "$1" >/dev/null; }
w_find() { find "$1" >/dev/null; }
cold() { drop_caches; seconds "$@"; }
best_cold() {
  local best=""
  for _ in 1 2 3; do
    local t; t=$(cold "$@")
    if [ -z "$best" ] || [ "$(echo "$t < $best" | bc -l)" = 1 ]; then best=$t; fi
  done
  printf '%.3f' "$best"
}
declare -A R
for t in "${trees[@]}"; do
  for p in "${peers[@]}"; do
    d=$MNT/$p; mount_peer "$p" "$t" "$d"
    for w in ls find; do
      R[$t,$p,cold-$w]=$(best_cold "w_$w" "$d")
      "w_$w" "$d" 2>/dev/null || true
      R[$t,$p,warm-$w]=$(best_of 3 "w_$w" "$d")
    done
    umount "$d"
  done
done

echo "Tree ($TREE): $(find "$SRC" | wc -l) entries (no file data); with xattrs: $n_x entries carry some; $(nproc) CPUs; kernel $(uname -r)"
cols=(warm-ls cold-ls warm-find cold-find)
for t in "${trees[@]}"; do
  echo
  echo "Tree $t: seconds (ratio vs kernel EROFS)"
  echo
  echo "| peer | ls -lR warm | ls -lR cold | find warm | find cold |"
  echo "|---|---|---|---|---|"
  for p in "${peers[@]}"; do
    row="| $p"
    for c in "${cols[@]}"; do row+=" | ${R[$t,$p,$c]} ($(ratio "${R[$t,$p,$c]}" "${R[$t,erofs,$c]}"))"; done
    echo "$row |"
  done
done

# Round trips: the daemon's -d log, by opcode.
echo
echo "FUSE requests received by daxfs-mount (cache=direct), by opcode:"
for t in "${trees[@]}"; do
  for w in cold-find cold-ls warm-ls; do
    d=$MNT/debug; mkdir -p "$d"
    "$BUILD/daxfs-mount" -d "$IMG/$t.daxfs" "$d" 2>>"$M/debug.log" &
    pid=$!
    for _ in $(seq 100); do grep -q " $d fuse" /proc/mounts && break; sleep 0.1; done
    case $w in
      cold-find) drop_caches; : > "$M/debug.log"; w_find "$d" ;;
      cold-ls) drop_caches; : > "$M/debug.log"; w_ls "$d" ;;
      warm-ls) w_ls "$d" 2>/dev/null; : > "$M/debug.log"; w_ls "$d" ;;
    esac
    sleep 0.5
    counts=$({ grep -a -o 'opcode: [A-Z_]*' "$M/debug.log" || true; } | sort | uniq -c | sort -rn |
             awk '{printf "%s %s, ", $3, $1}')
    counts=${counts%, }
    echo "- $t, $w: ${counts:-no requests}"
    umount "$d"; wait "$pid" || true
  done
done
