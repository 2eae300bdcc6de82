#!/usr/bin/env bash
# mkdaxfs accepts only a directory or an archive libarchive recognises as
# SOURCE: a text file, an empty file, /dev/zero, /dev/null and a FIFO are
# refused with a message naming what they are, and no image is written.
set -euo pipefail
source "$(dirname "$0")/lib.bash"

mkdir -p "$W/out"
echo "just some text" > "$W/text.txt"
printf '#mtree\n./etc/passwd type=file contents=/etc/passwd\n' > "$W/spec.mtree"
: > "$W/empty"
mkfifo "$W/fifo"
snapshot "$W/out" out
for src in "$W/text.txt" "$W/spec.mtree" "$W/empty" /dev/zero /dev/null "$W/fifo"; do
  expect_rc 1 timeout 20 "$BUILD/mkdaxfs" -q "$W/out/x.img" "$src"
  expect_err "$src: "
  no_debris "$W/out" out "source $src"
done
expect_rc 1 "$BUILD/mkdaxfs" -q "$W/out/x.img" "$W/text.txt"; expect_err "not a directory or an archive"
expect_rc 1 "$BUILD/mkdaxfs" -q "$W/out/x.img" "$W/empty";    expect_err "is an empty file, not an archive"
expect_rc 1 "$BUILD/mkdaxfs" -q "$W/out/x.img" /dev/zero;     expect_err "is a character device, not a directory or an archive"

# Real archives are fine, an empty tar included; compressed ones too.
tar -cf "$W/empty.tar" --files-from /dev/null
"$BUILD/mkdaxfs" -q "$W/out/empty.img" "$W/empty.tar"
"$BUILD/daxfs" check -q "$W/out/empty.img"
mkdir -p "$W/t/a"; echo x > "$W/t/a/f"
tar -C "$W/t" -czf "$W/t.tgz" .
"$BUILD/mkdaxfs" -q "$W/out/t.img" "$W/t.tgz"
[ "$("$BUILD/daxfs" cat "$W/out/t.img" a/f)" = x ] || fail "tar.gz source"
echo PASS
