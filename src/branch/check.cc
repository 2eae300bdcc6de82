// Checking a branch region's control block and its live logs.
#include <set>

#include "branch/shared.h"
#include "daxfs/check.h"

namespace daxfs {

using branch::A;
using branch::LoadAcq;

namespace branch {

Status RefuseIfDamaged(const BranchStore::Impl& m, const std::string& what) {
  uint64_t n = 0;
  std::string first;
  CheckControlBlock(m, [&](const std::string& p) {
    if (n++ == 0) first = p;
  });
  if (n == 0) return Status::OK();
  return Status::Corruption(m.where() + ": " + what + " refused: the control block has " + std::to_string(n) +
                            " problem(s), first: " + first + " (run daxfs branch check REGION)");
}

// The control block, the free table, every slot and every live branch's
// log. Gc runs it too: damage found here must stop anything that would
// free or hand out pages.
uint64_t CheckControlBlock(const BranchStore::Impl& m, const std::function<void(const std::string&)>& report) {
  uint64_t problems = 0;
  auto problem = [&](const std::string& s) {
    ++problems;
    if (report) report(s);
  };
  const uint64_t cursor = LoadAcq(m.hdr->delta_cursor);
  if (cursor < bf::kDeltaReserved || cursor > m.geo.delta_size)
    problem("delta cursor " + std::to_string(cursor) + " outside the delta area");
  if (LoadAcq(m.hdr->next_inode_id) <= m.geo.base_inodes) problem("next inode number below the base's");
  // The free table: every extent inside the handed-out delta area, none
  // overlapping another or a page a live log refers to. Marked first: pages
  // taken from the table after the marking are not in it when it is read,
  // and pages that join it meanwhile (online reclamation) were never live,
  // so concurrent writers and reclamation cause no false report.
  std::vector<bool> live;
  if (Status st = m.MarkLive(&live); !st.ok()) {
    problem(st.message());
  } else {
    std::vector<bool> seen(live.size(), false);
    for (uint32_t i = 0; i < bf::kFreeExtents; ++i) {
      const uint64_t w = LoadAcq(m.hdr->free_extents[i]);
      if (w == 0 || bf::FreeExtentReserved(w)) continue;  // empty, or being filled by a reclaimer
      const uint64_t first = bf::FreeExtentFirst(w), n = bf::FreeExtentPages(w);
      const std::string at = "free extent " + std::to_string(i) + " (delta pages " + std::to_string(first) +
                             "+" + std::to_string(n) + ")";
      if (first > live.size() || n > live.size() - first) {
        // Pages taken since the marking moved the cursor too; only an
        // extent beyond the cursor read now is wrong.
        if (first + n > LoadAcq(m.hdr->delta_cursor) / bf::kPage) problem(at + ": beyond the delta cursor");
        continue;
      }
      for (uint64_t p = first; p < first + n; ++p) {
        if (live[p]) {
          problem(at + ": page " + std::to_string(p) + " is in use by a live branch");
          break;
        }
        if (seen[p]) {
          problem(at + ": page " + std::to_string(p) + " is in another free extent too");
          break;
        }
        seen[p] = true;
      }
    }
  }
  std::set<std::string> active_names;
  for (uint32_t s = 0; s < bf::kSlotCount; ++s) {
    const bf::Slot& sl = m.slots[s];
    const uint32_t st = branch::StateOf(sl);
    if (st == bf::kFree || st == bf::kClaimed) continue;
    const std::string nm = m.SlotName(s);
    const std::string at = "branch '" + nm + "' (slot " + std::to_string(s) + ")";
    if (st > bf::kEnding) {
      problem(at + ": invalid state " + std::to_string(st));
      continue;
    }
    if (strnlen(sl.name, sizeof sl.name) >= sizeof sl.name || nm.empty()) problem(at + ": bad name");
    if (s == bf::kMainSlot && st != bf::kActive) problem("main is not active");
    if (bf::PublishedLen(LoadAcq(const_cast<bf::Slot&>(sl).published)) > m.geo.delta_size)
      problem(at + ": published log length beyond the delta area");
    if (s != bf::kMainSlot) {
      if (sl.parent_slot >= bf::kSlotCount || m.slots[sl.parent_slot].id != sl.parent_id ||
          sl.id <= sl.parent_id)
        problem(at + ": invalid parent");
      else if (branch::Live(st) && !branch::Live(branch::StateOf(m.slots[sl.parent_slot])))
        problem(at + ": active, but its parent is not");
    }
    if (branch::Live(st) && !active_names.insert(nm).second) problem(at + ": duplicate active name");
    if (!branch::Live(st)) continue;
    uint64_t applied = 0;
    auto idx = m.BuildIndex(s, &applied);
    if (!idx.ok()) problem(at + ": " + idx.status().message());
  }
  return problems;
}

}  // namespace branch

uint64_t BranchStore::Check(const std::function<void(const std::string&)>& report) const {
  const Impl& m = *impl_;
  uint64_t problems = 0;
  CheckOptions co;
  co.verify_data = true;
  co.report = [&](const std::string& s) {
    ++problems;
    if (report) report("base image: " + s);
  };
  CheckImage(*m.base, co);
  return problems + branch::CheckControlBlock(m, report);
}


}  // namespace daxfs
