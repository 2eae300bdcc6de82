#include "output/interrupt.h"

#include <limits.h>
#include <signal.h>
#include <unistd.h>

#include <atomic>
#include <cstring>
#include <mutex>

namespace daxfs::output {
namespace {

constexpr int kSignals[] = {SIGINT, SIGTERM, SIGHUP};
constexpr int kSlots = 16;  // outputs being written at once in one process

// A slot is read by the handler only in state kReady, so a name being
// (un)registered is never half-read.
enum SlotState : int { kFree, kBusy, kReady };
struct Slot {
  std::atomic<int> state{kFree};
  int dir_fd = -1;
  char name[NAME_MAX + 1] = {};
};
Slot g_slots[kSlots];
std::atomic<int> g_defer_depth{0};
std::atomic<int> g_pending{0};
std::once_flag g_install_once;

void OnSignal(int sig) {
  const int saved = errno;
  for (Slot& s : g_slots)
    if (s.state.load() == kReady) unlinkat(s.dir_fd, s.name, 0);
  if (g_defer_depth.load() > 0) {
    g_pending.store(sig);
    errno = saved;
    return;
  }
  signal(sig, SIG_DFL);
  raise(sig);
  errno = saved;
}

void InstallHandlers() {
  std::call_once(g_install_once, [] {
    for (int sig : kSignals) {
      struct sigaction old{};
      if (sigaction(sig, nullptr, &old) != 0 || old.sa_handler != SIG_DFL ||
          (old.sa_flags & SA_SIGINFO))
        continue;  // the program handles or ignores it: leave it alone
      struct sigaction sa{};
      sa.sa_handler = OnSignal;
      sigemptyset(&sa.sa_mask);
      for (int other : kSignals) sigaddset(&sa.sa_mask, other);
      sigaction(sig, &sa, nullptr);
    }
  });
}

}  // namespace

TempName::TempName(int dir_fd, const std::string& name) {
  InstallHandlers();
  if (name.size() > NAME_MAX) return;
  for (int i = 0; i < kSlots; ++i) {
    int expected = kFree;
    if (!g_slots[i].state.compare_exchange_strong(expected, kBusy)) continue;
    g_slots[i].dir_fd = dir_fd;
    std::memcpy(g_slots[i].name, name.c_str(), name.size() + 1);
    g_slots[i].state.store(kReady);
    slot_ = i;
    return;
  }
}

TempName::~TempName() {
  if (slot_ >= 0) g_slots[slot_].state.store(kFree);
}

DeferInterrupts::DeferInterrupts() {
  InstallHandlers();
  g_defer_depth.fetch_add(1);
}

DeferInterrupts::~DeferInterrupts() {
  if (g_defer_depth.fetch_sub(1) == 1) {
    if (const int sig = g_pending.exchange(0); sig != 0) {
      signal(sig, SIG_DFL);
      raise(sig);
    }
  }
}

bool DeferInterrupts::Requested() { return g_pending.load(std::memory_order_relaxed) != 0; }

}  // namespace daxfs::output
