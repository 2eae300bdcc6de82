#!/usr/bin/env bash
# Image and mountpoint names with commas, spaces, newlines and backslashes
# mount and unmount, as root and (where fusermount3 is usable) as a user:
# a comma in the image name once became a second -o option.
source "$(dirname "$0")/lib.bash" "${1:-}"
make_tree "$WORK/src"
chmod 755 "$WORK"
img="$WORK/a,b img\\x"
"$MKDAXFS" -q "$img" "$WORK/src"
chmod 644 "$img"
m="$WORK/odd dir"$'\n'"with,comma"
mkdir -p "$m"

# run_as WHO CMD...: as root, or as nobody through setpriv.
run_as() {
  local who=$1; shift
  if [ "$who" = root ]; then "$@"; else setpriv --reuid=nobody --regid="$(id -g nobody)" --clear-groups "$@"; fi
}
check() {
  local who=$1
  run_as "$who" "$MOUNT" "$img" "$m" || fail "$who: mount of '$img' on '$m'"
  MOUNTS=("$m")
  run_as "$who" cmp "$WORK/src/hello.txt" "$m/hello.txt" || fail "$who: content"
  # /proc/mounts escapes space as \040, backslash as \134.
  grep -qF 'a,b\040img\134x ' /proc/mounts ||
    fail "$who: source name in /proc/mounts: $(grep fuse.daxfs /proc/mounts)"
  if [ "$who" = root ]; then umount "$m"; else run_as "$who" fusermount3 -u "$m"; fi
  sleep 0.5
  grep -q "odd.dir" /proc/mounts && fail "$who: still mounted"
  return 0
}
check root
if id nobody >/dev/null 2>&1 && fm=$(command -v fusermount3) && [ -u "$fm" ] && command -v setpriv >/dev/null; then
  old_mode=$(stat -c %a /dev/fuse)
  trap 'cleanup; chmod "$old_mode" /dev/fuse' EXIT
  chmod 666 /dev/fuse
  chown nobody "$m"
  check nobody
else
  echo "(unprivileged part skipped: no nobody, setuid fusermount3 or setpriv)"
fi
echo PASS
