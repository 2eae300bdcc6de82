#!/usr/bin/env bash
# A full tmpfs: `daxfs load` into it fails with a clear "no space" and leaves
# nothing; readers of a sparse image on it (pages the tmpfs cannot provide)
# report a bus error instead of dying of SIGBUS. Needs root (mount).
set -euo pipefail
source "$(dirname "$0")/lib.bash"
[ "$(id -u)" = 0 ] || { echo "SKIP: needs root to mount a tmpfs"; exit 77; }

mkdir -p "$W/src" "$W/full"
head -c 300K /dev/urandom > "$W/src/random"
truncate -s 3M "$W/src/holes"; printf y >> "$W/src/holes"   # 3 MiB hole, 1 byte of data
"$BUILD/mkdaxfs" -q "$W/img" "$W/src"
mount -t tmpfs -o size=1M daxfs-test "$W/full" || { echo "SKIP: cannot mount tmpfs"; exit 77; }
cleanup_dirs+=("$W/full")

cp --sparse=always "$W/img" "$W/full/img"   # the image's holes stay holes
truncate -s 8M "$W/full/all-holes"           # not even a superblock
dd if=/dev/zero of="$W/full/fill" bs=4k 2>/dev/null || true
[ "$(df --output=avail -k "$W/full" | tail -1)" -eq 0 ] || fail "tmpfs not full"
snapshot "$W/full" full
snapshot "$W" w

# no_sigbus RC CMD...: CMD ends with RC and a bus-error message, not SIGBUS (135).
no_sigbus() { local want=$1; shift
  expect_rc "$want" "$@"
  expect_err "bus error at region offset"
  grep -q "Corrupt\|checksum" "$IO/err" "$IO/out" && fail "$*: reported zeros as corruption: $(cat "$IO/err" "$IO/out")"
  return 0; }
for img in "$W/full/all-holes" "$W/full/img"; do
  no_sigbus 8 "$BUILD/daxfs" check "$img"
  no_sigbus 1 "$BUILD/daxfs" cat "$img" /holes
  [ ! -s "$IO/out" ] || fail "cat wrote bytes read from lost memory"
  no_sigbus 1 "$BUILD/daxfs" extract "$img" "$W/tree"
  no_sigbus 1 "$BUILD/daxfs" load -q "$img" "$W/copy.img"
  no_sigbus 1 "$BUILD/daxfs" serve -q "$img" "$W/sock"
  no_debris "$W" w "readers of $img"
done
for cmd in info ls; do no_sigbus 1 "$BUILD/daxfs" $cmd "$W/full/all-holes"; done

# Loading into the full tmpfs: no space, said so, nothing left there.
rm "$W/full/all-holes"; snapshot "$W/full" full
expect_rc 1 "$BUILD/daxfs" load -q "$W/img" "$W/full/new.img"
expect_err "no space for the image: $(stat -c %s "$W/img") bytes needed"
no_debris "$W/full" full "load into a full tmpfs"
echo PASS
