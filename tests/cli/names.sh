#!/usr/bin/env bash
# Names with control characters never reach a terminal raw: `daxfs ls`
# quotes them as GNU ls does on a terminal (shell-escape), prints them as
# they are when not a terminal, and -b escapes them; diagnostics always
# escape control characters.
set -euo pipefail
source "$(dirname "$0")/lib.bash"
command -v script >/dev/null || { echo "SKIP: needs script(1) for a terminal"; exit 77; }

mkdir -p "$W/src"
nl=$'a\nb'; esc=$'e\e[31mred'
touch "$W/src/$nl" "$W/src/$esc" "$W/src/plain" "$W/src/sp ace"
ln -s "$esc" "$W/src/link"
"$BUILD/mkdaxfs" -q "$W/img" "$W/src"

# A terminal (script(1) gives the tool a pty).
script -qec "$BUILD/daxfs ls $W/img" /dev/null > "$W/tty" || fail "ls on a tty"
grep -q $'\e\\[31m' "$W/tty" && fail "escape sequence reached the terminal"
grep -qF "'a'\$'\\n''b'" "$W/tty" || fail "newline not shell-escaped: $(cat -A "$W/tty")"
grep -qF "'e'\$'\\033''[31mred'" "$W/tty" || fail "ESC not shell-escaped"
grep -qF "'sp ace'" "$W/tty" || fail "space not quoted"
grep -qF " plain" "$W/tty" || fail "plain name quoted"
grep -qF -- "-> 'e'\$'\\033''[31mred'" "$W/tty" || fail "symlink target not quoted"
script -qec "$BUILD/daxfs stat $W/img link" /dev/null > "$W/tty"
grep -q $'\e' "$W/tty" && fail "stat: raw ESC on a terminal"
grep -qF -- "-> 'e'\$'\\033''[31mred'" "$W/tty" || fail "stat: target not quoted"

# Not a terminal: the names as they are (scripts read them), unless -b/-N.
"$BUILD/daxfs" ls "$W/img" > "$W/raw"
grep -q $'\e\\[31mred' "$W/raw" || fail "not raw when piped"
"$BUILD/daxfs" ls -b "$W/img" > "$W/b"
grep -qF 'a\nb' "$W/b" && grep -qF 'e\033[31mred' "$W/b" && grep -qF 'sp\ ace' "$W/b" || fail "-b: $(cat "$W/b")"
script -qec "$BUILD/daxfs ls -N $W/img" /dev/null > "$W/tty"
grep -q $'\e\\[31mred' "$W/tty" || fail "-N on a tty"
"$BUILD/daxfs" ls --quoting-style=shell-escape "$W/img" > "$W/q"
grep -qF "'a'\$'\\n''b'" "$W/q" || fail "--quoting-style"
expect_rc 2 "$BUILD/daxfs" ls --quoting-style=nope "$W/img"

# Diagnostics escape control characters, tty or not.
expect_rc 1 "$BUILD/daxfs" ls "$W/img" "/missing$esc"
grep -q $'\e' "$IO/err" && fail "raw ESC in an error message"
expect_err 'e\033[31mred'
expect_rc 1 "$BUILD/mkdaxfs" -q "$W/x.img" "$W/missing$nl"
[ "$(wc -l < "$IO/err")" = 1 ] || fail "newline in an error message: $(cat "$IO/err")"
echo PASS
