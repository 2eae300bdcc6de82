#include "region/fault_guard.h"

#include <signal.h>
#include <sys/mman.h>

#include <atomic>
#include <mutex>

namespace daxfs {
namespace {

constexpr int kMaxMappings = 256;  // regions open at once in one process

// The handler reads a slot only in state kReady.
enum SlotState : int { kFree, kBusy, kReady };
struct Slot {
  std::atomic<int> state{kFree};
  std::atomic<uintptr_t> base{0};
  std::atomic<size_t> size{0};
  std::atomic<int> prot{0};
  std::atomic<int64_t> fault{-1};
};
Slot g_slots[kMaxMappings];
struct sigaction g_previous;
std::once_flag g_install_once;

void OnSigbus(int sig, siginfo_t* info, void* context) {
  if (info != nullptr && info->si_code > 0) {  // a fault, not kill(2)
    const auto addr = reinterpret_cast<uintptr_t>(info->si_addr);
    for (Slot& s : g_slots) {
      if (s.state.load() != kReady) continue;
      const uintptr_t base = s.base.load();
      const size_t size = s.size.load();
      if (addr < base || addr - base >= size) continue;
      // Zero pages over the whole mapping: this access is retried and
      // succeeds, and no other access faults again.
      if (mmap(reinterpret_cast<void*>(base), size, s.prot.load(),
               MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED, -1, 0) == MAP_FAILED)
        break;
      int64_t none = -1;
      s.fault.compare_exchange_strong(none, static_cast<int64_t>(addr - base));
      return;
    }
  }
  // Not ours: behave as without the guard.
  if ((g_previous.sa_flags & SA_SIGINFO) && g_previous.sa_sigaction != nullptr) {
    g_previous.sa_sigaction(sig, info, context);
    return;
  }
  if (g_previous.sa_handler != SIG_DFL && g_previous.sa_handler != SIG_IGN) {
    g_previous.sa_handler(sig);
    return;
  }
  signal(sig, SIG_DFL);
  // A fault repeats on return and now kills; a sent signal is re-raised.
  if (info == nullptr || info->si_code <= 0) {
    if (g_previous.sa_handler == SIG_IGN) return;
    raise(sig);
  }
}

void Install() {
  std::call_once(g_install_once, [] {
    struct sigaction sa{};
    sa.sa_sigaction = OnSigbus;
    sa.sa_flags = SA_SIGINFO | SA_NODEFER;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGBUS, &sa, &g_previous);
  });
}

}  // namespace

int GuardMapping(void* base, size_t size, int prot) {
  Install();
  for (int i = 0; i < kMaxMappings; ++i) {
    int expected = kFree;
    if (!g_slots[i].state.compare_exchange_strong(expected, kBusy)) continue;
    g_slots[i].base = reinterpret_cast<uintptr_t>(base);
    g_slots[i].size = size;
    g_slots[i].prot = prot;
    g_slots[i].fault = -1;
    g_slots[i].state = kReady;
    return i;
  }
  return -1;
}

void UnguardMapping(int handle) {
  if (handle >= 0 && handle < kMaxMappings) g_slots[handle].state = kFree;
}

int64_t MappingFaultOffset(int handle) {
  if (handle < 0 || handle >= kMaxMappings) return -1;
  return g_slots[handle].fault.load();
}

}  // namespace daxfs
