# The agent scenario of issue 12: 8 agents work in parallel on one mount,
# each in its own branch (made through .branchfs_ctl) of a real C source
# tree; each edits files and runs make in its /@NAME/ tree; one commits, the
# others abort. Checks (tests/mount/branch_agents.py): main equals exactly
# what the winner saw and what the same edits + make give on tmpfs; the
# losers' changes are nowhere; memory (meminfo Cached/Shmem and the region's
# delta area) stays near one copy of the base. DAXFS_AGENTS overrides 8.
source "$(dirname "$0")/lib.bash" "$1"
[ -x /usr/bin/python3 ] || skip "no /usr/bin/python3"
command -v gcc >/dev/null && command -v make >/dev/null || skip "needs gcc and make"
[ -f /usr/include/stdio.h ] || skip "no C headers in /usr/include"

# The tree: a C project whose build reads its headers from a vendored
# sysroot in the tree (a copy of this machine's /usr/include), so every
# compile reads the base through the branch.
SRC=$WORK/src
mkdir -p "$SRC/sysroot/usr" "$SRC/project/src" "$SRC/project/include" "$SRC/project/docs"
cp -a /usr/include "$SRC/sysroot/usr/"
P=$SRC/project
cat > "$P/Makefile" <<'EOF'
# Headers come from the tree's own sysroot, not from the host.
MULTIARCH := $(shell gcc -print-multiarch)
GCCINC := $(shell gcc -print-file-name=include)
CFLAGS := -O1 -Wall -Werror -nostdinc -isystem $(GCCINC) \
  -isystem ../sysroot/usr/include/$(MULTIARCH) -isystem ../sysroot/usr/include -Iinclude
SRCS := $(sort $(wildcard src/*.c))
OBJS := $(SRCS:src/%.c=build/%.o)

build/app: $(OBJS)
	gcc -o $@ $(OBJS)

build/%.o: src/%.c $(wildcard include/*.h) | build
	gcc $(CFLAGS) -c -o $@ $<

build:
	mkdir -p build
EOF
cat > "$P/include/config.h" <<'EOF'
#pragma once
#define AGENT_TAG "base"
EOF
MODULES=12
{
  echo '#pragma once'
  for k in $(seq 0 $((MODULES - 1))); do printf 'long mod_%02d(long x);\n' "$k"; done
  echo 'long agent_extra(void);'
} > "$P/include/project.h"
for k in $(seq 0 $((MODULES - 1))); do
  cat > "$P/src/mod_$(printf %02d "$k").c" <<EOF
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <stdint.h>
#include <math.h>
#include "project.h"
#define BIAS 0
long mod_$(printf %02d "$k")(long x) {
  char buf[64];
  snprintf(buf, sizeof buf, "%ld", x * $((k + 1)));
  return strtol(buf, NULL, 10) + BIAS;
}
EOF
done
{
  echo '#include <stdio.h>'
  echo '#include "config.h"'
  echo '#include "project.h"'
  echo '__attribute__((weak)) long agent_extra(void) { return 0; }'
  echo 'int main(void) {'
  echo '  long sum = agent_extra();'
  for k in $(seq 0 $((MODULES - 1))); do printf '  sum += mod_%02d(10);\n' "$k"; done
  echo '  printf("tag=%s sum=%ld\n", AGENT_TAG, sum);'
  echo '  return 0;'
  echo '}'
} > "$P/src/main.c"
for i in $(seq 0 15); do echo "note $i" > "$P/docs/note_$i.txt"; done
echo "todo" > "$P/docs/todo.txt"
echo "start" > "$P/CHANGELOG"
(cd "$P" && make -s >/dev/null && [ "$(build/app)" = "tag=base sum=780" ] && rm -rf build) ||
  fail "the project does not build on the host"

# The region lives on its own tmpfs, so that Shmem counts it.
mkdir -p "$WORK/shm"
mount -t tmpfs -o size=4G daxfs-agents "$WORK/shm"
MOUNTS=("$WORK/shm" "${MOUNTS[@]}")
"$MKDAXFS" -q "$WORK/base.img" "$SRC"
"$DAXFS" branch init "$WORK/base.img" "$WORK/shm/region" --delta 256M >/dev/null
rm -f "$WORK/base.img"
mount_image "$WORK/shm/region" "$WORK/m" -o fstype=branchfs
/usr/bin/python3 "$(dirname "$0")/branch_agents.py" "$WORK/m" "$SRC" "$WORK/shm/ref" \
  "$DAXFS" "$WORK/shm/region" "${DAXFS_AGENTS:-8}" "$MODULES"
"$DAXFS" branch check "$WORK/shm/region" >/dev/null || fail "daxfs branch check after the scenario"
echo PASS
