// Logs: allocation in the delta area, reading a chain of chunks, fenced
// appends, replay into an index, and the keys the sibling rule compares.
#include <fcntl.h>
#include <sys/mman.h>

#include <algorithm>
#include <cstring>

#include "branch/shared.h"
#include "daxfs/format.h"

namespace daxfs {

namespace fmt = daxfs::format;
using branch::A;
using branch::Index;
using branch::Keys;
using branch::LoadAcq;
using branch::Record;
using branch::StoreRel;
using branch::kMaxChunk;
using branch::kMaxDepth;

namespace branch {

void Keys::Add(const Record& r) {
  switch (r.type) {
    case bf::kRecCreate:
      if (r.dir != 0) {  // a nameless (O_TMPFILE) create touches no directory
        entries.emplace(r.dir, std::string(r.name));
        used.insert(r.dir);
      }
      inodes.insert(r.ino);
      break;
    case bf::kRecForget:
      inodes.insert(r.ino);
      break;
    case bf::kRecLink:
      entries.emplace(r.dir, std::string(r.name));
      used.insert(r.dir);
      used.insert(r.ino);
      break;
    case bf::kRecUnlink:
      entries.emplace(r.dir, std::string(r.name));
      used.insert(r.dir);
      inodes.insert(r.ino);
      deleted.insert(r.ino);
      break;
    case bf::kRecRename:
      entries.emplace(r.dir, std::string(r.name));
      entries.emplace(r.ddir, std::string(r.name2));
      used.insert(r.dir);
      used.insert(r.ddir);
      used.insert(r.ino);
      if (r.dino) {
        if (r.flags & RENAME_EXCHANGE) {
          used.insert(r.dino);
        } else {
          inodes.insert(r.dino);
          deleted.insert(r.dino);
        }
      }
      break;
    case bf::kRecSetattr:
    case bf::kRecWrite:
    case bf::kRecSetxattr:
    case bf::kRecRemovexattr:
      inodes.insert(r.ino);
      break;
    default:
      break;
  }
}


}  // namespace branch

uint64_t BranchStore::Impl::AllocFromFreeTable(uint64_t pages) {
  if (LoadAcq(hdr->free_pages) < pages) return 0;
  const uint64_t cursor_pages = std::min(LoadAcq(hdr->delta_cursor), geo.delta_size) / bf::kPage;
  for (uint32_t i = 0; i < bf::kFreeExtents; ++i) {
    auto slot = A(hdr->free_extents[i]);
    uint64_t w = slot.load(std::memory_order_acquire);
    while (w != 0 && !bf::FreeExtentReserved(w)) {
      const uint64_t first = bf::FreeExtentFirst(w), have = bf::FreeExtentPages(w);
      // Written by other processes: an extent outside the handed-out part
      // of the delta area is ignored (daxfs branch check reports it).
      if (have < pages || first < bf::kDeltaReserved / bf::kPage || first > cursor_pages ||
          have > cursor_pages - first)
        break;
      const uint64_t rest = have == pages ? 0 : bf::FreeExtent(first + pages, have - pages);
      if (slot.compare_exchange_weak(w, rest, std::memory_order_acq_rel)) {
        // The hint may be stale (a dead process between the two steps):
        // never let it wrap.
        auto hint = A(hdr->free_pages);
        uint64_t h = hint.load(std::memory_order_relaxed);
        while (!hint.compare_exchange_weak(h, h >= pages ? h - pages : 0, std::memory_order_acq_rel)) {
        }
        return first * bf::kPage;
      }
    }
  }
  return 0;
}

Result<uint64_t> BranchStore::Impl::Alloc(uint64_t bytes) {
  bytes = fmt::AlignUp(bytes, bf::kPage);
  DAXFS_ASSIGN_OR_RETURN(uint64_t at, AllocRange(bytes));
  if (!allocate_on_demand.load(std::memory_order_relaxed)) return at;
  // Give the pages backing memory now: touching a hole of a full tmpfs
  // through the mapping would be a SIGBUS in the middle of a write, this is
  // a clean ENOSPC before anything was written (the range is leaked, and
  // found by the next gc).
  const off_t file_off = static_cast<off_t>(region->fd_offset() + geo.delta_offset + at);
  if (fallocate(region->fd(), 0, file_off, static_cast<off_t>(bytes)) != 0) {
    const int err = errno;
    if (err == ENOSPC || err == ENOMEM || err == EDQUOT)
      return Status::NoSpace(where() + ": no memory left behind the region for " + std::to_string(bytes) +
                             " bytes of branch data (the filesystem holding it is full): " +
                             std::strerror(err));
    if (err != EOPNOTSUPP && err != EINVAL && err != ENODEV)
      return Status::IOError(where() + ": allocating delta offset " + std::to_string(at), err);
    // Not supported by this filesystem: stop asking. (EINVAL may also be
    // about this one range, so it does not.)
    if (err != EINVAL) allocate_on_demand.store(false, std::memory_order_relaxed);
  }
  return at;
}

Result<uint64_t> BranchStore::Impl::AllocRange(uint64_t bytes) {
  if (uint64_t reused = AllocFromFreeTable(bytes / bf::kPage)) return reused;
  auto cur = A(hdr->delta_cursor);
  uint64_t at = cur.load(std::memory_order_acquire);
  for (;;) {
    if (at % bf::kPage || at < bf::kDeltaReserved)
      return Status::Corruption(where() + ": delta cursor " + std::to_string(at) +
                                " is not a page boundary inside the delta area");
    if (at > geo.delta_size || bytes > geo.delta_size - at)
      return Status::NoSpace(where() + ": the delta area is full (" + std::to_string(geo.delta_size) +
                             " bytes); commit, abort and gc branches, or init a region with a "
                             "larger --delta");
    if (cur.compare_exchange_weak(at, at + bytes, std::memory_order_acq_rel)) return at;
  }
}

std::string BranchStore::Impl::LogLabel(const LogRef& l) const {
  if (l.slot != kNoSlot) return "branch '" + SlotName(l.slot) + "' (slot " + std::to_string(l.slot) + ")";
  return "merged branch id " + std::to_string(l.id) + " (log at delta offset " + std::to_string(l.first_chunk) + ")";
}

Result<BranchStore::Impl::LogRef> BranchStore::Impl::MergeChild(const Record& r, const LogRef& parent) const {
  if (r.child_chunk != 0) return LogRef{r.child_chunk, kNoSlot, r.child_id};
  // An older merge record: the child's slot holds its log and must still
  // name this child of this parent.
  if (r.child_slot == 0 || r.child_slot >= bf::kSlotCount)
    return Status::Corruption(where() + ": " + LogLabel(parent) + ": merge record: slot out of range");
  const bf::Slot& c = slots[r.child_slot];
  const uint32_t st = branch::StateOf(c);
  if (c.id != r.child_id || (parent.slot != kNoSlot && (c.parent_slot != parent.slot || c.parent_id != parent.id)) ||
      c.id <= parent.id || (st != bf::kCommitted && !branch::Live(st)))
    return Status::Corruption(where() + ": " + LogLabel(parent) + ": merge record does not name a child of this branch");
  if (r.child_len > branch::PublishedLenOf(c))
    return Status::Corruption(where() + ": " + LogLabel(parent) + ": merge record: length beyond the child's log");
  return LogOf(r.child_slot);
}

Status BranchStore::Impl::ReadChain(
    const LogRef& log, uint64_t from, uint64_t to,
    const std::function<Status(uint64_t, const Record&)>& fn) const {
  auto bad = [&](uint64_t pos, const std::string& what) {
    return Status::Corruption(where() + ": " + LogLabel(log) + " log position " + std::to_string(pos) + ": " + what);
  };
  uint64_t chunk = log.first_chunk;
  uint64_t log_start = 0;
  uint64_t pos = from;
  if (from >= to) return Status::OK();
  auto header_at = [&](uint64_t off, uint64_t want_start_min, uint64_t want_start_max,
                       bf::ChunkHeader* out) -> bool {
    if (off < bf::kDeltaReserved || off % bf::kPage || off > geo.delta_size - bf::kPage) return false;
    *out = fmt::Load<bf::ChunkHeader>(geo.region + geo.delta_offset + off);
    return out->magic == bf::kChunkMagic && out->capacity >= bf::kPage && out->capacity % bf::kPage == 0 &&
           out->capacity <= geo.delta_size - off && out->log_start >= want_start_min &&
           out->log_start <= want_start_max;
  };
  bf::ChunkHeader h;
  if (!header_at(chunk, 0, 0, &h)) return bad(pos, "bad log chunk header at delta offset " + std::to_string(chunk));
  for (int hops = 0;; ++hops) {
    if (hops > (1 << 20)) return bad(pos, "log chunk chain loops");
    const std::byte* c = geo.region + geo.delta_offset + chunk;
    const uint64_t data = h.capacity - sizeof(bf::ChunkHeader);
    // The chunk's data ends where the next chunk's begins (a writer that
    // took a lease over started a new chunk at the published length), or
    // at its capacity.
    const uint64_t next = A(const_cast<bf::ChunkHeader*>(reinterpret_cast<const bf::ChunkHeader*>(c))->next)
                              .load(std::memory_order_acquire);
    bf::ChunkHeader nh{};
    if (next != 0 && !header_at(next, log_start, log_start + data, &nh))
      return bad(pos, "bad log chunk header at delta offset " + std::to_string(next));
    const uint64_t chunk_end = next != 0 ? nh.log_start : log_start + data;
    while (pos < to && pos < chunk_end) {
      if (pos < log_start) return bad(pos, "position before its chunk");
      const uint64_t off = pos - log_start;
      const uint64_t room = chunk_end - pos;
      if (room < sizeof(bf::RecordHeader)) {
        pos = chunk_end;
        break;
      }
      const std::byte* p = c + sizeof(bf::ChunkHeader) + off;
      const auto rh = fmt::Load<bf::RecordHeader>(p);
      if (rh.type == bf::kRecPad) {
        if (rh.length != room) return bad(pos, "bad padding record");
        pos = chunk_end;
        break;
      }
      if (rh.length < sizeof(bf::RecordHeader) || rh.length % 8 || rh.length > room ||
          rh.length > bf::kRecordMax || pos + rh.length > to)
        return bad(pos, "record length " + std::to_string(rh.length) + " out of bounds");
      auto rec = branch::Decode(std::span<const std::byte>(p, rh.length));
      if (!rec.ok()) return bad(pos, rec.status().message());
      DAXFS_RETURN_IF_ERROR(fn(pos, *rec));
      pos += rh.length;
    }
    if (pos >= to) return Status::OK();
    if (next == 0) return bad(pos, "published length runs past the last chunk");
    chunk = next;
    h = nh;
    log_start = nh.log_start;
  }
}

Result<uint64_t> BranchStore::Impl::Append(uint32_t s, std::span<const std::byte> rec) {
  DAXFS_RETURN_IF_ERROR(NotEvicted());
  bf::Slot& sl = slots[s];
  LeaseHold& hold = lease_hold[s];
  auto fenced = [&] {
    return Status::Stale(where() + ": branch '" + SlotName(s) +
                         "': its writer lease was taken over (this process was stopped past the lease "
                         "timeout); nothing more was published");
  };
  auto pub = A(sl.published);
  uint64_t w = pub.load(std::memory_order_acquire);
  if (hold.holds == 0 || bf::PublishedEpoch(w) != hold.epoch) return fenced();
  const uint64_t pos = bf::PublishedLen(w);
  // The tail: the last chunk of the chain. If we still hold the lease it
  // holds `pos` (or is a chunk a gone holder linked at `pos` and never
  // published into, which our first append after taking the lease over
  // leaves empty by linking a new one after it). If we were stopped and
  // taken over meanwhile, it is the taker's: stamped with its epoch, not
  // ours, and not written into.
  uint64_t chunk = sl.first_chunk;
  bf::ChunkHeader* h = nullptr;
  for (int hops = 0;; ++hops) {
    if (chunk < bf::kDeltaReserved || chunk % bf::kPage || chunk > geo.delta_size - bf::kPage ||
        hops > (1 << 20))
      return Status::Corruption(where() + ": branch '" + SlotName(s) + "': bad log chunk chain");
    h = reinterpret_cast<bf::ChunkHeader*>(mem + geo.delta_offset + chunk);
    if (h->magic != bf::kChunkMagic || h->capacity < bf::kPage || h->capacity > geo.delta_size - chunk ||
        h->log_start > pos)
      return Status::Corruption(where() + ": branch '" + SlotName(s) + "': bad log chunk header at delta offset " +
                                std::to_string(chunk));
    const uint64_t next = A(h->next).load(std::memory_order_acquire);
    if (next == 0) break;
    chunk = next;
  }
  // (Linking after such a chunk would cut the taker's records short: a
  // chunk's data ends where the next one starts.)
  if (bf::ChunkOfLaterEpoch(h->writer, hold.epoch)) return fenced();
  const uint64_t data = h->capacity - sizeof(bf::ChunkHeader);
  const uint64_t off = pos - h->log_start;
  std::byte* base = reinterpret_cast<std::byte*>(h) + sizeof(bf::ChunkHeader);
  if (h->writer == bf::ChunkStamp(hold.epoch) && off <= data && rec.size() <= data - off) {
    std::memcpy(base + off, rec.data(), rec.size());
    if (!pub.compare_exchange_strong(w, bf::PublishedWord(hold.epoch, pos + rec.size()), std::memory_order_acq_rel))
      return fenced();
    return pos;
  }
  // A new chunk, written whole before it is linked: nobody else ever
  // writes into it until it is published.
  const uint64_t cap = std::max<uint64_t>(std::min<uint64_t>(h->capacity * 2, branch::kMaxChunk),
                                          fmt::AlignUp(rec.size() + sizeof(bf::ChunkHeader), bf::kPage));
  DAXFS_ASSIGN_OR_RETURN(uint64_t nc, Alloc(cap));
  auto* nh = reinterpret_cast<bf::ChunkHeader*>(mem + geo.delta_offset + nc);
  nh->magic = bf::kChunkMagic;
  nh->writer = bf::ChunkStamp(hold.epoch);
  nh->capacity = cap;
  nh->log_start = pos;
  StoreRel(nh->next, uint64_t{0});
  std::memcpy(reinterpret_cast<std::byte*>(nh) + sizeof(bf::ChunkHeader), rec.data(), rec.size());
  uint64_t none = 0;
  // Someone else linking after our tail took the lease over: fenced (the
  // chunk is leaked; gc finds it).
  if (!A(h->next).compare_exchange_strong(none, nc, std::memory_order_acq_rel)) return fenced();
  if (!pub.compare_exchange_strong(w, bf::PublishedWord(hold.epoch, pos + rec.size()), std::memory_order_acq_rel))
    return fenced();
  return pos;
}

Status BranchStore::Impl::ReplayLog(const LogRef& log, uint64_t from, uint64_t to, Index* idx,
                                    int depth) const {
  if (depth > kMaxDepth) return Status::Corruption(where() + ": merges nested too deeply");
  return ReadChain(log, from, to, [&](uint64_t pos, const Record& r) -> Status {
    if (r.type == bf::kRecMerge) {
      DAXFS_ASSIGN_OR_RETURN(LogRef child, MergeChild(r, log));
      // The child's orphans were held by handles on the child, which end
      // with its commit: they end here too, so nothing nameless lives on.
      const auto before = idx->orphans();
      DAXFS_RETURN_IF_ERROR(ReplayLog(child, 0, r.child_len, idx, depth + 1));
      idx->DropOrphansExcept(before);
      return Status::OK();
    }
    Status st = idx->Apply(r);
    if (!st.ok())
      return Status::Corruption(where() + ": " + LogLabel(log) + " log position " + std::to_string(pos) + ": " +
                                branch::RecordTypeName(r.type) + " does not apply: " + st.message());
    return Status::OK();
  });
}

Result<std::unique_ptr<Index>> BranchStore::Impl::BuildIndex(uint32_t s, uint64_t* applied,
                                                            uint64_t upto) const {
  std::vector<uint32_t> chain{s};
  while (chain.back() != bf::kMainSlot) {
    const bf::Slot& c = slots[chain.back()];
    if (c.parent_slot >= bf::kSlotCount || chain.size() > kMaxDepth ||
        slots[c.parent_slot].id != c.parent_id)
      return Status::Corruption(where() + ": branch '" + SlotName(chain.back()) +
                                "' has an invalid parent");
    chain.push_back(c.parent_slot);
  }
  std::reverse(chain.begin(), chain.end());
  auto idx = std::make_unique<Index>(base, geo);
  for (size_t i = 0; i < chain.size(); ++i) {
    uint64_t to;
    if (i + 1 < chain.size()) {
      to = slots[chain[i + 1]].snapshot_len;
    } else {
      to = std::min(upto, branch::PublishedLenOf(slots[chain[i]]));
      *applied = to;
    }
    DAXFS_RETURN_IF_ERROR(Replay(chain[i], 0, to, idx.get(), 0));
    // An ancestor's orphans are held by handles on the ancestor: a branch
    // made from it never sees them (they have no name there either).
    if (i + 1 < chain.size()) idx->DropOrphansExcept({});
  }
  return idx;
}

Status BranchStore::Impl::CollectLogKeys(const LogRef& log, uint64_t from, uint64_t to, Keys* keys,
                                         int depth) const {
  if (depth > kMaxDepth) return Status::Corruption(where() + ": merges nested too deeply");
  return ReadChain(log, from, to, [&](uint64_t, const Record& r) -> Status {
    if (r.type == bf::kRecMerge) {
      DAXFS_ASSIGN_OR_RETURN(LogRef child, MergeChild(r, log));
      return CollectLogKeys(child, 0, r.child_len, keys, depth + 1);
    }
    keys->Add(r);
    return Status::OK();
  });
}


}  // namespace daxfs

namespace daxfs {

Result<bool> BranchStore::Impl::LogSelfContained(uint32_t s, uint64_t len) const {
  bool self_contained = true;
  DAXFS_RETURN_IF_ERROR(ReadLog(s, 0, len, [&](uint64_t, const Record& r) {
    if (r.type == bf::kRecMerge && r.child_chunk == 0) self_contained = false;
    return Status::OK();
  }));
  return self_contained;
}

void BranchStore::Impl::FinishCommitted(uint32_t s, uint64_t at, uint64_t expect) {
  slots[s].commit_pos = at;
  auto whole = LogSelfContained(s, branch::PublishedLenOf(slots[s]));
  if (whole.ok() && *whole) A(slots[s].flags).fetch_or(bf::kSlotSelfContained, std::memory_order_acq_rel);
  A(slots[s].state).compare_exchange_strong(expect, bf::SlotWord(bf::kCommitted), std::memory_order_seq_cst);
}

uint64_t BranchStore::Impl::FindMerge(uint32_t s) const {
  const bf::Slot& sl = slots[s];
  const uint32_t p = sl.parent_slot;
  if (p >= bf::kSlotCount) return UINT64_MAX;
  const uint64_t plen = branch::PublishedLenOf(slots[p]);
  if (sl.snapshot_len > plen) return UINT64_MAX;
  uint64_t found = UINT64_MAX;
  (void)ReadLog(p, sl.snapshot_len, plen, [&](uint64_t pos, const Record& r) {
    if (r.type == bf::kRecMerge && r.child_slot == s && r.child_id == sl.id) found = pos;
    return Status::OK();
  });
  return found;
}

}  // namespace daxfs
