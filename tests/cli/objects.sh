#!/usr/bin/env bash
# Object-store images from the command line (issue 13): mkdaxfs --objects,
# conversion of an existing image, dedup across images, and what check, cat
# and extract say about a damaged or missing object.
set -euo pipefail
source "$(dirname "$0")/lib.bash"

"$BUILD/mkdaxfs" --help | grep -q -- "--objects OBJDIR" || fail "--objects not in mkdaxfs --help"
mkdir -p "$W/src/d"
head -c 200000 /dev/urandom > "$W/src/d/big"
echo small > "$W/src/small"
cp "$W/src/small" "$W/src/d/same"
: > "$W/src/empty"
ln -s small "$W/src/link"
expect_rc 0 "$BUILD/mkdaxfs" --objects "$W/objs" "$W/a.img" "$W/src"
grep -q "objects: 2 written" "$IO/out" || fail "summary: $(cat "$IO/out")"
[ "$(find "$W/objs" -type f | wc -l)" = 2 ] || fail "expected 2 objects (one per distinct non-empty contents)"
[ -z "$(find "$W/objs" -type f ! -perm 0444)" ] || fail "objects not read-only"
[ -z "$(find "$W/objs" -name '.tmp*')" ] || fail "temporary files left in the object directory"
for o in $(cd "$W/objs" && find . -type f | sed 's|^\./||'); do
  [ "$(sha256sum < "$W/objs/$o" | cut -c1-64)" = "${o%%/*}${o#*/}" ] || fail "$o is not named by its SHA-256"
done
expect_rc 0 "$BUILD/daxfs" info "$W/a.img"
grep -q "features:.*objects" "$IO/out" || fail "info: $(cat "$IO/out")"
grep -q "object dir:.*$W/objs" "$IO/out" || fail "info: $(cat "$IO/out")"
expect_rc 0 "$BUILD/daxfs" check "$W/a.img"
expect_rc 0 "$BUILD/daxfs" extract "$W/a.img" "$W/out"
diff -r --no-dereference "$W/src" "$W/out" || fail "extract differs from the source"

# A second image sharing most files stores only what is new; conversion of
# a single-region image reuses everything.
cp -a "$W/src" "$W/src2"
echo new > "$W/src2/new"
expect_rc 0 "$BUILD/mkdaxfs" --objects "$W/objs" "$W/b.img" "$W/src2"
grep -q "objects: 1 written (4 B), 3 already there" "$IO/out" || fail "dedup: $(cat "$IO/out")"
"$BUILD/mkdaxfs" -q "$W/plain.img" "$W/src"
expect_rc 0 "$BUILD/mkdaxfs" --objects "$W/objs" "$W/conv.img" "$W/plain.img"
grep -q "objects: 0 written" "$IO/out" || fail "conversion: $(cat "$IO/out")"
expect_rc 0 "$BUILD/daxfs" extract "$W/conv.img" "$W/out2"
diff -r --no-dereference "$W/src" "$W/out2" || fail "converted image differs from the source"

# The object directory moved: a clear error, then --objects finds it.
mv "$W/objs" "$W/moved"
expect_rc 1 "$BUILD/daxfs" cat "$W/a.img" /small
expect_err "cannot open the object directory $W/objs"
expect_rc 0 "$BUILD/daxfs" --objects "$W/moved" cat "$W/a.img" /small
mv "$W/moved" "$W/objs"

# Damage: never wrong bytes, the file and the object are named.
big=$("$BUILD/daxfs" stat "$W/a.img" /d/big | sed -n 's/^  data: object //p')
chmod 644 "$big"
printf 'X' | dd of="$big" bs=1 seek=777 conv=notrunc status=none
expect_rc 1 "$BUILD/daxfs" cat "$W/a.img" /d/big
[ -s "$IO/out" ] && fail "cat printed bytes of a damaged object"
expect_err "/d/big: "; expect_err "$big does not match its name"
expect_rc 4 "$BUILD/daxfs" check "$W/a.img"
cat "$IO/out" "$IO/err" | grep -qF "$big does not match its name" || fail "check: $(cat "$IO/out" "$IO/err")"
rm "$big"
expect_rc 1 "$BUILD/daxfs" extract "$W/a.img" "$W/out3"
expect_err "/d/big: "; expect_err "$big is missing"
echo PASS
