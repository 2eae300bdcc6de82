# make_c_project DIR MODULES: a C source tree for the agent scenario
# (tests/mount/branch_agents.sh) and bench/compare_branch_mounts.sh:
# DIR/project, a program of MODULES modules plus docs, built by make; and
# DIR/sysroot/usr/include, a copy of this machine's /usr/include, which the
# project's Makefile compiles against (-nostdinc), so that a build reads its
# headers from the tree itself (through the mount under test). The program
# prints "tag=base sum=S" with S = 10 * MODULES * (MODULES + 1) / 2.
# (Sourced, not run.)
make_c_project() {
  local dir=$1 modules=$2 p=$1/project k i
  mkdir -p "$dir/sysroot/usr" "$p/src" "$p/include" "$p/docs"
  cp -a /usr/include "$dir/sysroot/usr/"
  cat > "$p/Makefile" <<'EOF'
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
  printf '#pragma once\n#define AGENT_TAG "base"\n' > "$p/include/config.h"
  {
    echo '#pragma once'
    for k in $(seq 0 $((modules - 1))); do printf 'long mod_%02d(long x);\n' "$k"; done
    echo 'long agent_extra(void);'
  } > "$p/include/project.h"
  for k in $(seq 0 $((modules - 1))); do
    cat > "$p/src/mod_$(printf %02d "$k").c" <<EOF
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
    for k in $(seq 0 $((modules - 1))); do printf '  sum += mod_%02d(10);\n' "$k"; done
    echo '  printf("tag=%s sum=%ld\n", AGENT_TAG, sum);'
    echo '  return 0;'
    echo '}'
  } > "$p/src/main.c"
  for i in $(seq 0 15); do echo "note $i" > "$p/docs/note_$i.txt"; done
  echo "todo" > "$p/docs/todo.txt"
  echo "start" > "$p/CHANGELOG"
}
