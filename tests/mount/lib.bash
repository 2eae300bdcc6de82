# Shared helpers for the FUSE mount scenarios (sourced, not run).
# Usage in a script: source "$(dirname "$0")/lib.bash" "$1"   ($1 = build dir)
set -euo pipefail
BUILD=${1:-$(cd "$(dirname "${BASH_SOURCE[0]}")/../../build" && pwd)}
MKDAXFS=$BUILD/mkdaxfs
DAXFS=$BUILD/daxfs
MOUNT=$BUILD/daxfs-mount

skip() { echo "SKIP: $*"; exit 77; }
fail() { echo "FAIL: $*" >&2; exit 1; }
[ "$(id -u)" = 0 ] || skip "needs root"
[ -c /dev/fuse ] || skip "no /dev/fuse"
[ -x "$MOUNT" ] || skip "daxfs-mount not built"

WORK=$(mktemp -d /tmp/daxfs-mount-test.XXXXXX)
MOUNTS=()
cleanup() {
  for m in "${MOUNTS[@]}"; do umount "$m" 2>/dev/null || umount -l "$m" 2>/dev/null || true; done
  rm -rf "$WORK"
}
trap cleanup EXIT

# mount_image IMAGE DIR [daxfs-mount options...]
mount_image() {
  local img=$1 dir=$2; shift 2
  mkdir -p "$dir"
  "$MOUNT" "$img" "$dir" "$@"
  MOUNTS=("$dir" "${MOUNTS[@]}")
  grep -qE " $dir fuse\.(daxfs|branchfs) " /proc/mounts || fail "$dir is not mounted"
}

# debug_mount IMAGE DIR LOG: daxfs-mount -d in the background (pid in $pid),
# its request log appended to LOG.
debug_mount() {
  mkdir -p "$2"
  "$MOUNT" -d "$1" "$2" 2>>"$3" &
  pid=$!
  for _ in $(seq 100); do grep -q " $2 fuse.daxfs " /proc/mounts && break; sleep 0.1; done
  grep -q " $2 fuse.daxfs " /proc/mounts || fail "debug mount of $1 did not come up"
  MOUNTS=("$2" "${MOUNTS[@]}")
}

# A tree with every file type, hard links, xattrs, odd names and mtimes.
make_tree() {
  local d=$1
  mkdir -p "$d/sub/deeper" "$d/empty"
  printf 'hello\n' > "$d/hello.txt"
  : > "$d/empty_file"
  head -c 3000000 /dev/urandom > "$d/sub/random.bin"
  seq 1 200000 > "$d/sub/deeper/numbers.txt"
  printf 'x' > "$d/name with spaces"
  ln "$d/hello.txt" "$d/sub/hardlink"
  ln -s hello.txt "$d/symlink"
  ln -s /nonexistent "$d/dangling"
  mkfifo "$d/fifo"
  mknod "$d/null" c 1 3
  mknod "$d/loop9" b 7 9
  chmod 4755 "$d/sub/random.bin"
  chown 1000:2000 "$d/sub/deeper/numbers.txt"
  truncate -s 20M "$d/sparse"
  printf 'tail' >> "$d/sparse"
  setfattr -n user.note -v "an xattr" "$d/hello.txt"
  setfattr -n security.capability -v 0sAQAAAgAgAAAAAAAAAAAAAAAAAAA= "$d/sub/random.bin"
  setfattr -n trusted.overlay.opaque -v y "$d/sub/deeper"
  touch -h -d '2001-02-03 04:05:06.123456789' "$d/symlink"
  touch -d '1999-12-31 23:59:59.5' "$d/hello.txt"
}

# One line per entry with everything stat shows that daxfs must preserve.
describe_tree() {
  (cd "$1" && find . -printf '%p|%y|%m|%U|%G|%T@|%n|%l\n' | sort
   find . ! -type d -printf '%p|%s\n' | sort
   find . \( -type c -o -type b \) -exec stat -c '%n|%t|%T' {} + | sort
   getfattr -R -h -d -m - --absolute-names . 2>/dev/null | grep -v '^$' | sort)
}

# make_branch_region REGION: a branch region whose main holds a small tree.
make_branch_region() {
  local region=$1
  mkdir -p "$WORK/base/dir/sub"
  printf 'hello\n' > "$WORK/base/hello.txt"
  printf 'shared\n' > "$WORK/base/shared.txt"
  printf 'f3\n' > "$WORK/base/f3"
  seq 1 1000 > "$WORK/base/dir/numbers.txt"
  "$MKDAXFS" -q "$WORK/base.img" "$WORK/base"
  "$DAXFS" branch init "$WORK/base.img" "$region" --delta 64M >/dev/null
}
