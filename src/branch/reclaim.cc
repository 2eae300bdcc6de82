// Reclaiming ended branches: online (claims by CAS, no exclusivity) and
// exclusive gc (alone on the region).
#include <fcntl.h>
#include <sys/mman.h>

#include <algorithm>

#include "branch/shared.h"

namespace daxfs {

using branch::A;
using branch::LoadAcq;
using branch::StoreRel;
using branch::Record;
using branch::kMaxDepth;

void BranchStore::Impl::AddViewer(uint32_t s) {
  std::lock_guard lk(state_mu);
  AddViewerLocked(s);
}

void BranchStore::Impl::AddViewerLocked(uint32_t s) {
  if (attach_idx < 0) return;
  ++view_count[s];
  // Always (idempotent): the bit must be set whenever the count is above 0.
  A(slots[s].viewers[attach_idx / 64]).fetch_or(uint64_t{1} << (attach_idx % 64), std::memory_order_seq_cst);
}

void BranchStore::Impl::DropViewer(uint32_t s) {
  if (attach_idx < 0) return;
  std::lock_guard lk(state_mu);
  if (view_count[s] == 0 || --view_count[s] > 0) return;
  A(slots[s].viewers[attach_idx / 64]).fetch_and(~(uint64_t{1} << (attach_idx % 64)), std::memory_order_seq_cst);
}

bool BranchStore::Impl::Viewed(uint32_t s) const {
  for (uint32_t i = 0; i < bf::kAttachCount; ++i) {
    const uint64_t word = A(const_cast<bf::Slot&>(slots[s]).viewers[i / 64]).load(std::memory_order_seq_cst);
    if (!(word >> (i % 64) & 1)) continue;
    if (static_cast<int>(i) == attach_idx) {
      std::lock_guard lk(const_cast<std::mutex&>(state_mu));
      if (view_count[s] > 0) return true;
      continue;
    }
    if (EntryLive(i)) return true;  // a gone viewer holds nothing
  }
  return false;
}

namespace {

// Puts pages [first, first + n) into the free table: each word is first
// reserved (0 -> reserved by us), then filled (reserved by us -> extent).
// A reclaimer stopped past its lease whose reservations were cleared can
// fill nothing when it resumes. False when the table is full: the pages
// then wait for the next exclusive gc.
bool GiveBack(BranchStore::Impl& m, uint64_t first, uint64_t n) {
  while (n > 0) {
    const uint64_t take = std::min(n, bf::kFreeCountMax);
    const uint64_t reserved = bf::kFreeReserved | m.me;
    bool put = false;
    for (uint32_t i = 0; i < bf::kFreeExtents && !put; ++i) {
      uint64_t zero = 0;
      auto w = A(m.hdr->free_extents[i]);
      if (!w.compare_exchange_strong(zero, reserved, std::memory_order_acq_rel)) continue;
      if (m.NotEvicted().ok()) {
        uint64_t mine = reserved;
        put = w.compare_exchange_strong(mine, bf::FreeExtent(first, take), std::memory_order_acq_rel);
      }
      if (!put) {
        uint64_t mine = reserved;
        w.compare_exchange_strong(mine, uint64_t{0}, std::memory_order_acq_rel);
        return false;
      }
    }
    if (!put) return false;
    A(m.hdr->free_pages).fetch_add(take, std::memory_order_acq_rel);
    first += take;
    n -= take;
  }
  return true;
}

// Clears free-table words reserved by reclaimers that are gone.
void ClearGoneReservations(BranchStore::Impl& m) {
  for (uint32_t i = 0; i < bf::kFreeExtents; ++i) {
    uint64_t w = LoadAcq(m.hdr->free_extents[i]);
    if (!bf::FreeExtentReserved(w) || m.HolderLive(w & bf::kHolderMask)) continue;
    A(m.hdr->free_extents[i]).compare_exchange_strong(w, uint64_t{0}, std::memory_order_acq_rel);
  }
}

}  // namespace

GcResult BranchStore::Impl::ReclaimOnline() {
  GcResult g;
  uint64_t leaked = 0, skipped_viewed = 0;
  ResolveAbandoned();
  ClearGoneReservations(*this);
  auto live = [&](uint32_t s) { return branch::StateOf(slots[s]); };
  // Whether committed `s` was merged, through committed branches only, into
  // `root` (its log is then reached through root's).
  auto dead_under = [&](uint32_t s, uint32_t root) {
    for (int hops = 0; hops < 300 && s != bf::kMainSlot; ++hops) {
      const uint32_t p = slots[s].parent_slot;
      if (p >= bf::kSlotCount || slots[p].id != slots[s].parent_id) return false;
      if (p == root) return true;
      if (live(p) != bf::kCommitted) return false;
      s = p;
    }
    return false;
  };
  // Each member of a group is claimed (ended -> ended, claimed by us) by
  // CAS before anything is freed: two reclaimers never free one slot, and
  // one that lost its claims (it was stopped past the lease timeout) frees
  // nothing when it resumes.
  auto claim = [&](const std::vector<uint32_t>& group, uint32_t st_root, std::vector<uint64_t>* words) {
    for (uint32_t x : group) {
      const uint32_t st = x == group[0] ? st_root : uint32_t{bf::kCommitted};
      if (!CasState(x, bf::SlotWord(st), bf::SlotWord(st, me))) {
        for (size_t k = 0; k < words->size(); ++k) CasState(group[k], (*words)[k], bf::SlotWord(k == 0 ? st_root : uint32_t{bf::kCommitted}));
        words->clear();
        return false;
      }
      words->push_back(bf::SlotWord(st, me));
    }
    return true;
  };
  auto free_group = [&](const std::vector<uint32_t>& group, const std::vector<uint64_t>& words) {
    uint32_t n = 0;
    for (size_t k = 0; k < group.size(); ++k) n += CasState(group[k], words[k], bf::SlotWord(bf::kFree)) ? 1 : 0;
    return n;
  };
  for (uint32_t s = 1; s < bf::kSlotCount; ++s) {
    const uint32_t st = live(s);
    if (st == bf::kCommitted) {
      const uint32_t p = slots[s].parent_slot;
      if (p >= bf::kSlotCount || slots[p].id != slots[s].parent_id || !branch::Live(live(p))) continue;
      // Committed into a live parent: its log stays (the parent's merge
      // record reaches it), and so do those of the branches merged into it;
      // their slots go together, children with their parent, so that none
      // is left behind a freed one.
      std::vector<uint32_t> group{s};
      for (uint32_t c = 1; c < bf::kSlotCount; ++c)
        if (c != s && live(c) == bf::kCommitted && dead_under(c, s)) group.push_back(c);
      if (!std::all_of(group.begin(), group.end(),
                       [&](uint32_t x) { return (slots[x].flags & bf::kSlotSelfContained) != 0; }))
        continue;
      std::vector<uint64_t> words;
      if (!claim(group, bf::kCommitted, &words)) continue;
      if (std::any_of(group.begin(), group.end(), [&](uint32_t x) { return Viewed(x); })) {
        for (size_t k = 0; k < group.size(); ++k) CasState(group[k], words[k], bf::SlotWord(bf::kCommitted));
        ++skipped_viewed;
        continue;
      }
      g.slots_freed += free_group(group, words);
      continue;
    }
    if (st != bf::kAborted) continue;
    // The aborted branch and the committed branches merged into it: nobody
    // may have a view of any of them (their spans would point into pages
    // given back here).
    std::vector<uint32_t> group{s};
    for (uint32_t c = 1; c < bf::kSlotCount; ++c)
      if (c != s && live(c) == bf::kCommitted && dead_under(c, s)) group.push_back(c);
    std::vector<uint64_t> words;
    if (!claim(group, bf::kAborted, &words)) continue;
    auto unclaim = [&] {
      for (size_t k = 0; k < group.size(); ++k)
        CasState(group[k], words[k], bf::SlotWord(k == 0 ? uint32_t{bf::kAborted} : uint32_t{bf::kCommitted}));
    };
    if (std::any_of(group.begin(), group.end(), [&](uint32_t x) { return Viewed(x); })) {
      unclaim();
      ++skipped_viewed;
      continue;
    }
    std::vector<bool> pages;
    auto mark = [&](uint64_t off, uint64_t bytes, const std::string& what) -> Status {
      if (off % bf::kPage || off < bf::kDeltaReserved || off > geo.delta_size || bytes > geo.delta_size - off)
        return Status::Corruption(where() + ": " + what + " outside the delta area");
      const uint64_t last = (off + bytes + bf::kPage - 1) / bf::kPage;
      if (pages.size() < last) pages.resize(last, false);
      for (uint64_t p = off / bf::kPage; p < last; ++p) pages[p] = true;
      return Status::OK();
    };
    // Only what the aborted log reaches: pages of live branches (and blocks
    // a live writer allocated but has not published yet) are never touched.
    // A committed group member that the log does not reach through a
    // self-contained record is marked through its own slot.
    Status st_mark = MarkLog(LogOf(s), branch::PublishedLenOf(slots[s]), mark, 0);
    for (uint32_t c : group)
      if (st_mark.ok() && c != s) st_mark = MarkLog(LogOf(c), branch::PublishedLenOf(slots[c]), mark, 0);
    if (!st_mark.ok()) {
      unclaim();
      g.note += "not reclaiming '" + SlotName(s) + "': " + st_mark.message() + "; ";
      continue;
    }
    // Still ours (not taken over while we marked), then the pages go back.
    if (!NotEvicted().ok()) {
      unclaim();
      break;
    }
    for (uint64_t p = 0; p < pages.size();) {
      if (!pages[p]) {
        ++p;
        continue;
      }
      uint64_t q = p;
      while (q < pages.size() && pages[q]) ++q;
      // The memory goes back to the filesystem behind the region now.
      if (region->fd() >= 0)
        (void)fallocate(region->fd(), FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE,
                        static_cast<off_t>(region->fd_offset() + geo.delta_offset + p * bf::kPage),
                        static_cast<off_t>((q - p) * bf::kPage));
      else
        (void)madvise(mem + geo.delta_offset + p * bf::kPage, (q - p) * bf::kPage, MADV_REMOVE);
      if (GiveBack(*this, p, q - p))
        g.bytes_reclaimed += (q - p) * bf::kPage;
      else
        leaked += (q - p) * bf::kPage;
      p = q;
    }
    g.slots_freed += free_group(group, words);
  }
  if (g.slots_freed) A(hdr->generation).fetch_add(1, std::memory_order_acq_rel);
  g.note += "online: ended branches' slots freed; aborted branches' pages given back for reuse";
  if (skipped_viewed) g.note += "; " + std::to_string(skipped_viewed) + " ended branch(es) kept: a live process has a view of them";
  if (leaked) g.note += "; " + std::to_string(leaked) + " bytes wait for an exclusive gc (free table full)";
  for (uint32_t i = 0; i < bf::kFreeExtents; ++i) {
    const uint64_t w = LoadAcq(hdr->free_extents[i]);
    if (!bf::FreeExtentReserved(w)) g.bytes_free += bf::FreeExtentPages(w) * bf::kPage;
  }
  g.bytes_used = LoadAcq(hdr->delta_cursor) - g.bytes_free;
  return g;
}

Result<GcResult> BranchStore::ReclaimEnded() {
  Impl& m = *impl_;
  DAXFS_RETURN_IF_ERROR(m.NotEvicted());
  DAXFS_RETURN_IF_ERROR(branch::RefuseIfDamaged(m, "reclaiming"));
  return m.ReclaimOnline();
}

Status BranchStore::Impl::MarkLive(std::vector<bool>* pages) const {
  const uint64_t cursor = LoadAcq(hdr->delta_cursor);
  if (cursor < bf::kDeltaReserved || cursor > geo.delta_size || cursor % bf::kPage)
    return Status::Corruption(where() + ": delta cursor " + std::to_string(cursor) +
                              " outside the delta area");
  pages->assign(cursor / bf::kPage, false);
  for (uint64_t p = 0; p < bf::kDeltaReserved / bf::kPage; ++p) (*pages)[p] = true;
  uint64_t limit = cursor;
  auto mark = [&](uint64_t off, uint64_t bytes, const std::string& what) -> Status {
    // Other writers may allocate while this runs (daxfs check): a block past
    // the cursor read at the start is fine if it is below the cursor now.
    if (off <= geo.delta_size && bytes <= geo.delta_size - off && off + bytes > limit) {
      limit = std::min(LoadAcq(hdr->delta_cursor), geo.delta_size);
      if (limit / bf::kPage > pages->size()) pages->resize(limit / bf::kPage, false);
    }
    if (off % bf::kPage || off < bf::kDeltaReserved || off > limit || bytes > limit - off)
      return Status::Corruption(where() + ": " + what + " at delta offset " + std::to_string(off) +
                                " (+" + std::to_string(bytes) + ") outside the handed-out delta area");
    for (uint64_t p = off / bf::kPage; p < (off + bytes + bf::kPage - 1) / bf::kPage; ++p) (*pages)[p] = true;
    return Status::OK();
  };
  for (uint32_t s = 0; s < bf::kSlotCount; ++s) {
    const bf::Slot& sl = slots[s];
    const uint32_t st = branch::StateOf(sl);
    if (!branch::Live(st) && st != bf::kCommitted) continue;
    // A committed branch counts only when its chain of parents reaches an
    // active branch: one merged into an aborted branch is garbage, and
    // online reclamation may be giving its pages back right now.
    if (st == bf::kCommitted) {
      uint32_t c = s;
      bool live = false;
      for (int hops = 0; hops < 300 && c != bf::kMainSlot; ++hops) {
        const uint32_t p = slots[c].parent_slot;
        if (p >= bf::kSlotCount || slots[p].id != slots[c].parent_id) break;
        const uint32_t ps = branch::StateOf(slots[p]);
        if (branch::Live(ps)) {
          live = true;
          break;
        }
        if (ps != bf::kCommitted) break;
        c = p;
      }
      if (!live) continue;
    }
    DAXFS_RETURN_IF_ERROR(MarkLog(LogOf(s), branch::PublishedLenOf(sl), mark, 0));
  }
  return Status::OK();
}

Status BranchStore::Impl::MarkLog(const LogRef& log, uint64_t len,
                                  const std::function<Status(uint64_t, uint64_t, const std::string&)>& mark,
                                  int depth) const {
  if (depth > kMaxDepth) return Status::Corruption(where() + ": merges nested too deeply");
  const std::string at = LogLabel(log);
  // Every chunk of the chain, also one a dead appender linked but never
  // published into (Append replaces it, so it is referenced).
  uint64_t chunk = log.first_chunk;
  for (int hops = 0; chunk != 0; ++hops) {
    if (hops > (1 << 20)) return Status::Corruption(where() + ": " + at + ": log chunk chain loops");
    if (chunk > geo.delta_size - bf::kPage || chunk % bf::kPage || chunk < bf::kDeltaReserved)
      return Status::Corruption(where() + ": " + at + ": log chunk offset " + std::to_string(chunk) +
                                " outside the delta area or not page aligned");
    auto* h = reinterpret_cast<bf::ChunkHeader*>(mem + geo.delta_offset + chunk);
    if (h->magic != bf::kChunkMagic)
      return Status::Corruption(where() + ": " + at + ": bad log chunk at delta offset " + std::to_string(chunk));
    DAXFS_RETURN_IF_ERROR(mark(chunk, h->capacity, at + ": log chunk"));
    chunk = A(h->next).load(std::memory_order_acquire);
  }
  return ReadChain(log, 0, len, [&](uint64_t pos, const Record& r) -> Status {
    // A child merged through a self-contained record may have no slot any
    // more: its log is reached through the record.
    if (r.type == bf::kRecMerge && r.child_chunk != 0)
      return MarkLog(LogRef{r.child_chunk, kNoSlot, r.child_id}, r.child_len, mark, depth + 1);
    for (uint64_t b : r.blocks)
      DAXFS_RETURN_IF_ERROR(mark(b, bf::kPage, at + ": log position " + std::to_string(pos) + ": data block"));
    return Status::OK();
  });
}

namespace {
// Other live users of the region, as " pid N" / " entry I" words.
std::string OtherUsers(const BranchStore::Impl& m) {
  std::string others;
  for (uint32_t i = 0; i < bf::kAttachCount; ++i) {
    if (static_cast<int>(i) == m.attach_idx || !m.EntryLive(i)) continue;
    auto& e = m.attach[i];
    others += LoadAcq(e.boot) == m.local_key ? " pid " + std::to_string(LoadAcq(e.pid)) : " entry " + std::to_string(i);
  }
  return others;
}
}  // namespace

Result<GcResult> BranchStore::Gc() {
  Impl& m = *impl_;
  DAXFS_RETURN_IF_ERROR(m.NotEvicted());
  std::string others = OtherUsers(m);
  // With other users attached, or views open here, gc works online: what
  // no live user can be reading (ReclaimEnded). Alone, it also finds pages
  // gone writers leaked and compacts the free table.
  auto online = [&]() -> Result<GcResult> {
    DAXFS_ASSIGN_OR_RETURN(GcResult g, ReclaimEnded());
    if (!others.empty()) g.note += " (other users attached:" + others + "; blocks leaked by gone writers wait for a gc run alone)";
    return g;
  };
  if (!others.empty() || m.open_views.load() != 0) return online();
  // Alone: the gc lease (seq_cst), then look again; a process attaching
  // publishes its entry, then waits while a live gc lease is held.
  auto gc_lease = A(m.hdr->gc_lease);
  uint64_t cur = gc_lease.load(std::memory_order_seq_cst);
  if ((cur != 0 && m.HolderLive(cur)) || !gc_lease.compare_exchange_strong(cur, m.me, std::memory_order_seq_cst))
    return online();
  struct Release {
    BranchStore::Impl& m;
    ~Release() {
      uint64_t mine = m.me;
      A(m.hdr->gc_lease).compare_exchange_strong(mine, uint64_t{0}, std::memory_order_seq_cst);
    }
  } release_lease{m};
  others = OtherUsers(m);
  if (!others.empty()) return online();
  m.ResolveAbandoned();
  DAXFS_RETURN_IF_ERROR(branch::RefuseIfDamaged(m, "gc"));
  GcResult g;
  std::lock_guard lk(m.state_mu);
  // Free aborted slots, and committed ones whose log only an aborted (or
  // freed) parent refers to; repeat, since freeing one frees its children.
  for (bool again = true; again;) {
    again = false;
    for (uint32_t s = 1; s < bf::kSlotCount; ++s) {
      const uint64_t w = LoadAcq(m.slots[s].state);
      const uint32_t st = bf::SlotWordState(w);
      bool dead = st == bf::kAborted;
      if (st == bf::kCommitted) {
        const uint32_t p = m.slots[s].parent_slot;
        const uint32_t pst = p < bf::kSlotCount ? branch::StateOf(m.slots[p]) : uint32_t{bf::kFree};
        dead = p >= bf::kSlotCount || m.slots[p].id != m.slots[s].parent_id || pst == bf::kAborted ||
               pst == bf::kFree || pst == bf::kClaimed;
      }
      if (!dead || !m.CasState(s, w, bf::SlotWord(bf::kFree))) continue;
      ++g.slots_freed;
      again = true;
    }
  }
  if (g.slots_freed) A(m.hdr->generation).fetch_add(1, std::memory_order_acq_rel);

  // Mark what the remaining logs refer to; every other page below the
  // cursor is garbage: aborted branches' logs and blocks, and blocks a
  // writer allocated but died before publishing.
  std::vector<bool> live;
  DAXFS_RETURN_IF_ERROR(m.MarkLive(&live));
  uint64_t was_free = 0;
  for (uint32_t i = 0; i < bf::kFreeExtents; ++i) {
    const uint64_t w = LoadAcq(m.hdr->free_extents[i]);
    if (!bf::FreeExtentReserved(w)) was_free += bf::FreeExtentPages(w);
  }
  std::vector<std::pair<uint64_t, uint64_t>> runs;  // (first page, pages)
  for (uint64_t p = 0; p < live.size();) {
    if (live[p]) {
      ++p;
      continue;
    }
    uint64_t q = p;
    while (q < live.size() && !live[q]) ++q;
    runs.emplace_back(p, q - p);
    p = q;
  }
  uint64_t cursor_pages = live.size();
  if (!runs.empty() && runs.back().first + runs.back().second == cursor_pages) {
    cursor_pages = runs.back().first;  // the free tail goes back to the bump cursor
    runs.pop_back();
  }
  // Hand the pages back to the memory behind the region (tmpfs, memfd,
  // hugetlbfs, a disk file's blocks); where it cannot (dax) they stay.
  auto release = [&](uint64_t first, uint64_t n) {
    (void)madvise(m.mem + m.geo.delta_offset + first * bf::kPage, n * bf::kPage, MADV_REMOVE);
  };
  uint64_t free_pages = 0, lost_pages = 0;
  std::vector<uint64_t> words;
  for (const auto& [first, n] : runs) {
    release(first, n);
    for (uint64_t done = 0; done < n;) {
      const uint64_t k = std::min(n - done, bf::kFreeCountMax);
      words.push_back(bf::FreeExtent(first + done, k));
      done += k;
    }
  }
  if (live.size() > cursor_pages) release(cursor_pages, live.size() - cursor_pages);
  // More runs than table entries: keep the largest.
  std::sort(words.begin(), words.end(),
            [](uint64_t a, uint64_t b) { return bf::FreeExtentPages(a) > bf::FreeExtentPages(b); });
  for (size_t i = bf::kFreeExtents; i < words.size(); ++i) lost_pages += bf::FreeExtentPages(words[i]);
  if (words.size() > bf::kFreeExtents) words.resize(bf::kFreeExtents);
  for (uint64_t w : words) free_pages += bf::FreeExtentPages(w);
  // Publish. A crash part way must not leave two entries naming one page:
  // empty the table first, then fill it, then lower the cursor (each step
  // only leaks pages if interrupted; the next gc finds them).
  StoreRel(m.hdr->free_pages, uint64_t{0});
  for (uint32_t i = 0; i < bf::kFreeExtents; ++i) StoreRel(m.hdr->free_extents[i], uint64_t{0});
  for (size_t i = 0; i < words.size(); ++i) StoreRel(m.hdr->free_extents[i], words[i]);
  StoreRel(m.hdr->free_pages, free_pages);
  uint64_t old_cursor = live.size() * bf::kPage;
  // Lowered only from what was marked (nothing was handed out since).
  if (!A(m.hdr->delta_cursor).compare_exchange_strong(old_cursor, cursor_pages * bf::kPage, std::memory_order_acq_rel))
    cursor_pages = old_cursor / bf::kPage;
  if (m.needs_msync) msync(m.mem, m.region->bytes().size(), MS_SYNC);

  const uint64_t now_free = free_pages * bf::kPage + (old_cursor - cursor_pages * bf::kPage);
  g.bytes_reclaimed = now_free > was_free * bf::kPage ? now_free - was_free * bf::kPage : 0;
  g.bytes_free = free_pages * bf::kPage;
  g.bytes_used = cursor_pages * bf::kPage - g.bytes_free;
  g.note = "the history of committed branches (main's log and the blocks it refers to) is kept";
  if (lost_pages)
    g.note += "; " + std::to_string(lost_pages * bf::kPage) +
              " free bytes in small runs did not fit the free table (a later gc finds them)";
  g.note += ". To drop history: `daxfs branch export REGION main NEW.img` and init a new region from it.";
  return g;
}


}  // namespace daxfs
