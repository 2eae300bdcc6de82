// Attach entries: who uses a region, and whether they still live, judged
// by heartbeats in the region alone (docs/BRANCHES.md, "The protocol").
#include <pthread.h>
#include <signal.h>
#include <sys/stat.h>
#include <unistd.h>
#define XXH_STATIC_LINKING_ONLY
#include <xxhash.h>

#include <cstdio>
#include <mutex>
#include <new>
#include <set>
#include <fstream>
#include <string>

#include "branch/shared.h"

namespace daxfs {

using branch::A;
using branch::LoadAcq;
using branch::StoreRel;

namespace branch {

namespace {
// Field 3 of /proc/PID/stat (R, S, T, Z, ...), or 0 if it cannot be read.
char ProcessState(pid_t pid) {
  char path[64];
  std::snprintf(path, sizeof path, "/proc/%d/stat", static_cast<int>(pid));
  std::ifstream f(path);
  std::string s;
  if (!std::getline(f, s)) return 0;
  const size_t close = s.rfind(')');
  if (close == std::string::npos || close + 2 >= s.size()) return 0;
  return s[close + 2];
}
}  // namespace

bool ProcessIsZombie(pid_t pid) {
  const char state = ProcessState(pid);
  return state == 'Z' || state == 'X';
}

bool ProcessRunning(uint64_t pid) {
  if (pid == 0 || pid > INT32_MAX) return false;
  const char state = ProcessState(static_cast<pid_t>(pid));
  return state != 0 && state != 'T' && state != 't' && state != 'Z' && state != 'X';
}

bool ProcessGone(uint64_t pid) {
  if (pid == 0 || pid > INT32_MAX) return true;
  if (kill(static_cast<pid_t>(pid), 0) != 0 && errno == ESRCH) return true;
  return ProcessIsZombie(static_cast<pid_t>(pid));
}

uint64_t LocalKey() {
  std::ifstream f("/proc/sys/kernel/random/boot_id");
  std::string id;
  std::getline(f, id);
  struct stat ns;
  if (stat("/proc/self/ns/pid", &ns) == 0) id += ":" + std::to_string(ns.st_ino) + ":" + std::to_string(ns.st_dev);
  const uint64_t h = XXH3_64bits(id.data(), id.size());
  return h == 0 ? 1 : h;
}

}  // namespace branch

namespace {
// fork() with a heartbeat thread running: the child gets only the forking
// thread, and must not inherit a lock (an allocator's) that the heartbeat
// thread held at that instant. So around fork every heartbeat thread is
// stopped (joined) and started again in the parent; a child that goes on
// using a store starts its own (AdoptAfterFork).
std::mutex g_beating_mu;
std::set<BranchStore::Impl*>& Beating() {
  static std::set<BranchStore::Impl*> s;
  return s;
}
void JoinBeater(BranchStore::Impl* m) {
  if (!m->beater) return;
  {
    std::lock_guard lk(m->beat_mu);
    m->beat_stop = true;
  }
  m->beat_cv.notify_all();
  if (m->beater->joinable()) m->beater->join();
  m->beater.reset();
}
void BeforeFork() {
  g_beating_mu.lock();
  for (auto* m : Beating()) JoinBeater(m);
}
void AfterForkParent() {
  auto beating = Beating();
  g_beating_mu.unlock();
  for (auto* m : beating) m->StartHeartbeat();
}
void AfterForkChild() {
  Beating().clear();
  g_beating_mu.unlock();
}
std::once_flag g_atfork_once;

// An entry's owner word in use by incarnation `inc`, and the incarnation an
// owner word names (Holder keeps 48 bits of it).
constexpr uint64_t OwnerInUse(uint64_t inc) { return inc << 1 | 1; }
constexpr uint64_t IncarnationOf(uint64_t owner) { return (owner >> 1) & (bf::kHolderMask >> 8); }
}  // namespace

Status BranchStore::Impl::NotEvicted() const {
  if (evicted.load(std::memory_order_acquire))
    return Status::Stale(where() + ": this process lost its place in the region: it was stopped or starved "
                                   "longer than the lease timeout (" +
                         std::to_string(timeout.count()) + " ms) and others took over what it held; open the region again");
  return Status::OK();
}

bool BranchStore::Impl::EntryLive(uint32_t i) const {
  if (i >= bf::kAttachCount) return false;
  bf::AttachEntry& e = attach[i];
  const uint64_t owner = A(e.owner).load(std::memory_order_seq_cst);
  if (!(owner & 1)) return false;
  if (static_cast<int>(i) == attach_idx && owner == owner_word) return !evicted.load(std::memory_order_relaxed);
  // Inside one kernel and pid namespace a pid that is not there is gone now.
  if (LoadAcq(e.boot) == local_key && branch::ProcessGone(LoadAcq(e.pid))) return false;
  // Anywhere: a heartbeat that stood still for the lease timeout, seen
  // with this process's own clock (kernels share no clock).
  const uint64_t beat = LoadAcq(e.heartbeat);
  const auto now = std::chrono::steady_clock::now();
  std::lock_guard lk(seen_mu);
  Seen& s = seen[i];
  if (s.owner != owner || s.since == std::chrono::steady_clock::time_point{}) {
    s = Seen{owner, beat, now, false};
    return true;
  }
  if (s.beat != beat) {
    s.beat = beat;
    s.since = now;
    s.moved = true;
    return true;
  }
  return now - s.since < timeout;
}

bool BranchStore::Impl::HolderBeating(bf::Holder h) const {
  if (!HolderLive(h)) return false;
  if (h == me) return true;
  const uint32_t i = bf::HolderEntry(h);
  bf::AttachEntry& e = attach[i];
  // In this kernel a running (not stopped) process is alive now.
  if (LoadAcq(e.boot) == local_key && branch::ProcessRunning(LoadAcq(e.pid))) return true;
  std::lock_guard lk(seen_mu);
  return seen[i].moved;
}

bool BranchStore::Impl::HolderLive(bf::Holder h) const {
  if (h == 0) return false;
  if (h == me) return !evicted.load(std::memory_order_relaxed);
  const uint32_t i = bf::HolderEntry(h);
  if (i >= bf::kAttachCount) return false;
  const uint64_t owner = A(attach[i].owner).load(std::memory_order_seq_cst);
  if (!(owner & 1) || IncarnationOf(owner) != bf::HolderIncarnation(h)) return false;
  return EntryLive(i);
}

pid_t BranchStore::Impl::HolderPid(bf::Holder h) const {
  if (!HolderLive(h)) return 0;
  bf::AttachEntry& e = attach[bf::HolderEntry(h)];
  if (LoadAcq(e.boot) != local_key) return 0;
  return static_cast<pid_t>(LoadAcq(e.pid));
}

std::string BranchStore::Impl::HolderLabel(bf::Holder h) const {
  if (const pid_t p = HolderPid(h)) return "pid " + std::to_string(p);
  return "a process of another kernel or pid namespace (attach entry " + std::to_string(bf::HolderEntry(h)) + ")";
}

Status BranchStore::Impl::Attach() {
  local_key = branch::LocalKey();
  pid = getpid();
  // A free entry first; else one whose user is gone (within this kernel at
  // once, elsewhere once its heartbeat stood still for the timeout).
  const auto deadline = std::chrono::steady_clock::now() + timeout + timeout / 2;
  for (int round = 0; attach_idx < 0; ++round) {
    for (uint32_t i = 0; i < bf::kAttachCount && attach_idx < 0; ++i) {
      bf::AttachEntry& e = attach[i];
      uint64_t owner = A(e.owner).load(std::memory_order_acquire);
      if ((owner & 1) && (round == 0 || EntryLive(i))) continue;
      const uint64_t next = OwnerInUse((owner >> 1) + 1);
      // Our heartbeat and pid before the entry is ours: whoever sees the
      // new owner sees them (CAS with release order).
      StoreRel(e.heartbeat, LoadAcq(e.heartbeat) + 1);
      if (!A(e.owner).compare_exchange_strong(owner, next, std::memory_order_seq_cst)) continue;
      StoreRel(e.pid, static_cast<uint64_t>(pid));
      StoreRel(e.boot, local_key);
      attach_idx = static_cast<int>(i);
      owner_word = next;
      me = bf::MakeHolder(i, IncarnationOf(next));
      // Viewer bits a gone user of this entry left are not ours.
      for (uint32_t sl = 0; sl < bf::kSlotCount; ++sl)
        A(slots[sl].viewers[i / 64]).fetch_and(~(uint64_t{1} << (i % 64)), std::memory_order_acq_rel);
    }
    if (attach_idx >= 0) break;
    if (std::chrono::steady_clock::now() > deadline)
      return Status::Busy(where() + ": " + std::to_string(bf::kAttachCount) +
                          " live users have this region open (the most a region tracks); close one and retry");
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
  StartHeartbeat();
  return Status::OK();
}

void BranchStore::Impl::StartHeartbeat() {
  std::call_once(g_atfork_once, [] { pthread_atfork(BeforeFork, AfterForkParent, AfterForkChild); });
  {
    std::lock_guard lk(beat_mu);
    beat_stop = false;
  }
  {
    std::lock_guard lk(g_beating_mu);
    Beating().insert(this);
  }
  const auto period = std::max(timeout / 8, std::chrono::milliseconds(10));
  beater = std::make_unique<std::thread>([this, period] {
    bf::AttachEntry& e = attach[attach_idx];
    std::unique_lock lk(beat_mu);
    while (!beat_cv.wait_for(lk, period, [&] { return beat_stop; })) {
      if (A(e.owner).load(std::memory_order_acquire) != owner_word) {
        // Someone took our entry: we were judged gone. Stop claiming life.
        evicted.store(true, std::memory_order_release);
        return;
      }
      A(e.heartbeat).fetch_add(1, std::memory_order_acq_rel);
    }
  });
}

void BranchStore::Impl::StopHeartbeat() {
  std::lock_guard lk(g_beating_mu);
  Beating().erase(this);
  JoinBeater(this);
}

void BranchStore::Impl::Detach() {
  StopHeartbeat();
  if (attach_idx < 0) return;
  bf::AttachEntry& e = attach[attach_idx];
  // Free (even): the incarnation stays, so a later claim makes a new one.
  uint64_t owner = owner_word;
  A(e.owner).compare_exchange_strong(owner, owner_word & ~uint64_t{1}, std::memory_order_seq_cst);
  attach_idx = -1;
}

void BranchStore::AdoptAfterFork() {
  Impl& m = *impl_;
  if (getpid() == m.pid) return;  // no fork happened (a mount in the foreground)
  // The fork handler stopped the heartbeat thread before the fork; the
  // child beats with its own from now on.
  m.pid = getpid();
  if (m.attach_idx < 0) return;
  bf::AttachEntry& e = m.attach[m.attach_idx];
  if (LoadAcq(e.owner) != m.owner_word) return;
  StoreRel(e.pid, static_cast<uint64_t>(m.pid));
  m.StartHeartbeat();
}

}  // namespace daxfs
