#!/usr/bin/env bash
# Bash completion (dist/bash-completion/daxfs): subcommands, branch
# subcommands, each command's options (from its own --help), -o mount
# options after a comma, region descriptors and container references.
set -euo pipefail
source "$(dirname "$0")/lib.bash" "$1"
COMP=$(cd "$(dirname "$0")/../../dist/bash-completion" && pwd)/daxfs
BUILD=$(cd "$BUILD" && pwd)
out=$(PATH=$BUILD:$PATH bash --norc -c '
  source "$1"
  c() { COMP_WORDS=("$@"); COMP_CWORD=$(( $# - 1 )); COMPREPLY=()
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
  c daxfs info shm:/
' _ "$COMP")
echo "$out"
expect() { grep -qF -- "$1" <<<"$out" || fail "completion: expected '$1' in: $out"; }
expect "daxfs ch => check"
expect "daxfs branch co => commit"
expect "daxfs check --j => --json"
expect "daxfs branch list --j => --json"
expect "--siblings f => first-wins"
expect "mkdaxfs --per => --per-layer"
expect "mkdaxfs img oci-a => oci-archive:"
expect "=> cache=direct,allow_other"
echo PASS
