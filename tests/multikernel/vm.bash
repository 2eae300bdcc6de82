# Multikernel test harness (sourced, not run): boots Linux guests under QEMU
# that share one host file as an ivshmem PCI BAR, so that several kernels
# map the same memory, as daxfs regions are shared between multikernel
# instances.  See README.md in this directory.
#
# Usage in a test:   source "$(dirname "$0")/vm.bash" "$1"   ($1 = build dir)
#   mk_prepare                         qemu + kernel, or exit 77 (skip)
#   mk_initramfs OUT [SRC[:DEST]...]   busybox + daxfs tools + guest/*.sh
#   mk_initramfs_with_ctl              the same with mk_ctl (mk_ctl.c) in it,
#                                      and MK_CTL_HOST, its host build
#   mk_branch_region DELTA TIMEOUT [BRANCH...]   a branch region in the BAR
#   mk_boot NAME SHMFILE SIZE SCRIPT [KEY=VALUE...]   one guest, background
#   mk_wait NAME TIMEOUT               the guest script's exit status
#   mk_result NAME KEY                 a value the guest printed
#   mk_kill NAME [SIGNAL]              kill (default), or STOP/CONT, a guest
#   mk_console NAME                    a guest's console so far
#   mk_ram_kib NAME                    guest RAM the guest has touched (KiB;
#                                      with MK_RAM_FILES=1 set before mk_boot)
#   MK_PMEM=FILE mk_boot ...           FILE (a multiple of 2 MiB) is also the
#                                      guest's virtio-pmem device /dev/pmem0,
#                                      DAX-capable (MK_WANT_PMEM=1 before
#                                      mk_initramfs: MK_PMEM_MODULES in it)
# Environment: DAXFS_MK_CACHE (kernel cache, default /var/cache/daxfs-mk),
#   DAXFS_MK_KERNEL_PKG (Debian kernel package, default: the one
#   linux-image-cloud-amd64 depends on), DAXFS_MK_ACCEL (default tcg: KVM
#   guests hang on some hosts), DAXFS_MK_SMP (default 2; at least 2, TCG
#   emits non-atomic code for locked instructions on 1), DAXFS_MK_MEM (MiB,
#   default 512), DAXFS_MK_APPEND (more kernel parameters, e.g. loglevel=7
#   to see the boot), DAXFS_MK_QEMU_ARGS (more qemu options, split at
#   spaces), DAXFS_MK_PVH=0 (boot the compressed bzImage instead of the
#   vmlinux unpacked from it), DAXFS_MK_KEEP=1 (keep the work files and
#   consoles), DAXFS_TEST_TIMEOUT (guardian, default 570 s).
set -euo pipefail
MK_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
BUILD=${1:-$(cd "$MK_DIR/../../build" && pwd)}
MK_CACHE=${DAXFS_MK_CACHE:-/var/cache/daxfs-mk}

skip() { echo "SKIP: $*"; exit 77; }
fail() { echo "FAIL: $*" >&2; exit 1; }
[ "$(id -u)" = 0 ] || skip "needs root (apt-get download into the cache, sysfs in guests)"

WORK=$(mktemp -d /tmp/daxfs-mk-test.XXXXXX)
# Shared files live on a tmpfs, like real shared memory.
MK_SHM=$(mktemp -d /dev/shm/daxfs-mk.XXXXXX)
declare -A MK_PID=()

# Kills the qemu recorded in PIDFILE, but only if that process is still one
# of ours (its command line names $WORK), never a recycled pid.
mk_kill_pidfile() {
  local pid sig=${2:-KILL}
  pid=$(cat "$1" 2>/dev/null) || return 0
  if tr '\0' ' ' 2>/dev/null < "/proc/$pid/cmdline" | grep -qF -- "$WORK/"; then
    kill -"$sig" "$pid" 2>/dev/null || true
  fi
}

mk_cleanup() {
  local f
  for f in "$WORK"/*.pid; do [ -e "$f" ] && mk_kill_pidfile "$f"; done
  wait 2>/dev/null || true
  if [ -n "${DAXFS_MK_KEEP:-}" ]; then echo "kept $WORK and $MK_SHM" >&2; return; fi
  rm -rf "$WORK" "$MK_SHM"
}
trap mk_cleanup EXIT

# The guardian, a process of its own: DAXFS_TEST_TIMEOUT s (default 570,
# under ctest's 600) after the start it prints every guest's console tail
# and kills the test; once the test is gone, however it ended (ctest's
# SIGKILL runs no trap), it kills the guests and removes the files.
mk_guardian() {
  local test_pid=$1 deadline=$((SECONDS + ${DAXFS_TEST_TIMEOUT:-570})) f
  exec </dev/null >/dev/null
  while kill -0 "$test_pid" 2>/dev/null; do
    if [ "$SECONDS" -ge "$deadline" ]; then
      echo "=== guardian: $(basename "$0") still running after ${DAXFS_TEST_TIMEOUT:-570} s ===" >&2
      for f in "$WORK"/*.log; do
        [ -e "$f" ] && { echo "--- ${f##*/}" >&2; tail -n 20 "$f" | tr -d '\r' >&2; }
      done
      kill -9 "$test_pid" 2>/dev/null || true
      break
    fi
    sleep 0.5
  done
  for f in "$WORK"/*.pid; do [ -e "$f" ] && mk_kill_pidfile "$f"; done
  sleep 0.5
  [ -n "${DAXFS_MK_KEEP:-}" ] || rm -rf "$WORK" "$MK_SHM"
}
mk_guardian $$ &
disown

# The guest kernel's modules for a virtio-pmem disk and kernel EROFS on it,
# in load order (in $MK_CACHE/modules, in the initramfs's /lib/modules).
MK_PMEM_MODULES="virtio_ring virtio virtio_pci_legacy_dev virtio_pci_modern_dev virtio_pci libnvdimm nd_btt
  nd_pmem nd_virtio virtio_pmem libcrc32c erofs"

# mk_prepare: checks qemu, busybox-static and cpio, and puts a kernel
# (vmlinuz), its fuse.ko and MK_PMEM_MODULES into $MK_CACHE, fetched with
# apt-get download the first time.  Sets MK_KERNEL and MK_FUSE_KO.  Skips (exit 77) with the
# reason when any of it cannot be had.
mk_prepare() {
  command -v qemu-system-x86_64 >/dev/null ||
    skip "qemu-system-x86_64 not found (apt-get install qemu-system-x86)"
  # (the list first, then grep: grep -q's early exit would SIGPIPE qemu,
  # which pipefail reports as a failure)
  MK_QEMU_DEVICES=$(qemu-system-x86_64 -device help 2>/dev/null || true)
  grep -q '"ivshmem-plain"' <<<"$MK_QEMU_DEVICES" || skip "this qemu-system-x86_64 has no ivshmem-plain device"
  command -v cpio >/dev/null || skip "cpio not found (apt-get install cpio)"
  MK_BUSYBOX=$(command -v busybox) || skip "busybox not found (apt-get install busybox-static)"
  [[ $(ldd "$MK_BUSYBOX" 2>&1 || true) == *"not a dynamic"* ]] ||
    skip "$MK_BUSYBOX is not static (apt-get install busybox-static)"
  mkdir -p "$MK_CACHE"
  MK_KERNEL=$MK_CACHE/vmlinuz
  MK_FUSE_KO=$MK_CACHE/fuse.ko
  # One download at a time when tests run in parallel.
  local lock
  exec {lock}>"$MK_CACHE/.lock"
  flock "$lock"
  # (a cache from before the modules were kept is refreshed when they are wanted)
  if [ ! -s "$MK_KERNEL" ] || [ ! -s "$MK_FUSE_KO" ] ||
     { [ "${MK_WANT_PMEM:-0}" = 1 ] && [ ! -d "$MK_CACHE/modules" ]; }; then
    mk_fetch_kernel || { flock -u "$lock"; skip "no guest kernel: $MK_FETCH_ERROR"; }
  fi
  [ -e "$MK_CACHE/vmlinux" ] || mk_unpack_vmlinux
  flock -u "$lock"
  exec {lock}>&-
  # The uncompressed kernel boots by PVH, 0.5 to 2 s sooner under TCG.
  if [ -s "$MK_CACHE/vmlinux" ] && [ "${DAXFS_MK_PVH:-1}" != 0 ]; then
    MK_KERNEL=$MK_CACHE/vmlinux
  fi
}

# Unpacks $MK_CACHE/vmlinuz (a bzImage) into $MK_CACHE/vmlinux, an ELF that
# qemu boots directly by its PVH entry point, skipping the decompression
# that takes seconds under TCG; or leaves an empty vmlinux to say it cannot
# (an unknown compression, no PVH entry point).
mk_unpack_vmlinux() {
  local out=$MK_CACHE/vmlinux.tmp magic tool off
  for magic in '\x02\x21\x4c\x18:lz4 -dc' '\x28\xb5\x2f\xfd:zstd -qdc' \
               '\xfd\x37\x7a\x58\x5a\x00:xz -qdc' '\x1f\x8b\x08\x00:gzip -qdc'; do
    tool=${magic#*:}
    command -v "${tool%% *}" >/dev/null || continue
    off=$(LC_ALL=C grep -aboP "${magic%%:*}" "$MK_CACHE/vmlinuz" | head -n 1 | cut -d: -f1)
    [ -n "$off" ] || continue
    # (the decompressors complain of the bytes that follow the kernel)
    tail -c +$((off + 1)) "$MK_CACHE/vmlinuz" | $tool > "$out" 2>/dev/null || true
    # XEN_ELFNOTE_PHYS32_ENTRY (0x12): the PVH entry point.
    if readelf -n "$out" 2>/dev/null | grep -q 'type: (0x00000012)'; then
      mv "$out" "$MK_CACHE/vmlinux"
      return 0
    fi
  done
  rm -f "$out"
  : > "$MK_CACHE/vmlinux"
}

# Downloads a Debian kernel package into $MK_CACHE (mk_prepare's helper);
# on failure returns 1 with the reason in MK_FETCH_ERROR.
mk_fetch_kernel() {
  local pkg=${DAXFS_MK_KERNEL_PKG:-} tmp ko vmlinuz
  command -v apt-get >/dev/null || { MK_FETCH_ERROR="no apt-get to download one with"; return 1; }
  if [ -z "$pkg" ]; then
    pkg=$(apt-cache depends linux-image-cloud-amd64 2>/dev/null | awk '/Depends: linux-image-/ {print $2; exit}')
    [ -n "$pkg" ] || { MK_FETCH_ERROR="apt-cache knows no linux-image-cloud-amd64 (apt-get update?)"; return 1; }
  fi
  tmp=$(mktemp -d "$MK_CACHE/.fetch.XXXXXX")
  echo "multikernel: downloading $pkg into $MK_CACHE" >&2
  if ! (cd "$tmp" && apt-get download -q "$pkg") > "$tmp/apt.log" 2>&1; then
    MK_FETCH_ERROR="apt-get download $pkg failed: $(tail -n 1 "$tmp/apt.log")"
    rm -rf "$tmp"; return 1
  fi
  dpkg-deb -x "$tmp"/*.deb "$tmp/x"
  ko=$(find "$tmp/x/lib/modules" -path '*/kernel/fs/fuse/fuse.ko*' | head -n 1)
  vmlinuz=$(find "$tmp/x/boot" -name 'vmlinuz-*' | head -n 1)
  if [ -z "$vmlinuz" ] || [ -z "$ko" ]; then
    MK_FETCH_ERROR="$pkg has no boot/vmlinuz-* or fuse.ko"
    rm -rf "$tmp"; return 1
  fi
  mk_unpack_module "$ko" "$tmp/fuse.ko"
  # The pmem and EROFS modules (a kernel that builds one in has no file).
  mkdir -p "$tmp/modules"
  for m in $MK_PMEM_MODULES; do
    ko=$(find "$tmp/x/lib/modules" -name "$m.ko*" | head -n 1)
    [ -z "$ko" ] || mk_unpack_module "$ko" "$tmp/modules/$m.ko"
  done
  rm -rf "$MK_CACHE/modules"
  mv "$tmp/modules" "$MK_CACHE/modules"
  mv "$tmp/fuse.ko" "$MK_FUSE_KO"
  mv "$vmlinuz" "$MK_KERNEL"
  rm -f "$MK_CACHE/vmlinux"
  echo "$pkg" > "$MK_CACHE/package"
  rm -rf "$tmp"
}

# mk_unpack_module KO OUT: a module file, decompressed.
mk_unpack_module() {
  case $1 in
    *.xz)  xz -dc "$1" > "$2" ;;
    *.zst) zstd -qdc "$1" > "$2" ;;
    *)     cp "$1" "$2" ;;
  esac
}

# mk_initramfs OUT [SRC[:DEST]...]: a cpio (uncompressed: faster to boot
# under TCG) with busybox, the daxfs tools of $BUILD named in MK_TOOLS
# (default "daxfs daxfs-mount"; mkdaxfs brings 35 MB of libxml2 and ICU)
# and the shared libraries they need, fuse.ko, /init (guest_init.sh) and
# every guest/*.sh of this directory under /tests/, plus the extra files
# given (DEST defaults to /bin/NAME; a test's own guest script goes to
# /tests/NAME.sh).  Sets MK_INITRD.
mk_initramfs() {
  local out=$1 root=$WORK/initramfs tool lib spec src dest
  shift
  rm -rf "$root"
  mkdir -p "$root"/{bin,dev,proc,sys,tmp,mnt,lib/modules,tests}
  cp "$MK_BUSYBOX" "$root/bin/busybox"
  mknod "$root/dev/console" c 5 1
  cp "$MK_DIR/guest_init.sh" "$root/init"
  cp "$MK_DIR"/guest/*.sh "$root/tests/"
  cp "$MK_FUSE_KO" "$root/lib/modules/fuse.ko"
  if [ "${MK_WANT_PMEM:-0}" = 1 ] && [ -d "$MK_CACHE/modules" ]; then
    cp "$MK_CACHE"/modules/*.ko "$root/lib/modules/" 2>/dev/null || true
  fi
  # Without their debug information (90% of a build's size, and every MB
  # costs the guest boot time).
  for tool in ${MK_TOOLS:-daxfs daxfs-mount}; do
    [ -x "$BUILD/$tool" ] || skip "$BUILD/$tool not built"
    strip --strip-debug -o "$root/bin/$tool" "$BUILD/$tool" 2>/dev/null || cp "$BUILD/$tool" "$root/bin/"
  done
  for spec in "$@"; do
    src=${spec%%:*}
    dest=${spec#*:}
    [ "$dest" != "$spec" ] || dest=/bin/$(basename "$src")
    mkdir -p "$root$(dirname "$dest")"
    cp "$src" "$root$dest"
  done
  # Every shared library (and the loader) at the path the host has it.
  for lib in $(for tool in "$root"/bin/*; do
                 ldd "$tool" 2>/dev/null | grep -o '/[^ ]*' || true
               done | sort -u); do
    mkdir -p "$root$(dirname "$lib")"
    cp -L "$lib" "$root$lib"
  done
  chmod 755 "$root/init" "$root"/tests/*.sh
  MK_GUEST_SCRIPTS=" $(cd "$root/tests" && find . -name '*.sh' | sed 's|^\./||; s|\.sh$||' | tr '\n' ' ')"
  (cd "$root" && find . | cpio -o -H newc --quiet) > "$out"
  rm -rf "$root"
  MK_INITRD=$out
}

# mk_initramfs_with_ctl: mk_initramfs $WORK/initrd.cpio with the guests'
# mk_ctl (static), and MK_CTL_HOST, the host's build of it (barrier words
# in the shared file).
mk_initramfs_with_ctl() {
  mk_static_cc "$MK_DIR/mk_ctl.c" "$WORK/mk_ctl"
  mk_initramfs "$WORK/initrd.cpio" "$WORK/mk_ctl"
  MK_CTL_HOST=$WORK/mk_ctl_host
  gcc -O2 -o "$MK_CTL_HOST" "$MK_DIR/mk_ctl.c"
}

# mk_branch_region SHMFILE DELTA TIMEOUT [BRANCH...]: a branch region of a
# small base image (base.txt, dir/numbers) with DELTA bytes of delta area and a
# lease timeout of TIMEOUT s, with BRANCH... created in it, made in a file
# of its own size and placed at the start of SHMFILE (the BAR: the rest of
# the device stays unused).
mk_branch_region() {
  local shm=$1 delta=$2 timeout=$3 b
  shift 3
  mkdir -p "$WORK/tree/dir"
  echo base > "$WORK/tree/base.txt"
  seq 1 1000 > "$WORK/tree/dir/numbers"
  "$BUILD/mkdaxfs" -q "$WORK/base.img" "$WORK/tree"
  "$BUILD/daxfs" branch init -q "$WORK/base.img" "$WORK/region" --delta "$delta" --lease-timeout "$timeout"
  for b in "$@"; do "$BUILD/daxfs" branch create "$WORK/region" "$b" >/dev/null; done
  [ "$(stat -c %s "$WORK/region")" -lt "$(stat -c %s "$shm")" ] || fail "region larger than the BAR"
  dd if="$WORK/region" of="$shm" conv=notrunc status=none
  rm "$WORK/region"
}

# mk_bytes SIZE: SIZE (a number with an optional K, M or G) in bytes.
mk_bytes() {
  local n=${1%[KMGkmg]}
  [[ $n =~ ^[0-9]+$ ]] || fail "bad size $1"
  case $1 in
    *[Kk]) echo $((n << 10)) ;;
    *[Mm]) echo $((n << 20)) ;;
    *[Gg]) echo $((n << 30)) ;;
    *) echo "$n" ;;
  esac
}

# mk_shm_file NAME SIZE: creates (zero-filled) and prints the path of a
# shared file on a tmpfs, to give to mk_boot.
mk_shm_file() {
  local f=$MK_SHM/$1
  rm -f "$f"
  truncate -s "$(mk_bytes "$2")" "$f"
  echo "$f"
}

# mk_boot NAME SHMFILE SIZE SCRIPT [KEY=VALUE...]: starts guest NAME in the
# background, running /tests/SCRIPT.sh with SHMFILE as its ivshmem BAR of
# SIZE bytes (a power of two; K, M, G suffixes).  Each KEY=VALUE reaches
# the script as MK_KEY=VALUE (KEY upper-cased; no spaces in VALUE); MK_NAME
# is NAME.  Console: $WORK/NAME.log; qemu's own messages: $WORK/NAME.qemu.
mk_boot() {
  local name=$1 shm=$2 size script=$4 kv params
  size=$(mk_bytes "$3")
  shift 4
  [[ $name =~ ^[A-Za-z0-9_-]+$ ]] || fail "bad guest name '$name'"
  [ -z "${MK_PID[$name]:-}" ] || fail "guest $name already booted"
  if [ "$size" = 0 ] || [ $((size & (size - 1))) != 0 ]; then fail "ivshmem size $3 is not a power of two"; fi
  [ -n "${MK_INITRD:-}" ] || fail "mk_boot before mk_initramfs"
  [[ $MK_GUEST_SCRIPTS == *" $script "* ]] || fail "no guest script /tests/$script.sh in $MK_INITRD"
  params="mk.name=$name mk.script=$script"
  for kv in "$@"; do
    [[ $kv =~ ^[A-Za-z0-9_]+=[^[:space:]\"]*$ ]] || fail "bad guest parameter '$kv'"
    params+=" mk.$kv"
  done
  : > "$WORK/$name.log"
  # Guest RAM in a tmpfs file of its own: what the guest touched can then be
  # told apart from qemu's own memory (TCG's translated code).
  local ram=()
  if [ "${MK_RAM_FILES:-0}" = 1 ]; then
    ram=(-object "memory-backend-file,id=ram,size=${DAXFS_MK_MEM:-512}M,mem-path=$MK_SHM/$name.ram,share=on"
         -machine memory-backend=ram)
  fi
  # A virtio-pmem device over MK_PMEM (hot-pluggable memory: slots, maxmem).
  local mem=${DAXFS_MK_MEM:-512} pmem=()
  if [ -n "${MK_PMEM:-}" ]; then
    local pmem_mib=$(( ($(stat -c %s "$MK_PMEM") + (1 << 20) - 1) >> 20 ))
    mem="${mem}M,slots=2,maxmem=$((${DAXFS_MK_MEM:-512} + pmem_mib + 1024))M"
    pmem=(-object "memory-backend-file,id=pmem,mem-path=$MK_PMEM,size=${pmem_mib}M,share=on"
          -device virtio-pmem-pci,memdev=pmem,id=pmem0)
  fi
  # shellcheck disable=SC2086  # DAXFS_MK_QEMU_ARGS is split on purpose
  qemu-system-x86_64 "${ram[@]}" "${pmem[@]}" \
    -accel "${DAXFS_MK_ACCEL:-tcg,thread=multi}" -cpu max \
    -smp "${DAXFS_MK_SMP:-2}" -m "$mem" \
    -nodefaults -no-reboot -display none \
    -kernel "$MK_KERNEL" -initrd "$MK_INITRD" \
    -append "console=ttyS0 panic=-1 edd=off quiet $params ${DAXFS_MK_APPEND:-}" \
    -serial "file:$WORK/$name.log" \
    -object "memory-backend-file,id=shm,mem-path=$shm,size=$size,share=on" \
    -device ivshmem-plain,memdev=shm ${DAXFS_MK_QEMU_ARGS:-} \
    </dev/null >"$WORK/$name.qemu" 2>&1 &
  MK_PID[$name]=$!
  echo "$!" > "$WORK/$name.pid"
  printf '%s\n' "$EPOCHREALTIME" > "$WORK/$name.started"
}

# mk_ram_kib NAME: how much of guest NAME's RAM file holds pages (KiB).
mk_ram_kib() { du -k "$MK_SHM/$1.ram" | cut -f1; }

# mk_console NAME: guest NAME's console so far, without the CRs.
mk_console() { tr -d '\r' < "$WORK/$1.log"; }

# mk_result NAME KEY: the value of the last "MK-RESULT KEY=VALUE" line of
# guest NAME (empty if none).
mk_result() { mk_console "$1" | sed -n "s/^MK-RESULT $2=//p" | tail -n 1; }

# mk_tail NAME: the end of guest NAME's console and qemu's messages, for a
# failure report.
mk_tail() {
  echo "--- $1: console (last 30 lines)" >&2
  mk_console "$1" | tail -n 30 >&2
  if [ -s "$WORK/$1.qemu" ]; then echo "--- $1: qemu" >&2; tail -n 10 "$WORK/$1.qemu" >&2; fi
}

# mk_wait NAME TIMEOUT: waits (TIMEOUT s at most) for guest NAME to print
# MK-EXIT, then for its qemu to end (the guest powers off), and returns the
# script's exit status: 124 if it timed out (the guest is killed), 125 if
# qemu ended with no MK-EXIT.  Prints the console's tail when it is not 0.
# Sets MK_SECONDS to the guest's time from qemu's start to MK-EXIT.
mk_wait() {
  local name=$1 deadline rc="" pid=${MK_PID[$1]:?guest $1 not booted}
  deadline=$(( ${EPOCHREALTIME/./} + $2 * 1000000 ))
  while :; do
    rc=$(mk_console "$name" | sed -n 's/^MK-EXIT rc=\([0-9]*\).*/\1/p' | tail -n 1)
    [ -n "$rc" ] && break
    kill -0 "$pid" 2>/dev/null || { rc=125; echo "guest $name: qemu ended with no MK-EXIT" >&2; break; }
    if [ "${EPOCHREALTIME/./}" -ge "$deadline" ]; then
      rc=124; echo "guest $name: no MK-EXIT within $2 s" >&2; break
    fi
    sleep 0.1
  done
  MK_SECONDS=$(echo "$EPOCHREALTIME $(cat "$WORK/$name.started")" | awk '{printf "%.1f", $1 - $2}')
  # poweroff -f takes qemu down within a moment; kill it if it does not.
  for _ in $(seq 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
  mk_kill "$name"
  [ "$rc" = 0 ] || mk_tail "$name"
  return "$rc"
}

# mk_kill NAME [SIGNAL]: signals guest NAME's qemu.  KILL (the default),
# TERM or INT end it, as a crashed multikernel instance would end (the
# kernel dies at once, whatever it holds in the shared memory), and reap
# it; STOP freezes the whole guest (a kernel stalled mid-critical-section)
# until CONT.
mk_kill() {
  local pid=${MK_PID[$1]:?guest $1 not booted} sig=${2:-KILL}
  mk_kill_pidfile "$WORK/$1.pid" "$sig"
  case $sig in
    STOP|CONT|SIGSTOP|SIGCONT) ;;
    *) wait "$pid" 2>/dev/null || true
       rm -f "$WORK/$1.pid" ;;
  esac
}

# mk_static_cc SRC OUT: compiles a small C helper for the guests (static,
# so it needs no library in the initramfs); skips without gcc or libc.a.
mk_static_cc() {
  command -v gcc >/dev/null || skip "gcc not found, needed for $(basename "$1")"
  gcc -O2 -Wall -static -o "$2" "$1" 2>"$WORK/cc.err" ||
    { cat "$WORK/cc.err" >&2; skip "cannot compile $(basename "$1") statically (libc6-dev?)"; }
}
