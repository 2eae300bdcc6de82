#!/usr/bin/env bash
# `daxfs branch` as a user runs it: init, create, write, ls/cat, nested
# branches, commit, a sibling conflict (exit 3, paths listed), abort, export,
# gc, check, and the messages naming region, branch and path.
set -euo pipefail
BUILD=$1
W=$(mktemp -d /tmp/daxfs-branch-cli.XXXXXX)
R=shm:/daxfs-branch-cli-$$
trap 'rm -rf "$W"; rm -f /dev/shm/daxfs-branch-cli-$$' EXIT
fail() { echo "FAIL: $*" >&2; exit 1; }
D() { "$BUILD/daxfs" "$@"; }
expect_rc() { local want=$1; shift; set +e; "$@" >"$W/out" 2>"$W/err"; local rc=$?; set -e
  [ "$rc" = "$want" ] || fail "$* exited $rc, expected $want: $(cat "$W/err")"; }

mkdir -p "$W/src/etc"; echo base > "$W/src/etc/conf"; echo keep > "$W/src/keep"
"$BUILD/mkdaxfs" -q "$W/base.img" "$W/src"
D branch init "$W/base.img" "$R" --delta 64M -q
D info "$R" | grep -q branch-region || fail "info does not show the feature"
D cat "$R" /etc/conf | grep -qx base || fail "the region does not read as its image"

D branch create "$R" agent1 -q
echo changed | D branch write "$R" agent1 /etc/conf
D branch mkdir "$R" agent1 /new
printf 'x%.0s' $(seq 5000) | D branch write "$R" agent1 /new/big
D branch symlink "$R" agent1 ../etc/conf /new/link
D branch cat "$R" agent1 /etc/conf | grep -qx changed || fail "branch write not visible"
D branch cat "$R" main /etc/conf | grep -qx base || fail "main changed before commit"
D branch ls "$R" agent1 /new | grep -q "link -> ../etc/conf" || fail "ls"
[ "$(D branch cat "$R" agent1 /new/big | wc -c)" = 5000 ] || fail "big file"

# Nested: a child of agent1 sees agent1's state; agent1 cannot commit meanwhile.
D branch create "$R" sub --parent agent1 -q
D branch cat "$R" sub /etc/conf | grep -qx changed || fail "child does not see its parent"
D branch mv "$R" sub /keep /kept
expect_rc 1 D branch commit "$R" agent1
grep -q "active child" "$W/err" || fail "EBUSY message: $(cat "$W/err")"
D branch commit "$R" sub
D branch cat "$R" agent1 /kept | grep -qx keep || fail "sub not merged into agent1"

# A sibling created before agent1's commit that touches /etc/conf conflicts.
D branch create "$R" agent2 -q
echo other | D branch write "$R" agent2 /etc/conf
echo fine | D branch write "$R" agent2 /fine
D branch commit "$R" agent1
D branch cat "$R" main /etc/conf | grep -qx changed || fail "commit not visible in main"
expect_rc 3 D branch commit "$R" agent2
grep -q "conflict: /etc/conf" "$W/err" || fail "conflict list: $(cat "$W/err")"
D branch cat "$R" agent2 /fine | grep -qx fine || fail "conflicting branch not left intact"
# extract --branch writes out a live branch's tree.
D extract "$R" "$W/x-agent2" --branch agent2 --no-owners
[ "$(cat "$W/x-agent2/etc/conf")" = other ] && [ "$(cat "$W/x-agent2/fine")" = fine ] || fail "extract --branch agent2"
[ ! -e "$W/x-agent2/new" ] || fail "extract --branch shows another branch's changes"
expect_rc 1 D extract "$R" "$W/x-none" --branch no-such
[ ! -e "$W/x-none" ] || fail "a failed extract left its destination"
D branch abort "$R" agent2
expect_rc 1 D branch cat "$R" agent2 /fine
grep -q "agent2" "$W/err" || fail "message does not name the branch"

# Errors name region, branch and path.
D branch create "$R" e -q
expect_rc 1 D branch cat "$R" e /no/such
grep -q "/no/such" "$W/err" && grep -q "branch e" "$W/err" || fail "error message: $(cat "$W/err")"
# main is writable directly: a branch made before keeps its snapshot, one
# made after sees the write.
echo direct | D branch write "$R" main /direct
D branch cat "$R" main /direct | grep -qx direct || fail "write to main"
expect_rc 1 D branch cat "$R" e /direct
D branch create "$R" after -q
D branch cat "$R" after /direct | grep -qx direct || fail "a branch made after a main write does not see it"
D branch abort "$R" after
D branch abort "$R" e

# Sibling policies: merge lets disjoint siblings both commit; first-wins
# fails the second (exit 3) and leaves it intact.
D branch create "$R" m1 -q; D branch create "$R" m2 -q
echo 1 | D branch write "$R" m1 /m1; echo 2 | D branch write "$R" m2 /m2
D branch commit "$R" m1; D branch commit "$R" m2
D branch create "$R" f1 --siblings first-wins -q; D branch create "$R" f2 --siblings first-wins -q
D branch list "$R" | grep -q "^f1 .* first-wins$" || fail "list does not show the policy"
echo 1 | D branch write "$R" f1 /f1; echo 2 | D branch write "$R" f2 /f2
D branch commit "$R" f1
expect_rc 3 D branch commit "$R" f2
grep -q "committed first" "$W/err" || fail "first-wins message: $(cat "$W/err")"
D branch cat "$R" f2 /f2 | grep -qx 2 || fail "the losing sibling was not left intact"
D branch abort "$R" f2
expect_rc 2 D branch create "$R" bad --siblings sometimes

D branch list "$R" > "$W/list"
grep -q "^agent1 *committed" "$W/list" || fail "list: $(cat "$W/list")"
D branch export "$R" main "$W/next.img" -q
D check "$W/next.img" -q
D cat "$W/next.img" /new/link >/dev/null 2>&1 && fail "cat followed a symlink?" || true
D cat "$W/next.img" /kept | grep -qx keep || fail "export"
D extract "$R" "$W/x-main" --branch main --no-owners
D extract "$W/next.img" "$W/x-next" --no-owners
diff -r --no-dereference "$W/x-main" "$W/x-next" || fail "extract --branch main differs from its export"
[ "$(stat -c %s "$W/x-main/new/big")" = 5000 ] || fail "extract --branch: big file"
[ "$(readlink "$W/x-main/new/link")" = ../etc/conf ] || fail "extract --branch: symlink"
D branch gc "$R" > "$W/out"; grep -q "freed [0-9]* branch slot" "$W/out" || fail "gc: $(cat "$W/out")"
D branch check "$R" -q
D branch check "$R" | grep -q "^branch main: .* 0 problem" || fail "branch check does not check main's tree"
D check "$R" -q || fail "daxfs check reports problems on the region"
echo "branch CLI OK"
