#!/usr/bin/env bash
# Every option a tool's --help lists (and every daxfs and daxfs branch
# subcommand's, and every daxfs-mount -o option) is in its man page
# (docs/man/*.scd); the pages build with scdoc and render with man.
set -euo pipefail
source "$(dirname "$0")/lib.bash" "$1"
MAN=$(cd "$(dirname "$0")/../../docs/man" && pwd)
missing=()
# options_of CMD...: the long options in CMD --help ("--name").
# (the option lines of the Options: section, not words in the description)
# A command whose --help yields no option at all (not even --help) means the
# help's format changed: fail rather than check nothing.
options_of() {
  local out
  out=$("$@" --help 2>&1 | sed -n '/^[Oo][Pp][Tt][Ii][Oo][Nn][Ss]:/,$p' | grep -oE '^ +(-[a-zA-Z],)?--[a-z][a-z0-9-]*' |
        grep -oE -- '--[a-z][a-z0-9-]*' | sort -u) || true
  [ -n "$out" ] || fail "no options found in '$* --help' (has its format changed?)"
  echo "$out"
}
need() {  # PAGE WORD...: each WORD must appear in PAGE
  local page=$MAN/$1; shift
  for w in "$@"; do grep -qF -- "$w" "$page" || missing+=("$(basename "$page"): $w"); done
}
# shellcheck disable=SC2046
need mkdaxfs.1.scd $(options_of "$BUILD/mkdaxfs")
# shellcheck disable=SC2046
need daxfs.1.scd $(options_of "$BUILD/daxfs")
for c in info ls stat cat check extract load serve; do
  need daxfs.1.scd "*$c*"
  # shellcheck disable=SC2046
  need daxfs.1.scd $(options_of "$BUILD/daxfs" "$c")
done
for c in init upgrade list create commit abort export gc check ls cat write mkdir rm mv symlink; do
  need daxfs.1.scd "branch $c"
  # shellcheck disable=SC2046
  need daxfs.1.scd $(options_of "$BUILD/daxfs" branch "$c")
done
# shellcheck disable=SC2046
need fsck.daxfs.8.scd $(options_of "$BUILD/fsck.daxfs")
if [ -x "$BUILD/daxfs-mount" ]; then
  # shellcheck disable=SC2046
  need daxfs-mount.8.scd $(options_of "$BUILD/daxfs-mount")
  # -o options: the first word of each option line of the help ("  name=..." / "  name  ...").
  for o in $("$BUILD/daxfs-mount" --help 2>&1 | sed -n '/^Options (-o/,/^  Accepted/p' |
             grep -oE '^  [a-z_]+' | tr -d ' ' | sort -u); do
    need daxfs-mount.8.scd "$o"
  done
fi
RUN=$(cd "$(dirname "$0")/../.." && pwd)/tools/daxfs-podman-run/daxfs-podman-run
# (a script: its options are its docstring's synopsis)
for o in $(sed -n 's/^  daxfs-podman-run \(.*\)/\1/p' "$RUN" | grep -oE -- '--[a-z][a-z-]*' | sort -u); do
  need daxfs-podman-run.1.scd "$o"
done
[ ${#missing[@]} = 0 ] || fail "options missing from the man pages: ${missing[*]}"
if command -v scdoc >/dev/null; then
  for f in "$MAN"/*.scd; do
    scdoc < "$f" > "$W/page" || fail "scdoc: $(basename "$f")"
    if command -v man >/dev/null; then
      MANWIDTH=80 man -l "$W/page" > "$W/out" 2> "$W/err" || fail "man -l $(basename "$f"): $(cat "$W/err")"
      [ -s "$W/out" ] || fail "$(basename "$f") renders empty"
    fi
  done
fi
echo PASS
