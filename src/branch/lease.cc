// Writer leases: who may append to a log. A lease names an attach entry's
// incarnation; a gone holder's lease is taken over and its epoch bumped, so
// that the old holder, if it was only paused, can publish nothing more.
#include <thread>

#include "branch/shared.h"

namespace daxfs {

using branch::A;
using branch::LoadAcq;

Status BranchStore::Impl::TakeLease(uint32_t s, bool wait) {
  DAXFS_RETURN_IF_ERROR(NotEvicted());
  LeaseHold& hold = lease_hold[s];
  bf::Slot& sl = slots[s];
  auto word = A(sl.lease);
  if (hold.holds > 0) {
    if (word.load(std::memory_order_seq_cst) != me)
      return Status::Stale(where() + ": branch '" + SlotName(s) + "': its writer lease was taken over "
                                     "(this process was stopped past the lease timeout)");
    ++hold.holds;
    return Status::OK();
  }
  // A live holder keeps a short lease (one write to main, one commit)
  // for microseconds, or is stopped: then its heartbeat stops and it is
  // taken over. Waiting longer than that means it is a long-lived writer.
  // Without `wait` a holder seen alive means no at once; one not seen
  // beating yet is watched until it beats or stands still for the timeout
  // (a writer in a VM that was paused is taken over by the next writer).
  const auto now = std::chrono::steady_clock::now();
  const auto deadline = now + (wait ? 4 * timeout : timeout + timeout / 4);
  for (int spins = 0;; ++spins) {
    uint64_t cur = word.load(std::memory_order_seq_cst);
    if (cur == 0) {
      if (!word.compare_exchange_strong(cur, me, std::memory_order_seq_cst)) continue;
      // The last holder let go after its last publish: its epoch stays.
      hold = LeaseHold{1, bf::PublishedEpoch(A(sl.published).load(std::memory_order_seq_cst))};
      return Status::OK();
    }
    if (cur == me || !HolderLive(cur)) {
      if (!word.compare_exchange_strong(cur, me, std::memory_order_seq_cst)) continue;
      // Fence the old holder: its publish expects the old epoch.
      auto pub = A(sl.published);
      uint64_t w = pub.load(std::memory_order_seq_cst);
      while (!pub.compare_exchange_weak(w, bf::PublishedWord(bf::PublishedEpoch(w) + 1, bf::PublishedLen(w)),
                                        std::memory_order_seq_cst)) {
      }
      // It may still be writing into the tail chunk: our first append
      // starts a new one at the published length (the tail is not stamped
      // with our epoch), and it writes into none of ours.
      hold = LeaseHold{1, (bf::PublishedEpoch(w) + 1) & 0xffff};
      return Status::OK();
    }
    if ((!wait && HolderBeating(cur)) || std::chrono::steady_clock::now() > deadline)
      return Status::Busy(where() + ": branch '" + SlotName(s) + "' is open for writing by " + HolderLabel(cur) +
                          "; close it there first");
    if (spins < 64)
      std::this_thread::yield();
    else
      std::this_thread::sleep_for(std::chrono::microseconds(spins < 1000 ? 100 : 1000));
  }
}

void BranchStore::Impl::DropLease(uint32_t s) {
  LeaseHold& hold = lease_hold[s];
  if (hold.holds == 0 || --hold.holds > 0) return;
  uint64_t cur = me;
  // Fails only if it was taken over: then it is not ours to clear.
  A(slots[s].lease).compare_exchange_strong(cur, uint64_t{0}, std::memory_order_seq_cst);
}

}  // namespace daxfs
