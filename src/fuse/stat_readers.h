// Which processes read attributes of what they list (see StatReaders).
#pragma once

#include <sys/types.h>

#include <array>
#include <atomic>

namespace daxfs::fuse {

// READDIRPLUS makes the kernel build an inode and a dentry for every entry
// it returns. A reader that only walks names (find, ls without -l) needs
// those of the directories it descends into (7% of a system tree's
// entries) and pays for all: on a cold tree, half of `find`'s time. A reader that stats what it lists
// (ls -l, tar, du, cp -a) wants them all, or it pays a LOOKUP round trip
// per entry. So entries other than directories get their attributes only
// for a process that has looked up such an entry by name before: its first
// directory costs LOOKUPs, later ones come with attributes.
//
// A hint, not a record: a fixed, direct-mapped table of thread ids (what
// FUSE reports as the requester's pid); a collision or a reused id only
// changes which form a reply takes, never what it says.
class StatReaders {
 public:
  void Note(pid_t pid) { slots_[Slot(pid)].store(pid, std::memory_order_relaxed); }
  bool Has(pid_t pid) const { return pid != 0 && slots_[Slot(pid)].load(std::memory_order_relaxed) == pid; }

 private:
  static size_t Slot(pid_t pid) { return static_cast<size_t>(pid) % kSlots; }
  static constexpr size_t kSlots = 251;
  std::array<std::atomic<pid_t>, kSlots> slots_{};
};

}  // namespace daxfs::fuse
