#include "fuse/region_guard.h"

#include <signal.h>
#include <sys/mman.h>
#include <unistd.h>

#include <atomic>
#include <cstdint>
#include <cstring>

namespace daxfs::fuse {
namespace {

std::atomic<uintptr_t> g_base{0};
std::atomic<size_t> g_size{0};
std::atomic<bool> g_lost{false};

// Async-signal-safe output: no stdio in a signal handler.
void WriteAll(const char* s) { (void)!write(STDERR_FILENO, s, std::strlen(s)); }
void WriteHex(uint64_t v) {
  char buf[19] = "0x";
  int n = 2;
  for (int shift = 60; shift >= 0; shift -= 4) {
    const unsigned digit = (v >> shift) & 0xf;
    if (digit != 0 || n > 2 || shift == 0) buf[n++] = "0123456789abcdef"[digit];
  }
  buf[n] = '\0';
  WriteAll(buf);
}

void OnSigbus(int sig, siginfo_t* info, void*) {
  const uintptr_t base = g_base.load();
  const size_t size = g_size.load();
  const auto addr = reinterpret_cast<uintptr_t>(info->si_addr);
  if (addr < base || addr - base >= size) {
    // Not ours: die as we would have without the guard.
    signal(sig, SIG_DFL);
    return;
  }
  // Zero pages over the whole mapping: the faulting access is retried and
  // succeeds, and no other thread faults again. Replies are replaced by EIO.
  if (mmap(reinterpret_cast<void*>(base), size, PROT_READ, MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED, -1, 0) ==
      MAP_FAILED) {
    signal(sig, SIG_DFL);
    return;
  }
  if (!g_lost.exchange(true)) {
    WriteAll("daxfs-mount: the image's memory went away under the mount (bus error at region offset ");
    WriteHex(addr - base);
    WriteAll("; the backing file was truncated, its pages could not be provided (a sparse file on a full "
             "tmpfs) or the device was removed); unmounting\n");
    kill(getpid(), SIGTERM);
  }
}

}  // namespace

void GuardRegion(std::span<const std::byte> mapping) {
  const long page = sysconf(_SC_PAGESIZE);
  const auto base = reinterpret_cast<uintptr_t>(mapping.data());
  const uintptr_t aligned = base & ~static_cast<uintptr_t>(page - 1);
  const size_t size = (base - aligned + mapping.size() + page - 1) & ~static_cast<size_t>(page - 1);
  g_base = aligned;
  g_size = size;
  struct sigaction sa{};
  sa.sa_sigaction = OnSigbus;
  sa.sa_flags = SA_SIGINFO | SA_NODEFER;
  sigemptyset(&sa.sa_mask);
  sigaction(SIGBUS, &sa, nullptr);
}

bool RegionLost() { return g_lost.load(std::memory_order_relaxed); }

void ProbeTail(std::span<const std::byte> bytes) {
  if (bytes.empty()) return;
  const volatile std::byte* last = &bytes.back();
  (void)*last;
}

}  // namespace daxfs::fuse
