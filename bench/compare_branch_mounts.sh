#!/usr/bin/env bash
# Branch mounts (issue 12) side by side, in one run, everything on tmpfs
# (/dev/shm), following multikernel/branchfs's bench/ (branch create, commit
# and abort latency, sequential write/read through a branch) plus the
# issue's workloads (small-file create+write, untar of a source tree, a
# compile). Peers, each given a fresh "branch" of the same tree per run:
#   daxfs     daxfs-mount of a branch region; a branch made with the CREATE
#             ioctl on .branchfs_ctl, work in /@NAME/
#   fuse-ovl  fuse-overlayfs, lower = the tree as a tmpfs directory, upper on tmpfs
#   ovl/dax   kernel OverlayFS, lower = a read-only daxfs-mount of the
#             tree's image, upper on tmpfs
#   tmpfs     a plain tmpfs directory (a "branch" is cp -a of the tree)
# The tree: tests/mount/c_project.bash (a C project + a copy of /usr/include
# it compiles against) and a 64 MiB file. Timings of control operations are
# taken in-process (bench/branch_mount_ops.py), so no process start counts,
# as branchfs times its daemon. Workloads: median of RUNS (default 3).
# Prints a Markdown table (docs/PERFORMANCE.md, "Branch mounts (#12)").
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
BUILD=${BUILD:-$ROOT/build}
RUNS=${RUNS:-3}
MODULES=${MODULES:-48}
SMALL=${SMALL:-2000}
[ "$(id -u)" = 0 ] || { echo "needs root (mounts)"; exit 1; }
[ -x "$BUILD/daxfs-mount" ] || { echo "build first (scripts/build.sh)"; exit 1; }
command -v fuse-overlayfs >/dev/null || {
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq fuse-overlayfs >/dev/null; }
OPS="/usr/bin/python3 $ROOT/bench/branch_mount_ops.py"
W=/dev/shm/daxfs-cmp-branch-mounts
PEERS=(daxfs fuse-ovl ovl/dax tmpfs)

cleanup() {
  for m in $(awk -v w="$W" 'index($2, w) == 1 {print $2}' /proc/mounts | sort -r); do
    umount "$m" 2>/dev/null || umount -l "$m" 2>/dev/null || true
  done
  rm -rf "$W"
}
trap cleanup EXIT
cleanup
mkdir -p "$W"

source "$ROOT/tests/mount/c_project.bash"
echo "== staging the tree ==" >&2
make_c_project "$W/src" "$MODULES"
head -c 64M /dev/urandom > "$W/src/big.bin"
tar -C "$W/src" -cf "$W/tree.tar" sysroot project
"$BUILD/mkdaxfs" -q "$W/img" "$W/src"
"$BUILD/daxfs" branch init "$W/img" "$W/region" --delta 2G -q
mkdir -p "$W/dax" "$W/daxro"
"$BUILD/daxfs-mount" "$W/region" "$W/dax"
"$BUILD/daxfs-mount" "$W/img" "$W/daxro"

# fresh PEER N: make a branch of the tree for PEER, print its directory.
# drop PEER N: end it (abort / unmount and remove / remove).
fresh() {
  local peer=$1 n=$2 d=$W/b$2
  case $peer in
    daxfs) echo "$W/dax/@$($OPS create "$W/dax")" ;;
    fuse-ovl)
      mkdir -p "$d/upper" "$d/work" "$d/mnt"
      fuse-overlayfs -o "lowerdir=$W/src,upperdir=$d/upper,workdir=$d/work" "$d/mnt"
      echo "$d/mnt" ;;
    ovl/dax)
      mkdir -p "$d/upper" "$d/work" "$d/mnt"
      mount -t overlay overlay -o "lowerdir=$W/daxro,upperdir=$d/upper,workdir=$d/work" "$d/mnt"
      echo "$d/mnt" ;;
    tmpfs) cp -a "$W/src" "$d"; echo "$d" ;;
  esac
}
drop() {
  local peer=$1 dir=$2 d=$W/b$3
  case $peer in
    daxfs) $OPS abort "$dir" ;;
    fuse-ovl | ovl/dax) umount "$d/mnt"; rm -rf "$d" ;;
    tmpfs) rm -rf "$d" ;;
  esac
}
# us CMD...: wall microseconds of CMD in this shell
us() { local t0=$EPOCHREALTIME; "$@" >/dev/null; local t1=$EPOCHREALTIME; echo $(( ${t1/./} - ${t0/./} )); }
median() { sort -g | awk '{a[NR]=$1} END{print a[int((NR+1)/2)]}'; }
declare -A R
N=0

# Workloads: each run gets a fresh branch; the seconds of the workload only.
untar() { mkdir "$1/untar" && tar -C "$1/untar" -xf "$W/tree.tar"; }
compile() { make -s -j2 -C "$1/project" >/dev/null && [ -x "$1/project/build/app" ]; }
for peer in "${PEERS[@]}"; do
  echo "== $peer ==" >&2
  for w in smallfiles seqwrite seqread untar compile; do
    t=()
    for _ in $(seq "$RUNS"); do
      N=$((N + 1)); dir=$(fresh "$peer" $N)
      case $w in
        smallfiles) t+=("$($OPS smallfiles "$dir/small" "$SMALL" 4096)") ;;
        seqwrite) t+=("$($OPS seqwrite "$dir/seq.bin" 64)") ;;
        seqread) $OPS seqread "$dir/big.bin" >/dev/null  # warm, as branchfs does
                 t+=("$($OPS seqread "$dir/big.bin")") ;;
        untar) t+=("$(echo "$(us untar "$dir") / 1000000" | bc -l)") ;;
        compile) t+=("$(echo "$(us compile "$dir") / 1000000" | bc -l)") ;;
      esac
      drop "$peer" "$dir" $N
    done
    R[$peer,$w]=$(printf '%s\n' "${t[@]}" | median)
    echo "  $w: ${t[*]} s" >&2
  done
  # Branch create / abort: the peers' equivalents, median of 5 (3 for cp -a).
  if [ "$peer" != daxfs ]; then
    c=(); a=()
    reps=5; [ "$peer" = tmpfs ] && reps=3
    for _ in $(seq $reps); do
      N=$((N + 1))
      t0=$EPOCHREALTIME; dir=$(fresh "$peer" $N); t1=$EPOCHREALTIME
      c+=($(( ${t1/./} - ${t0/./} )))
      a+=("$(us drop "$peer" "$dir" $N)")
    done
    R[$peer,create]=$(printf '%s\n' "${c[@]}" | median)
    R[$peer,abort]=$(printf '%s\n' "${a[@]}" | median)
  fi
done

echo "== daxfs control operations ==" >&2
# (the region has 256 branch slots, and gc cannot run while mounted: this
# script uses about 150)
lat=$($OPS latency "$W/dax" 100)
read -r _ 'R[daxfs,create_mean]' 'R[daxfs,create]' < <(grep create <<<"$lat")
read -r _ 'R[daxfs,abort_mean]' 'R[daxfs,abort]' < <(grep abort <<<"$lat")
for kind in 1k 1m files1000; do
  c=(); a=()
  for _ in 1 2 3 4 5; do
    c+=("$($OPS commit "$W/dax" $kind)")
    a+=("$($OPS abortmod "$W/dax" $kind)")
  done
  R[daxfs,commit_$kind]=$(printf '%s\n' "${c[@]}" | median)
  R[daxfs,abort_$kind]=$(printf '%s\n' "${a[@]}" | median)
  echo "  $kind: commit ${c[*]} µs; abort ${a[*]} µs" >&2
done
"$BUILD/daxfs" branch list "$W/region" | tail -1 >&2

fmt_us() { awk -v u="$1" 'BEGIN{ if (u >= 1e6) printf "%.2f s", u/1e6; else if (u >= 1e3) printf "%.1f ms", u/1e3; else printf "%.0f µs", u }'; }
fmt_s() { awk -v s="$1" 'BEGIN{ if (s >= 1) printf "%.2f s", s; else printf "%.0f ms", s*1e3 }'; }
# cell PEER WORKLOAD: time, and fuse-overlayfs's time / this one's (>1 = faster)
cell() { printf ' %s (%sx) |' "$(fmt_s "${R[$1,$2]}")" \
  "$(awk -v a="${R[fuse-ovl,$2]}" -v b="${R[$1,$2]}" 'BEGIN{printf "%.2f", a/b}')"; }
echo
echo "| median of $RUNS (x = fuse-overlayfs time / this time) | ${PEERS[*]// / | } |" | sed 's/ | $/ |/'
printf '|---|'; for _ in "${PEERS[@]}"; do printf -- '---|'; done; echo
printf '| create + write %s files of 4 KiB |' "$SMALL"; for p in "${PEERS[@]}"; do cell "$p" smallfiles; done; echo
printf '| write 64 MiB (64 KiB blocks) + fsync |'; for p in "${PEERS[@]}"; do cell "$p" seqwrite; done; echo
printf '| read a 64 MiB base file (64 KiB blocks, warm) |'; for p in "${PEERS[@]}"; do cell "$p" seqread; done; echo
printf '| untar the tree (%s) |' "$(du -sh --apparent-size "$W/tree.tar" | cut -f1)"; for p in "${PEERS[@]}"; do cell "$p" untar; done; echo
printf '| make -j2 of %s C files against the tree'"'"'s headers |' "$((MODULES + 1))"; for p in "${PEERS[@]}"; do cell "$p" compile; done; echo
printf '| create a branch |'
printf ' %s (ioctl; mean %s) |' "$(fmt_us "${R[daxfs,create]}")" "$(fmt_us "${R[daxfs,create_mean]}")"
for p in fuse-ovl ovl/dax tmpfs; do printf ' %s |' "$(fmt_us "${R[$p,create]}")"; done; echo
printf '| abort an empty branch |'
printf ' %s (ioctl; mean %s) |' "$(fmt_us "${R[daxfs,abort]}")" "$(fmt_us "${R[daxfs,abort_mean]}")"
for p in fuse-ovl ovl/dax tmpfs; do printf ' %s |' "$(fmt_us "${R[$p,abort]}")"; done; echo
for kind in 1k 1m files1000; do
  case $kind in 1k) what="a new 1 KiB file";; 1m) what="a new 1 MiB file";; files1000) what="1,000 changed files";; esac
  printf '| commit / abort, branch with %s | %s / %s | – | – | – |\n' "$what" \
    "$(fmt_us "${R[daxfs,commit_$kind]}")" "$(fmt_us "${R[daxfs,abort_$kind]}")"
done
