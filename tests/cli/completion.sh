#!/usr/bin/env bash
# Bash completion (dist/bash-completion/daxfs): subcommands, branch
# subcommands, each command's options (from its own --help), -o mount
# options after a comma, region descriptors and container references.
set -euo pipefail
source "$(dirname "$0")/lib.bash" "$1"
COMP=$(cd "$(dirname "$0")/../../dist/bash-completion" && pwd)/daxfs
BUILD=$(cd "$BUILD" && pwd)
mkdir -p "$W/shm"; : > "$W/shm/region-a"
out=$(PATH=$BUILD:$PATH bash --norc -c '
  source "$1"
  # As bash calls it: the whole line, the cursor at its end, the words split
  # at blanks and at "=" and ":" (COMP_WORDBREAKS); replies replace the last
  # of those words.
  c() { COMP_LINE="$*"; COMP_POINT=${#COMP_LINE}
        read -r -a COMP_WORDS <<<"$(sed "s/\([=:]\)/ \1 /g" <<<"$COMP_LINE")"
        [[ $COMP_LINE == *" " ]] && COMP_WORDS+=("")
        COMP_CWORD=$(( ${#COMP_WORDS[@]} - 1 )); COMPREPLY=()
        case $1 in mkdaxfs) _mkdaxfs ;; daxfs-mount) _daxfs_mount ;; *) _daxfs ;; esac
        echo "$* => ${COMPREPLY[*]}"; }
  c daxfs ch
  c daxfs branch co
  c daxfs check --j
  c daxfs branch list --j
  c daxfs branch create --siblings f
  c mkdaxfs --per
  c mkdaxfs img oci-a
  c daxfs-mount -o cache=direct,allow_o
  c daxfs info memfd:$2/shm/reg
' _ "$COMP" "$W")
echo "$out"
expect() { grep -qF -- "$1" <<<"$out" || fail "completion: expected '$1' in: $out"; }
expect "daxfs ch => check"
expect "daxfs branch co => commit"
expect "daxfs check --j => --json"
expect "daxfs branch list --j => --json"
expect "--siblings f => first-wins"
expect "mkdaxfs --per => --per-layer"
expect "mkdaxfs img oci-a => oci-archive:"
# (after "=" and ":" only the rest of the word is replaced)
expect "allow_o => direct,allow_other"
expect "region-a"
grep -q "reg => $W/shm/region-a" <<<"$out" || fail "memfd: completion: $out"
echo PASS
