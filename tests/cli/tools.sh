#!/usr/bin/env bash
# The command-line tools as a user meets them: help, exit codes, messages,
# SOURCE_DATE_EPOCH, atomic output, fsck exit codes, load, extract.
set -euo pipefail
BUILD=$1
W=$(mktemp -d /tmp/daxfs-cli.XXXXXX)
trap 'rm -rf "$W"; rm -f /dev/shm/daxfs-cli-$$' EXIT
fail() { echo "FAIL: $*" >&2; exit 1; }
expect_rc() { local want=$1; shift; set +e; "$@" >"$W/out" 2>"$W/err"; local rc=$?; set -e
  [ "$rc" = "$want" ] || fail "$* exited $rc, expected $want: $(cat "$W/err")"; }

for t in mkdaxfs daxfs daxfs-mount daxfs-inspect fsck.daxfs; do
  # (whole output first: grep -q stopping early would SIGPIPE the tool
  # under pipefail)
  help=$("$BUILD/$t" --help) || fail "$t --help exited $?"
  grep -qi "usage" <<<"$help" || fail "$t --help"
done
mkdir -p "$W/src/d"; echo hi > "$W/src/d/f"; touch -d @2000000000 "$W/src/d/f"

# Usage errors exit 2; a missing source exits 1, names it, and leaves nothing.
expect_rc 2 "$BUILD/mkdaxfs"
expect_rc 1 "$BUILD/mkdaxfs" "$W/x.img" "$W/missing"
grep -q "missing" "$W/err" || fail "error does not name the source"
[ ! -e "$W/x.img" ] && [ -z "$(ls "$W" | grep tmp || true)" ] || fail "partial image left behind"

# SOURCE_DATE_EPOCH clamps; two builds are byte-identical.
SOURCE_DATE_EPOCH=1000000000 "$BUILD/mkdaxfs" -q "$W/a.img" "$W/src"
SOURCE_DATE_EPOCH=1000000000 "$BUILD/mkdaxfs" -q "$W/b.img" "$W/src"
cmp "$W/a.img" "$W/b.img" || fail "not reproducible"
"$BUILD/daxfs" ls "$W/a.img" /d | grep -q "2001-09-09 01:46:40" || fail "mtime not clamped"
# A summary on stdout unless -q; no progress escape codes when not a tty.
"$BUILD/mkdaxfs" "$W/c.img" "$W/src" > "$W/summary" 2> "$W/progress"
grep -q "inodes" "$W/summary" || fail "no summary"
[ ! -s "$W/progress" ] || fail "progress printed to a non-tty"

# fsck exit codes: 0 clean, 4 problems, 8 not an image.
expect_rc 0 "$BUILD/fsck.daxfs" "$W/a.img"
cp "$W/a.img" "$W/bad.img"
printf 'Z' | dd of="$W/bad.img" bs=1 seek=$((4096 + 4096 + 4096 + 16)) conv=notrunc 2>/dev/null
expect_rc 4 "$BUILD/daxfs" check "$W/bad.img"
grep -q "error:" "$W/out" || fail "check printed no problem line"
echo "not an image" > "$W/junk"
expect_rc 8 "$BUILD/fsck.daxfs" "$W/junk"
grep -q "junk" "$W/err" || fail "error does not name the file"

# cat, stat, load into shared memory, extract.
[ "$("$BUILD/daxfs" cat "$W/a.img" d/f)" = hi ] || fail "cat"
expect_rc 1 "$BUILD/daxfs" cat "$W/a.img" d/nope
"$BUILD/daxfs" load -q "$W/a.img" --to "shm:/daxfs-cli-$$"
"$BUILD/daxfs" stat "shm:/daxfs-cli-$$" /d/f | grep -q "data: region offset" || fail "stat via shm:"
expect_rc 1 "$BUILD/daxfs" extract "$W/a.img" "$W/out"   # a file, not a directory
grep -q "not a directory" "$W/err" || fail "extract onto a file: unclear error"
"$BUILD/daxfs" extract "$W/a.img" "$W/tree"
[ "$(cat "$W/tree/d/f")" = hi ] || fail "extract"
echo PASS
