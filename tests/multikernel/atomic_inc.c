// Guest helper of smoke.sh: many kernels add to one word of shared memory.
// Usage: atomic_inc RESOURCE GUESTS COUNT [atomic|plain]
// Maps the ivshmem BAR (the sysfs RESOURCE file), waits at a barrier until
// GUESTS guests have arrived (word 0), then adds 1 to word 8 (64 bytes in,
// its own cache line) COUNT times: a locked add, or with "plain" a load and
// a store (which loses updates when kernels race: shows the test can tell).
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

int main(int argc, char** argv) {
  if (argc < 4) { fprintf(stderr, "usage: atomic_inc RESOURCE GUESTS COUNT [atomic|plain]\n"); return 2; }
  int fd = open(argv[1], O_RDWR | O_SYNC);
  if (fd < 0) { perror(argv[1]); return 1; }
  volatile uint64_t* w = mmap(NULL, 4096, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
  if (w == MAP_FAILED) { perror("mmap"); return 1; }
  uint64_t guests = strtoull(argv[2], NULL, 0), count = strtoull(argv[3], NULL, 0);
  int plain = argc > 4 && strcmp(argv[4], "plain") == 0;
  __atomic_fetch_add(&w[0], 1, __ATOMIC_SEQ_CST);
  while (__atomic_load_n(&w[0], __ATOMIC_ACQUIRE) < guests) {}
  // first/last: the word before this guest's first and last add; where the
  // guests' [first, last] overlap, they really added at the same time.
  uint64_t first = w[8], last = first;
  for (uint64_t i = 0; i < count; i++) {
    if (plain) { last = w[8]; w[8] = last + 1; }
    else last = __atomic_fetch_add(&w[8], 1, __ATOMIC_SEQ_CST);
  }
  printf("MK-RESULT first=%llu\nMK-RESULT last=%llu\n", (unsigned long long)first,
         (unsigned long long)last);
  return 0;
}
