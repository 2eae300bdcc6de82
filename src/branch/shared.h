// Access to the control block and the logs of a branchable region.
#pragma once

#include <sys/types.h>

#include <atomic>
#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <set>
#include <string>
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

// The process start time (clock ticks since boot, /proc/PID/stat field 22),
// 0 if the process does not exist.
uint64_t ProcessStartTime(pid_t pid);
// True if pid has exited and waits to be reaped (a zombie): it holds nothing.
bool ProcessIsZombie(pid_t pid);
// True if (pid, start) names a live process (pid reuse is told apart by the
// start time).
bool ProcessAlive(uint64_t pid, uint64_t start);

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
  uint64_t start_time = 0;
  uint64_t token = 0;
  int attach_idx = -1;
  bool needs_msync = false;
  // A file (tmpfs, memfd, ...): fallocate what Alloc hands out. Cleared the
  // first time the filesystem says it cannot (then every call would fail).
  std::atomic<bool> allocate_on_demand{false};
  // In-process serialization of appends to each slot's log (a commit from
  // this process into a branch this process writes).
  std::mutex append_mu[bf::kSlotCount];
  std::mutex state_mu;            // guards writer_open
  bool writer_open[bf::kSlotCount] = {};
  // Branch objects of this store alive now (gc frees blocks their spans
  // may point into, so it waits until they are gone).
  std::atomic<int> open_views{0};

  std::string where() const { return region->name(); }
  std::string SlotName(uint32_t s) const;

  // The robust mutex; recovers after a holder died.
  Status Lock();
  void Unlock();
  void Recover();

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
  // Online reclamation (no exclusivity needed), under the region mutex:
  // frees the slots and pages of aborted branches nobody has a view of,
  // and the slots of self-contained committed ones.
  GcResult ReclaimEndedLocked();
  // Whether a live attached process other than this one has a view of slot s.
  bool Viewed(uint32_t s) const;
  // In-process count of open views per slot (state_mu): the slot's viewer
  // bit for this process's attach entry is set while it is above 0.
  uint32_t view_count[bf::kSlotCount] = {};
  void AddViewer(uint32_t s);
  void AddViewerLocked(uint32_t s);  // the caller holds state_mu
  void DropViewer(uint32_t s);
  // Appends one encoded record to slot s's log and publishes it. The caller
  // holds append_mu[s] and is the log's only appender. Returns the position.
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
  bool LeaseLive(const bf::Slot& s) const;
  BranchInfo MakeInfo(uint32_t s) const;
  void Detach();
};

}  // namespace daxfs
