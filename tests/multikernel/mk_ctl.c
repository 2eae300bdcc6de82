// Guest (and host) helper of the multikernel tests, static so that it needs
// nothing in the initramfs:
//   mk_ctl create DIR          CREATE ioctl on DIR/.branchfs_ctl: prints the
//                              new branch's name
//   mk_ctl commit|abort DIR    COMMIT / ABORT ioctl on DIR/.branchfs_ctl
//   mk_ctl get FILE OFF        a 64-bit word of shared memory (FILE: the BAR's
//   mk_ctl add FILE OFF N      sysfs resource file in a guest, the backing
//   mk_ctl wait FILE OFF N S   tmpfs file on the host), read, added to
//                              atomically, or waited for until >= N (at
//                              most S seconds): a barrier between kernels
//                              and the host that needs no network
//   mk_ctl phys FILE OFF       the physical address of the page at OFF of
//                              FILE mapped shared and read (pagemap): with
//                              DAX it lies in the device, not in RAM
// Prints "OK" or the errno's name (ESTALE, EBUSY, ...) for the ioctls and
// exits 0 either way (the test judges); exits 1 when it cannot run at all.
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <time.h>
#include <unistd.h>

// The branchfs control protocol (docs/BRANCHES.md, "Mounting branches").
#define BRANCHFS_CREATE 0x80806200u
#define BRANCHFS_COMMIT 0x6201u
#define BRANCHFS_ABORT 0x6202u

static int ctl(const char* op, const char* dir) {
  char path[4096];
  snprintf(path, sizeof path, "%s/.branchfs_ctl", dir);
  int fd = open(path, O_RDWR);
  if (fd < 0) { printf("%s\n", strerrorname_np(errno)); return 0; }
  char name[128] = {0};
  int rc;
  if (strcmp(op, "create") == 0) rc = ioctl(fd, BRANCHFS_CREATE, name);
  else rc = ioctl(fd, strcmp(op, "commit") == 0 ? BRANCHFS_COMMIT : BRANCHFS_ABORT);
  if (rc < 0) printf("%s\n", strerrorname_np(errno));
  else printf("%s\n", strcmp(op, "create") == 0 ? name : "OK");
  close(fd);
  return 0;
}

static volatile uint64_t* word(const char* file, const char* off_arg) {
  uint64_t off = strtoull(off_arg, NULL, 0);
  if (off % 8) { fprintf(stderr, "mk_ctl: offset %s is not 8-aligned\n", off_arg); exit(1); }
  int fd = open(file, O_RDWR | O_SYNC);
  if (fd < 0) { perror(file); exit(1); }
  long page = sysconf(_SC_PAGESIZE);
  uint64_t base = off / page * page;
  char* m = mmap(NULL, page, PROT_READ | PROT_WRITE, MAP_SHARED, fd, (off_t)base);
  if (m == MAP_FAILED) { perror("mmap"); exit(1); }
  return (volatile uint64_t*)(m + (off - base));
}

static int phys(const char* file, const char* off_arg) {
  long page = sysconf(_SC_PAGESIZE);
  uint64_t off = strtoull(off_arg, NULL, 0) / page * page;
  int fd = open(file, O_RDONLY);
  if (fd < 0) { perror(file); return 1; }
  volatile char* m = mmap(NULL, page, PROT_READ, MAP_SHARED, fd, (off_t)off);
  if (m == MAP_FAILED) { perror("mmap"); return 1; }
  (void)m[0];  // fault it in
  int pm = open("/proc/self/pagemap", O_RDONLY);
  uint64_t e = 0;
  if (pm < 0 || pread(pm, &e, sizeof e, (off_t)((uintptr_t)m / page * sizeof e)) != sizeof e) {
    perror("/proc/self/pagemap");
    return 1;
  }
  if (!(e >> 63)) { printf("absent\n"); return 0; }
  printf("0x%llx\n", (unsigned long long)((e & ((1ull << 55) - 1)) * page));
  return 0;
}

int main(int argc, char** argv) {
  if (argc >= 4 && !strcmp(argv[1], "phys")) return phys(argv[2], argv[3]);
  if (argc >= 3 && (!strcmp(argv[1], "create") || !strcmp(argv[1], "commit") || !strcmp(argv[1], "abort")))
    return ctl(argv[1], argv[2]);
  if (argc >= 4 && !strcmp(argv[1], "get")) {
    printf("%llu\n", (unsigned long long)__atomic_load_n(word(argv[2], argv[3]), __ATOMIC_SEQ_CST));
    return 0;
  }
  if (argc >= 5 && !strcmp(argv[1], "add")) {
    uint64_t v = __atomic_add_fetch(word(argv[2], argv[3]), strtoull(argv[4], NULL, 0), __ATOMIC_SEQ_CST);
    printf("%llu\n", (unsigned long long)v);
    return 0;
  }
  if (argc >= 6 && !strcmp(argv[1], "wait")) {
    volatile uint64_t* w = word(argv[2], argv[3]);
    uint64_t want = strtoull(argv[4], NULL, 0);
    time_t end = time(NULL) + atoi(argv[5]);
    while (__atomic_load_n(w, __ATOMIC_SEQ_CST) < want) {
      if (time(NULL) > end) { printf("TIMEOUT\n"); return 0; }
      usleep(10000);
    }
    printf("OK\n");
    return 0;
  }
  fprintf(stderr,
          "usage: mk_ctl create|commit|abort DIR | get FILE OFF | add FILE OFF N | wait FILE OFF N SECONDS"
          " | phys FILE OFF\n");
  return 1;
}
