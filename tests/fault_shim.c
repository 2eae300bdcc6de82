// LD_PRELOAD shim for fault-injection tests: fails the Nth output call.
//
//   DAXFS_FAULT_AT=N       fail the Nth call (1-based) of those below; 0: none
//   DAXFS_FAULT_ERRNO=E    errno to fail with (default ENOSPC)
//   DAXFS_FAULT_COUNT=F    at exit, write the number of calls seen to file F
//   DAXFS_FAULT_NO_TMPFILE=1  open(O_TMPFILE) fails with EOPNOTSUPP, as on
//                          filesystems without it
//
// Counted: every call that writes data, sizes, links or names a file (on
// descriptors other than 0-2, so messages still get out).
#define _GNU_SOURCE
#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/types.h>
#include <sys/uio.h>
#include <unistd.h>

static long g_calls;

static int Fail(void) {
  const char* at = getenv("DAXFS_FAULT_AT");
  ++g_calls;
  if (at == NULL || atol(at) != g_calls) return 0;
  const char* e = getenv("DAXFS_FAULT_ERRNO");
  errno = e ? atoi(e) : ENOSPC;
  return 1;
}

__attribute__((destructor)) static void Report(void) {
  const char* path = getenv("DAXFS_FAULT_COUNT");
  if (path == NULL) return;
  FILE* f = fopen(path, "w");
  if (f == NULL) return;
  fprintf(f, "%ld\n", g_calls);
  fclose(f);
}

#define NEXT(name) ((__typeof__(&name))dlsym(RTLD_NEXT, #name))
#define DATA_FD(fd) ((fd) > 2)

ssize_t write(int fd, const void* b, size_t n) {
  if (DATA_FD(fd) && Fail()) return -1;
  return NEXT(write)(fd, b, n);
}
ssize_t pwrite(int fd, const void* b, size_t n, off_t o) {
  if (DATA_FD(fd) && Fail()) return -1;
  return NEXT(pwrite)(fd, b, n, o);
}
ssize_t pwrite64(int fd, const void* b, size_t n, off64_t o) {
  if (DATA_FD(fd) && Fail()) return -1;
  return NEXT(pwrite64)(fd, b, n, o);
}
ssize_t writev(int fd, const struct iovec* v, int c) {
  if (DATA_FD(fd) && Fail()) return -1;
  return NEXT(writev)(fd, v, c);
}
int ftruncate(int fd, off_t n) {
  if (Fail()) return -1;
  return NEXT(ftruncate)(fd, n);
}
int ftruncate64(int fd, off64_t n) {
  if (Fail()) return -1;
  return NEXT(ftruncate64)(fd, n);
}
int fallocate(int fd, int mode, off_t o, off_t n) {
  if (Fail()) return -1;
  return NEXT(fallocate)(fd, mode, o, n);
}
int fallocate64(int fd, int mode, off64_t o, off64_t n) {
  if (Fail()) return -1;
  return NEXT(fallocate64)(fd, mode, o, n);
}
int posix_fallocate(int fd, off_t o, off_t n) {
  if (Fail()) return errno;
  return NEXT(posix_fallocate)(fd, o, n);
}
ssize_t copy_file_range(int in, off64_t* io, int out, off64_t* oo, size_t n, unsigned f) {
  if (Fail()) return -1;
  return NEXT(copy_file_range)(in, io, out, oo, n, f);
}
int linkat(int od, const char* o, int nd, const char* n, int f) {
  if (Fail()) return -1;
  return NEXT(linkat)(od, o, nd, n, f);
}
int renameat(int od, const char* o, int nd, const char* n) {
  if (Fail()) return -1;
  return NEXT(renameat)(od, o, nd, n);
}
int renameat2(int od, const char* o, int nd, const char* n, unsigned f) {
  if (Fail()) return -1;
  return NEXT(renameat2)(od, o, nd, n, f);
}
int mkdirat(int d, const char* p, mode_t m) {
  if (Fail()) return -1;
  return NEXT(mkdirat)(d, p, m);
}
int symlinkat(const char* t, int d, const char* p) {
  if (Fail()) return -1;
  return NEXT(symlinkat)(t, d, p);
}
int mknodat(int d, const char* p, mode_t m, dev_t dev) {
  if (Fail()) return -1;
  return NEXT(mknodat)(d, p, m, dev);
}
int fsetxattr(int fd, const char* n, const void* v, size_t s, int f) {
  if (Fail()) return -1;
  return NEXT(fsetxattr)(fd, n, v, s, f);
}
int lsetxattr(const char* p, const char* n, const void* v, size_t s, int f) {
  if (Fail()) return -1;
  return NEXT(lsetxattr)(p, n, v, s, f);
}
int futimens(int fd, const struct timespec t[2]) {
  if (Fail()) return -1;
  return NEXT(futimens)(fd, t);
}

static int NoTmpfile(int flags) {
  if ((flags & O_TMPFILE) != O_TMPFILE) return 0;
  const char* v = getenv("DAXFS_FAULT_NO_TMPFILE");
  if (v == NULL || *v != '1') return 0;
  errno = EOPNOTSUPP;
  return 1;
}
int openat(int d, const char* p, int flags, ...) {
  va_list ap;
  va_start(ap, flags);
  mode_t m = va_arg(ap, mode_t);
  va_end(ap);
  if (NoTmpfile(flags)) return -1;
  if ((flags & O_CREAT || (flags & O_TMPFILE) == O_TMPFILE) && Fail()) return -1;
  return NEXT(openat)(d, p, flags, m);
}
int openat64(int d, const char* p, int flags, ...) {
  va_list ap;
  va_start(ap, flags);
  mode_t m = va_arg(ap, mode_t);
  va_end(ap);
  if (NoTmpfile(flags)) return -1;
  if ((flags & O_CREAT || (flags & O_TMPFILE) == O_TMPFILE) && Fail()) return -1;
  return NEXT(openat64)(d, p, flags, m);
}
