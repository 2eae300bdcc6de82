// Access to the control block and the logs of a branchable region.
#pragma once

#include <sys/types.h>

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <set>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "branch/index.h"
#include "branch/record.h"
#include "daxfs/branch.h"
#include "daxfs/branch_format.h"

namespace daxfs::branch {

namespace bf = daxfs::format::branch;

template <typename T>
inline std::atomic_ref<T> A(T& field) {
  return std::atomic_ref<T>(field);
}
template <typename T>
inline T LoadAcq(T& field) {
  return std::atomic_ref<T>(field).load(std::memory_order_acquire);
}
template <typename T>
inline void StoreRel(T& field, T v) {
  std::atomic_ref<T>(field).store(v, std::memory_order_release);
}

// True if pid has exited and waits to be reaped (a zombie): it holds nothing.
bool ProcessIsZombie(pid_t pid);
// True if no process `pid` lives in this pid namespace (or only a zombie).
bool ProcessGone(uint64_t pid);
// True for a process of this kernel that exists and is not stopped.
bool ProcessRunning(uint64_t pid);
// This kernel's boot and this process's pid namespace, hashed (never 0):
// attach entries with the same key may be judged by their pid.
uint64_t LocalKey();

// A slot's state (SlotWordState of its state word).
inline uint32_t StateOf(const bf::Slot& s) {
  return bf::SlotWordState(std::atomic_ref<uint64_t>(const_cast<bf::Slot&>(s).state).load(std::memory_order_seq_cst));
}
// Active for readers: active, or being committed or aborted (not yet ended).
inline bool Live(uint32_t st) { return st == bf::kActive || st == bf::kEnding; }
inline uint64_t PublishedLenOf(const bf::Slot& s) {
  return bf::PublishedLen(std::atomic_ref<uint64_t>(const_cast<bf::Slot&>(s).published).load(std::memory_order_acquire));
}

inline constexpr uint64_t kFirstChunk = 4 * 1024;  // one page: most branches write little, history keeps every log
inline constexpr uint64_t kMaxChunk = 1024 * 1024;
inline constexpr int kMaxDepth = 64;

// Keys a log touched, for the sibling rule (docs/BRANCHES.md).
struct Keys {
  std::set<std::pair<Ino, std::string>> entries;  // (dir, name)
  std::set<Ino> inodes;   // data, attributes, xattrs, or the inode removed
  std::set<Ino> used;     // used as a directory or a link target
  std::set<Ino> deleted;  // removed (and so gone for later users)
  void Add(const Record& r);
};

}  // namespace daxfs::branch

namespace daxfs {

namespace bf = daxfs::format::branch;

struct BranchStore::Impl {
  std::shared_ptr<Region> region;
  std::shared_ptr<const Image> base;
  std::byte* mem = nullptr;
  uint64_t control_off = 0;
  bf::ControlHeader* hdr = nullptr;
  bf::Slot* slots = nullptr;
  bf::AttachEntry* attach = nullptr;
  branch::Geometry geo;
  pid_t pid = 0;
  uint64_t local_key = 0;  // LocalKey()
  int attach_idx = -1;
  uint64_t owner_word = 0;  // what our attach entry's owner holds while it is ours
  bf::Holder me = 0;        // ourselves in leases and claims
  std::chrono::milliseconds timeout{bf::kLeaseTimeoutDefaultMs};
  bool needs_msync = false;
  // A file (tmpfs, memfd, ...): fallocate what Alloc hands out. Cleared the
  // first time the filesystem says it cannot (then every call would fail).
  std::atomic<bool> allocate_on_demand{false};
  // In-process serialization of appends to each slot's log (a commit from
  // this process into a branch this process writes), and of our use of
  // its lease.
  std::mutex append_mu[bf::kSlotCount];
  // Our hold of slot s's writer lease (append_mu[s]): how many users here
  // (a writer Branch, a commit into it, one write to main) and the epoch
  // it was taken under (appends write only into chunks stamped with it).
  struct LeaseHold {
    int holds = 0;
    uint64_t epoch = 0;
  };
  LeaseHold lease_hold[bf::kSlotCount];
  std::mutex state_mu;            // guards writer_open
  bool writer_open[bf::kSlotCount] = {};

  // Liveness of other attach entries, as this process observed them: the
  // owner word and heartbeat last seen and since when (steady clock), and
  // whether we saw the heartbeat move (then it was alive while we looked).
  struct Seen {
    uint64_t owner = 0, beat = 0;
    std::chrono::steady_clock::time_point since;
    bool moved = false;
  };
  mutable std::mutex seen_mu;
  mutable Seen seen[bf::kAttachCount];
  // The heartbeat of our attach entry.
  std::unique_ptr<std::thread> beater;
  std::mutex beat_mu;
  std::condition_variable beat_cv;
  bool beat_stop = false;
  // Our entry was taken by someone else: we were paused (or starved)
  // longer than the lease timeout and judged gone. Everything is ESTALE.
  std::atomic<bool> evicted{false};
  // Branch objects of this store alive now (gc frees blocks their spans
  // may point into, so it waits until they are gone).
  std::atomic<int> open_views{0};

  std::string where() const { return region->name(); }
  std::string SlotName(uint32_t s) const;

  // ---- liveness (liveness.cc) ----
  Status Attach();
  void Detach();
  void StartHeartbeat();
  void StopHeartbeat();
  // Whether `h` still holds what it claims: its entry has its incarnation
  // and has not been seen still for the lease timeout (false for 0).
  bool HolderLive(bf::Holder h) const;
  // Whether `h` is known to be alive now: a running process of this kernel,
  // or a heartbeat we saw move. A holder that is live only because we have
  // not watched it for the timeout yet is not: it may be stopped.
  bool HolderBeating(bf::Holder h) const;
  // Whether attach entry i is in use by a live user (ourselves included).
  bool EntryLive(uint32_t i) const;
  // "pid N" (same kernel) or "attach entry I of another kernel".
  std::string HolderLabel(bf::Holder h) const;
  pid_t HolderPid(bf::Holder h) const;  // 0 unless a live process of this kernel
  Status NotEvicted() const;

  // ---- leases (lease.cc); the caller holds append_mu[s] ----
  // Takes (or holds once more) slot s's writer lease. A live other holder:
  // wait (for main's short leases) up to the lease timeout, else EBUSY.
  // A gone holder's lease is taken over and fenced.
  Status TakeLease(uint32_t s, bool wait);
  void DropLease(uint32_t s);
  bool HoldsLease(uint32_t s) const { return lease_hold[s].holds > 0; }

  // ---- slot transitions (lifecycle.cc) ----
  // Finishes or undoes what a gone holder left half done: a slot it was
  // making (freed), a commit or abort it was ending (committed if its merge
  // record is in the parent, else active again).
  void ResolveAbandoned();
  // Slot s is being ended by another holder: one known alive is left to it
  // (returns at once); one not seen beating yet (a fresh process cannot
  // tell a dead kernel's holder from a live one at first sight) is watched
  // for up to the lease timeout and, once gone, what it left is resolved.
  // The caller then looks at the slot again. Takes append_mu: call it
  // without holding any.
  void WaitOutEnder(uint32_t s);
  bool CasState(uint32_t s, uint64_t expect, uint64_t want);

  // Delta-relative, page aligned, with memory behind it.
  Result<uint64_t> Alloc(uint64_t bytes);
  Result<uint64_t> AllocRange(uint64_t bytes);  // the same, without the memory
  uint64_t AllocFromFreeTable(uint64_t pages);  // 0 if no free extent fits
  // Marks every delta page a live log refers to (its chunks and the blocks
  // of its write records): the slots that are active, or committed into a
  // live parent. Fails on a log it cannot read (then nothing may be freed).
  Status MarkLive(std::vector<bool>* pages) const;
  // A log: its first chunk, and its slot when it is reached through one
  // (kNoSlot: through a self-contained merge record, the slot may be reused).
  static constexpr uint32_t kNoSlot = UINT32_MAX;
  struct LogRef {
    uint64_t first_chunk = 0;
    uint32_t slot = kNoSlot;
    uint64_t id = 0;
  };
  LogRef LogOf(uint32_t s) const { return LogRef{slots[s].first_chunk, s, slots[s].id}; }
  // Where a merge record of child `s` is in its parent's log, or UINT64_MAX.
  uint64_t FindMerge(uint32_t s) const;
  // Whether every merge in slot s's log [0, len) names its child's first
  // chunk (the log is then reached without the slots: kSlotSelfContained).
  Result<bool> LogSelfContained(uint32_t s, uint64_t len) const;
  // Slot s's merge record is at `at` in its parent: records that, and moves
  // the slot from `expect` (a state word) to committed.
  void FinishCommitted(uint32_t s, uint64_t at, uint64_t expect);
  std::string LogLabel(const LogRef& l) const;
  // The child log a merge record in `parent` names, checked.
  Result<LogRef> MergeChild(const branch::Record& r, const LogRef& parent) const;
  // Walks a log over logical [from, to), calling fn(pos, record).
  Status ReadChain(const LogRef& log, uint64_t from, uint64_t to,
                   const std::function<Status(uint64_t, const branch::Record&)>& fn) const;
  // Walks slot s's log over logical [from, to), calling fn(pos, record).
  Status ReadLog(uint32_t s, uint64_t from, uint64_t to,
                 const std::function<Status(uint64_t, const branch::Record&)>& fn) const {
    return ReadChain(LogOf(s), from, to, fn);
  }
  // Marks the pages of `log` (its chunks, its write records' blocks, and
  // recursively those of children merged through self-contained records).
  Status MarkLog(const LogRef& log, uint64_t len, const std::function<Status(uint64_t, uint64_t, const std::string&)>& mark,
                 int depth) const;
  // Online reclamation (no exclusivity needed: each group is claimed by CAS):
  // frees the slots and pages of aborted branches nobody has a view of,
  // and the slots of self-contained committed ones.
  GcResult ReclaimOnline();
  // Whether a live attached process other than this one has a view of slot s.
  bool Viewed(uint32_t s) const;
  // In-process count of open views per slot (state_mu): the slot's viewer
  // bit for this process's attach entry is set while it is above 0.
  uint32_t view_count[bf::kSlotCount] = {};
  void AddViewer(uint32_t s);
  void AddViewerLocked(uint32_t s);  // the caller holds state_mu
  void DropViewer(uint32_t s);
  // Appends one encoded record to slot s's log and publishes it with one
  // CAS under the lease's epoch (ESTALE if the lease was taken over). The
  // caller holds append_mu[s] and the lease. Returns the position.
  Result<uint64_t> Append(uint32_t s, std::span<const std::byte> rec);
  // Replays slot s's log [from, to) into idx (merge records replay the child).
  Status Replay(uint32_t s, uint64_t from, uint64_t to, branch::Index* idx, int depth) const {
    return ReplayLog(LogOf(s), from, to, idx, depth);
  }
  Status ReplayLog(const LogRef& log, uint64_t from, uint64_t to, branch::Index* idx, int depth) const;
  // A fresh index of slot s at its current published length (or `upto`).
  Result<std::unique_ptr<branch::Index>> BuildIndex(uint32_t s, uint64_t* applied,
                                                    uint64_t upto = UINT64_MAX) const;
  Status CollectKeys(uint32_t s, uint64_t from, uint64_t to, branch::Keys* keys, int depth) const {
    return CollectLogKeys(LogOf(s), from, to, keys, depth);
  }
  Status CollectLogKeys(const LogRef& log, uint64_t from, uint64_t to, branch::Keys* keys, int depth) const;
  // Slot of an active branch by name (or, with any_state, the newest slot
  // of that name); -1 if none.
  int FindSlot(std::string_view name, bool any_state = false) const;
  uint32_t ActiveChildren(uint32_t s) const;
  BranchInfo MakeInfo(uint32_t s) const;
};

namespace branch {
// Everything of the region but the base image (check.cc); returns the
// number of problems.
uint64_t CheckControlBlock(const BranchStore::Impl& m, const std::function<void(const std::string&)>& report);
// Anything that frees pages does so on what the control block says: on a
// damaged one it could free pages a live branch uses. `what` (e.g. "gc")
// is refused with the number of problems and the first.
Status RefuseIfDamaged(const BranchStore::Impl& m, const std::string& what);
}  // namespace branch

}  // namespace daxfs
