// BranchStore: the control block, logs, create/commit/abort/gc and recovery.
#include <fcntl.h>
#include <linux/magic.h>
#include <signal.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/vfs.h>
#include <unistd.h>
#define XXH_STATIC_LINKING_ONLY
#include <xxhash.h>

#include <algorithm>
#include <cinttypes>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <random>
#include <sstream>

#include "branch/shared.h"
#include "daxfs/check.h"
#include "daxfs/format.h"
#include "format/checksum.h"

namespace daxfs {

namespace fmt = daxfs::format;
using branch::A;
using branch::Index;
using branch::Keys;
using branch::LoadAcq;
using branch::Record;
using branch::StoreRel;

namespace branch {

uint64_t ProcessStartTime(pid_t pid) {
  char path[64];
  std::snprintf(path, sizeof path, "/proc/%d/stat", static_cast<int>(pid));
  std::ifstream f(path);
  std::string s;
  if (!std::getline(f, s)) return 0;
  // comm (field 2) may contain spaces and parentheses: fields resume after the last ')'.
  const size_t close = s.rfind(')');
  if (close == std::string::npos) return 0;
  std::istringstream rest(s.substr(close + 2));
  std::string field;
  for (int i = 3; i <= 22; ++i) {
    if (!(rest >> field)) return 0;
    if (i == 22) return std::strtoull(field.c_str(), nullptr, 10);
  }
  return 0;
}

bool ProcessIsZombie(pid_t pid) {
  char path[64];
  std::snprintf(path, sizeof path, "/proc/%d/stat", static_cast<int>(pid));
  std::ifstream f(path);
  std::string s;
  if (!std::getline(f, s)) return false;
  const size_t close = s.rfind(')');
  if (close == std::string::npos || close + 2 >= s.size()) return false;
  const char state = s[close + 2];  // field 3
  return state == 'Z' || state == 'X';
}

bool ProcessAlive(uint64_t pid, uint64_t start) {
  if (pid == 0 || pid > INT32_MAX) return false;
  if (kill(static_cast<pid_t>(pid), 0) != 0 && errno == ESRCH) return false;
  if (ProcessIsZombie(static_cast<pid_t>(pid))) return false;  // dead, not yet reaped
  const uint64_t now = ProcessStartTime(static_cast<pid_t>(pid));
  if (now == 0) return false;  // gone (or invisible from this pid namespace)
  return start == 0 || now == start;
}

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

namespace {

constexpr uint64_t kFirstChunk = 4 * 1024;  // one page: most branches write little, history keeps every log
constexpr uint64_t kMaxChunk = 1024 * 1024;
constexpr int kMaxDepth = 64;

uint64_t BootHash() {
  std::ifstream f("/proc/sys/kernel/random/boot_id");
  std::string id;
  std::getline(f, id);
  uint64_t h = XXH3_64bits(id.data(), id.size());
  return h < 2 ? h + 2 : h;  // 0 = never set, 1 = being set up
}

uint64_t GeometryChecksum(const bf::ControlHeader* h) {
  return XXH3_64bits(h, offsetof(bf::ControlHeader, geometry_csum));
}

Status InitMutex(void* where) {
  pthread_mutexattr_t attr;
  pthread_mutexattr_init(&attr);
  pthread_mutexattr_setpshared(&attr, PTHREAD_PROCESS_SHARED);
  pthread_mutexattr_setrobust(&attr, PTHREAD_MUTEX_ROBUST);
  const int rc = pthread_mutex_init(static_cast<pthread_mutex_t*>(where), &attr);
  pthread_mutexattr_destroy(&attr);
  if (rc != 0) return Status::IOError("pthread_mutex_init", rc);
  return Status::OK();
}

const char* StateName(uint32_t s) {
  switch (s) {
    case bf::kActive: return "active";
    case bf::kCommitted: return "committed";
    case bf::kAborted: return "aborted";
    case bf::kFree: return "free";
    default: return "invalid";
  }
}

Status ValidBranchName(std::string_view n) {
  if (n.empty() || n.size() > bf::kBranchNameMax)
    return Status::InvalidArgument("branch name must be 1.." + std::to_string(bf::kBranchNameMax) +
                                   " bytes");
  for (char c : n)
    if (c == '/' || c == '\0' || static_cast<unsigned char>(c) < 0x20 || c == 0x7f)
      return Status::InvalidArgument("branch name '" + std::string(n) +
                                     "' contains '/' or a control character");
  if (n == "main") return Status::Exists("main: the branch exists (it is the region's root branch)");
  return Status::OK();
}

}  // namespace

// ---- Impl: shared structures ----

std::string BranchStore::Impl::SlotName(uint32_t s) const {
  const bf::Slot& sl = slots[s];
  return std::string(sl.name, strnlen(sl.name, sizeof sl.name));
}

Status BranchStore::Impl::Lock() {
  auto* m = reinterpret_cast<pthread_mutex_t*>(hdr->mutex);
  int rc = pthread_mutex_lock(m);
  if (rc == EOWNERDEAD) {
    Recover();
    pthread_mutex_consistent(m);
    rc = 0;
  }
  if (rc != 0) return Status::IOError(where() + ": locking the branch table", rc);
  return Status::OK();
}

void BranchStore::Impl::Unlock() {
  pthread_mutex_unlock(reinterpret_cast<pthread_mutex_t*>(hdr->mutex));
}

// A holder of the mutex died. The only multi-step change made under it is a
// commit: merge record published in the parent, then the leaf marked
// committed. Finish what was published; anything unpublished never happened.
void BranchStore::Impl::Recover() {
  for (uint32_t s = 1; s < bf::kSlotCount; ++s) {
    bf::Slot& sl = slots[s];
    if (LoadAcq(sl.state) != bf::kActive) continue;
    const uint32_t p = sl.parent_slot;
    if (p >= bf::kSlotCount) continue;
    const uint64_t plen = LoadAcq(slots[p].published_len);
    if (sl.snapshot_len > plen) continue;
    uint64_t found = UINT64_MAX;
    bool chunked = false;
    (void)ReadLog(p, sl.snapshot_len, plen, [&](uint64_t pos, const Record& r) {
      if (r.type == bf::kRecMerge && r.child_slot == s && r.child_id == sl.id) {
        found = pos;
        chunked = r.child_chunk != 0;
      }
      return Status::OK();
    });
    if (found != UINT64_MAX) {
      sl.commit_pos = found;
      bool self_contained = chunked;
      (void)ReadLog(s, 0, LoadAcq(sl.published_len), [&](uint64_t, const Record& r) {
        if (r.type == bf::kRecMerge && r.child_chunk == 0) self_contained = false;
        return Status::OK();
      });
      if (self_contained) A(sl.flags).fetch_or(bf::kSlotSelfContained, std::memory_order_acq_rel);
      StoreRel(sl.state, uint32_t{bf::kCommitted});
      A(hdr->generation).fetch_add(1, std::memory_order_acq_rel);
    }
  }
}

// Takes `pages` pages from the front of a free extent gc published, or
// returns 0. Each extent is one word changed by compare-and-swap, so no
// lock is needed and two processes can never get the same page.
uint64_t BranchStore::Impl::AllocFromFreeTable(uint64_t pages) {
  if (LoadAcq(hdr->free_pages) < pages) return 0;
  const uint64_t cursor_pages = std::min(LoadAcq(hdr->delta_cursor), geo.delta_size) / bf::kPage;
  for (uint32_t i = 0; i < bf::kFreeExtents; ++i) {
    auto slot = A(hdr->free_extents[i]);
    uint64_t w = slot.load(std::memory_order_acquire);
    while (w != 0) {
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
  const uint32_t st = LoadAcq(const_cast<bf::Slot&>(c).state);
  if (c.id != r.child_id || (parent.slot != kNoSlot && (c.parent_slot != parent.slot || c.parent_id != parent.id)) ||
      c.id <= parent.id || (st != bf::kCommitted && st != bf::kActive))
    return Status::Corruption(where() + ": " + LogLabel(parent) + ": merge record does not name a child of this branch");
  if (r.child_len > LoadAcq(const_cast<bf::Slot&>(c).published_len))
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
  for (int hops = 0;; ++hops) {
    if (chunk < bf::kDeltaReserved || chunk % bf::kPage || chunk > geo.delta_size - bf::kPage ||
        hops > (1 << 20))
      return bad(pos, "log chunk offset " + std::to_string(chunk) + " outside the delta area");
    const std::byte* c = geo.region + geo.delta_offset + chunk;
    const auto h = fmt::Load<bf::ChunkHeader>(c);
    if (h.magic != bf::kChunkMagic || h.capacity < bf::kPage || h.capacity % bf::kPage ||
        h.capacity > geo.delta_size - chunk || h.log_start != log_start)
      return bad(pos, "bad log chunk header at delta offset " + std::to_string(chunk));
    const uint64_t data = h.capacity - sizeof(bf::ChunkHeader);
    const uint64_t chunk_end = log_start + data;
    while (pos < to && pos < chunk_end) {
      if (pos < log_start) return bad(pos, "position before its chunk");
      const uint64_t off = pos - log_start;
      const uint64_t room = data - off;
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
    chunk = A(const_cast<bf::ChunkHeader*>(reinterpret_cast<const bf::ChunkHeader*>(c))->next)
                .load(std::memory_order_acquire);
    log_start = chunk_end;
    if (chunk == 0) return bad(pos, "published length runs past the last chunk");
  }
}

Result<uint64_t> BranchStore::Impl::Append(uint32_t s, std::span<const std::byte> rec) {
  bf::Slot& sl = slots[s];
  const uint64_t pos = LoadAcq(sl.published_len);
  // Find the chunk holding `pos` (the tail).
  uint64_t chunk = sl.first_chunk, log_start = 0;
  bf::ChunkHeader* h = nullptr;
  for (int hops = 0;; ++hops) {
    if (chunk < bf::kDeltaReserved || chunk % bf::kPage || chunk > geo.delta_size - bf::kPage ||
        hops > (1 << 20))
      return Status::Corruption(where() + ": branch '" + SlotName(s) + "': bad log chunk chain");
    h = reinterpret_cast<bf::ChunkHeader*>(mem + geo.delta_offset + chunk);
    if (h->magic != bf::kChunkMagic || h->log_start != log_start || h->capacity < bf::kPage ||
        h->capacity > geo.delta_size - chunk)
      return Status::Corruption(where() + ": branch '" + SlotName(s) + "': bad log chunk header");
    const uint64_t end = log_start + h->capacity - sizeof(bf::ChunkHeader);
    // pos == end: this chunk is full; a next chunk (if a dead appender left
    // one) was never published into and is replaced below.
    if (pos <= end) break;
    chunk = A(h->next).load(std::memory_order_acquire);
    log_start = end;
    if (chunk == 0) return Status::Corruption(where() + ": branch '" + SlotName(s) + "': log chain too short");
  }
  const uint64_t data = h->capacity - sizeof(bf::ChunkHeader);
  const uint64_t off = pos - log_start;
  std::byte* base = reinterpret_cast<std::byte*>(h) + sizeof(bf::ChunkHeader);
  if (rec.size() <= data - off) {
    std::memcpy(base + off, rec.data(), rec.size());
    StoreRel(sl.published_len, pos + rec.size());
    return pos;
  }
  // Start a new chunk.
  const uint64_t cap = std::max<uint64_t>(std::min<uint64_t>(h->capacity * 2, kMaxChunk),
                                          fmt::AlignUp(rec.size() + sizeof(bf::ChunkHeader), bf::kPage));
  DAXFS_ASSIGN_OR_RETURN(uint64_t nc, Alloc(cap));
  auto* nh = reinterpret_cast<bf::ChunkHeader*>(mem + geo.delta_offset + nc);
  nh->magic = bf::kChunkMagic;
  nh->reserved = 0;
  nh->capacity = cap;
  nh->log_start = log_start + data;
  StoreRel(nh->next, uint64_t{0});
  std::memcpy(reinterpret_cast<std::byte*>(nh) + sizeof(bf::ChunkHeader), rec.data(), rec.size());
  if (data - off >= sizeof(bf::RecordHeader))
    fmt::Store(base + off, bf::RecordHeader{bf::kRecPad, static_cast<uint32_t>(data - off)});
  StoreRel(h->next, nc);
  StoreRel(sl.published_len, nh->log_start + rec.size());
  return nh->log_start;
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
      to = std::min(upto, LoadAcq(slots[chain[i]].published_len));
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

int BranchStore::Impl::FindSlot(std::string_view name, bool any_state) const {
  if (name == "main") return bf::kMainSlot;
  int best = -1;
  for (uint32_t s = 1; s < bf::kSlotCount; ++s) {
    const uint32_t st = LoadAcq(slots[s].state);
    if (st == bf::kFree || SlotName(s) != name) continue;
    if (st == bf::kActive) return static_cast<int>(s);
    if (any_state && (best < 0 || slots[s].id > slots[best].id)) best = static_cast<int>(s);
  }
  return best;
}

uint32_t BranchStore::Impl::ActiveChildren(uint32_t s) const {
  uint32_t n = 0;
  for (uint32_t c = 1; c < bf::kSlotCount; ++c)
    if (LoadAcq(slots[c].state) == bf::kActive && slots[c].parent_slot == s &&
        slots[c].parent_id == slots[s].id)
      ++n;
  return n;
}

bool BranchStore::Impl::LeaseLive(const bf::Slot& s) const {
  auto& sl = const_cast<bf::Slot&>(s);
  const uint64_t p = LoadAcq(sl.lease_pid);
  return p != 0 && branch::ProcessAlive(p, LoadAcq(sl.lease_start));
}

BranchInfo BranchStore::Impl::MakeInfo(uint32_t s) const {
  auto& sl = slots[s];
  BranchInfo i;
  i.name = s == bf::kMainSlot ? "main" : SlotName(s);
  i.id = sl.id;
  i.slot = s;
  if (s != bf::kMainSlot && sl.parent_slot < bf::kSlotCount)
    i.parent = sl.parent_slot == bf::kMainSlot ? "main" : SlotName(sl.parent_slot);
  i.state = StateName(LoadAcq(sl.state));
  i.log_bytes = LoadAcq(sl.published_len);
  i.snapshot = sl.snapshot_len;
  i.writer = LeaseLive(sl) ? static_cast<pid_t>(LoadAcq(sl.lease_pid)) : 0;
  i.children = ActiveChildren(s);
  i.created_sec = sl.created_sec;
  i.siblings = (sl.flags & bf::kSlotFirstWins) ? "first-wins" : "merge";
  return i;
}

void BranchStore::Impl::Detach() {
  if (attach_idx < 0) return;
  bf::AttachEntry& e = attach[attach_idx];
  if (LoadAcq(e.token) == token) {
    StoreRel(e.token, uint64_t{0});
    StoreRel(e.start, uint64_t{0});
    StoreRel(e.pid, uint64_t{0});
  }
  attach_idx = -1;
}

namespace {
uint64_t CheckControlBlock(const BranchStore::Impl& m, const std::function<void(const std::string&)>& report);

// Anything that frees pages does so on what the control block says: on a
// damaged one it could free pages a live branch uses. `what` (e.g. "gc")
// is refused with the number of problems and the first.
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
}  // namespace

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
    auto& e = attach[i];
    const uint64_t p = LoadAcq(e.pid);
    if (p != 0 && branch::ProcessAlive(p, LoadAcq(e.start))) return true;  // a dead viewer holds nothing
  }
  return false;
}

namespace {

// Puts pages [first, first + n) into an empty free-table word (or, ending at
// the bump cursor, gives them back to it). False when the table is full:
// the pages then wait for the next exclusive gc.
bool GiveBack(BranchStore::Impl& m, uint64_t first, uint64_t n) {
  auto cur = A(m.hdr->delta_cursor);
  uint64_t end = (first + n) * bf::kPage;
  uint64_t c = cur.load(std::memory_order_acquire);
  if (c == end && cur.compare_exchange_strong(c, first * bf::kPage, std::memory_order_acq_rel)) return true;
  while (n > 0) {
    const uint64_t take = std::min(n, bf::kFreeCountMax);
    bool put = false;
    for (uint32_t i = 0; i < bf::kFreeExtents && !put; ++i) {
      uint64_t zero = 0;
      put = A(m.hdr->free_extents[i]).compare_exchange_strong(zero, bf::FreeExtent(first, take),
                                                             std::memory_order_acq_rel);
    }
    if (!put) return false;
    A(m.hdr->free_pages).fetch_add(take, std::memory_order_acq_rel);
    first += take;
    n -= take;
  }
  return true;
}

}  // namespace

GcResult BranchStore::Impl::ReclaimEndedLocked() {
  GcResult g;
  uint64_t leaked = 0, skipped_viewed = 0;
  auto live = [&](uint32_t s) { return LoadAcq(slots[s].state); };
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
  for (uint32_t s = 1; s < bf::kSlotCount; ++s) {
    const uint32_t st = live(s);
    if (st == bf::kCommitted) {
      const uint32_t p = slots[s].parent_slot;
      if (p >= bf::kSlotCount || slots[p].id != slots[s].parent_id || live(p) != bf::kActive) continue;
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
      if (std::any_of(group.begin(), group.end(), [&](uint32_t x) { return Viewed(x); })) {
        ++skipped_viewed;
        continue;
      }
      for (uint32_t x : group) StoreRel(slots[x].state, uint32_t{bf::kFree});
      g.slots_freed += static_cast<uint32_t>(group.size());
      continue;
    }
    if (st != bf::kAborted) continue;
    // The aborted branch and the committed branches merged into it: nobody
    // may have a view of any of them (their spans would point into pages
    // given back here).
    std::vector<uint32_t> group{s};
    for (uint32_t c = 1; c < bf::kSlotCount; ++c)
      if (c != s && live(c) == bf::kCommitted && dead_under(c, s)) group.push_back(c);
    if (std::any_of(group.begin(), group.end(), [&](uint32_t x) { return Viewed(x); })) {
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
    Status st_mark = MarkLog(LogOf(s), LoadAcq(slots[s].published_len), mark, 0);
    for (uint32_t c : group)
      if (st_mark.ok() && c != s) st_mark = MarkLog(LogOf(c), LoadAcq(slots[c].published_len), mark, 0);
    if (!st_mark.ok()) {
      g.note += "not reclaiming '" + SlotName(s) + "': " + st_mark.message() + "; ";
      continue;
    }
    for (uint32_t x : group) StoreRel(slots[x].state, uint32_t{bf::kFree});
    g.slots_freed += static_cast<uint32_t>(group.size());
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
  }
  if (g.slots_freed) A(hdr->generation).fetch_add(1, std::memory_order_acq_rel);
  g.note += "online: ended branches' slots freed; aborted branches' pages given back for reuse";
  if (skipped_viewed) g.note += "; " + std::to_string(skipped_viewed) + " ended branch(es) kept: a live process has a view of them";
  if (leaked) g.note += "; " + std::to_string(leaked) + " bytes wait for an exclusive gc (free table full)";
  for (uint32_t i = 0; i < bf::kFreeExtents; ++i)
    g.bytes_free += bf::FreeExtentPages(LoadAcq(hdr->free_extents[i])) * bf::kPage;
  g.bytes_used = LoadAcq(hdr->delta_cursor) - g.bytes_free;
  return g;
}

Result<GcResult> BranchStore::ReclaimEnded() {
  Impl& m = *impl_;
  DAXFS_RETURN_IF_ERROR(m.Lock());
  struct Unlocker { Impl* m; ~Unlocker() { m->Unlock(); } } unlock{&m};
  DAXFS_RETURN_IF_ERROR(RefuseIfDamaged(m, "reclaiming"));
  return m.ReclaimEndedLocked();
}

// ---- BranchStore ----

void BranchStore::AdoptAfterFork() {
  Impl& m = *impl_;
  m.pid = getpid();
  m.start_time = branch::ProcessStartTime(m.pid);
  if (m.attach_idx < 0) return;
  bf::AttachEntry& e = m.attach[m.attach_idx];
  if (LoadAcq(e.token) != m.token) return;
  StoreRel(e.start, m.start_time);
  StoreRel(e.pid, static_cast<uint64_t>(m.pid));
}

BranchStore::BranchStore(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
BranchStore::~BranchStore() { impl_->Detach(); }

const Region& BranchStore::region() const { return *impl_->region; }
std::shared_ptr<const Image> BranchStore::base() const { return impl_->base; }

Result<std::shared_ptr<BranchStore>> BranchStore::Init(const std::string& image_spec,
                                                       const std::string& region_spec,
                                                       uint64_t delta_size) {
  DAXFS_ASSIGN_OR_RETURN(auto img, Image::Open(image_spec));
  const ImageInfo& info = img->info();
  if (!info.daxfs_extensions)
    return Status::NotSupported(image_spec + ": a plain upstream image has no extension header; "
                                "rebuild it with mkdaxfs (default or --upstream-readable)");
  if (info.branching || (info.features_incompat & fmt::kFeatureBranchRegion))
    return Status::InvalidArgument(image_spec + ": already a branch region; use an image");
  if (info.objects)
    return Status::NotSupported(image_spec + ": an object-store image keeps its file data outside "
                                "the region; convert it first (mkdaxfs OUT " + image_spec + ")");
  if (delta_size < 1024 * 1024)
    return Status::InvalidArgument("--delta must be at least 1 MiB");
  if (delta_size > (uint64_t{1} << 60))
    return Status::InvalidArgument("--delta " + std::to_string(delta_size) + " is too large (at most 1 EiB)");
  // A branch region someone is using is their work: never replace it
  // under them (mkfs refuses a mounted device the same way).
  if (region_spec.rfind("memfd:", 0) != 0) {
    if (auto existing = Open(region_spec); existing.ok()) {
      const uint32_t others = (*existing)->Usage().attached - 1;
      if (others > 0)
        return Status::Busy(region_spec + ": a branch region in use by " + std::to_string(others) +
                            " other process(es) (mounts, writers); not replacing it: unmount or stop them first");
    }
  }
  const uint64_t image_end = fmt::AlignUp(info.total_size, bf::kPage);
  const uint64_t control_off = image_end;
  const uint64_t delta_off = control_off + bf::kControlSize;
  delta_size = fmt::AlignUp(delta_size, bf::kPage);
  const uint64_t total = delta_off + delta_size;
  // The delta area stays sparse: a region with a large --delta costs memory
  // only for what branches write (Alloc allocates the pages it hands out).
  DAXFS_ASSIGN_OR_RETURN(auto region,
                         Region::Create(region_spec, total, delta_off + bf::kDeltaReserved + kFirstChunk));
  auto dst = region->writable_bytes();
  if (dst.size() < total) return Status::NoSpace(region_spec + ": region too small");
  const auto src = img->region().bytes();
  std::memcpy(dst.data(), src.data(), info.total_size);
  std::memset(dst.data() + info.total_size, 0, delta_off + bf::kPage - info.total_size);
  // Control block.
  auto* hdr = reinterpret_cast<bf::ControlHeader*>(dst.data() + control_off);
  hdr->magic = bf::kControlMagic;
  hdr->version = bf::kControlVersion;
  hdr->control_size = bf::kControlSize;
  hdr->delta_offset = delta_off;
  hdr->delta_size = dst.size() - delta_off;
  hdr->slot_count = bf::kSlotCount;
  hdr->slot_size = sizeof(bf::Slot);
  hdr->attach_count = bf::kAttachCount;
  hdr->base_inode_count = info.inode_count;
  hdr->geometry_csum = GeometryChecksum(hdr);
  hdr->next_inode_id = uint64_t{info.inode_count} + 1;
  hdr->delta_cursor = bf::kDeltaReserved;
  hdr->next_branch_id = 2;
  DAXFS_RETURN_IF_ERROR(InitMutex(hdr->mutex));
  hdr->boot_hash = BootHash();
  // main: slot 0 with an empty log.
  auto* slots = reinterpret_cast<bf::Slot*>(dst.data() + control_off + bf::kSlotsOffset);
  const uint64_t chunk = hdr->delta_cursor;
  hdr->delta_cursor += kFirstChunk;
  auto* ch = reinterpret_cast<bf::ChunkHeader*>(dst.data() + delta_off + chunk);
  *ch = bf::ChunkHeader{bf::kChunkMagic, 0, kFirstChunk, 0, 0};
  bf::Slot& m = slots[bf::kMainSlot];
  m.id = 1;
  m.parent_slot = 0;
  m.first_chunk = chunk;
  m.created_sec = time(nullptr);
  std::memcpy(m.name, "main", 4);
  StoreRel(m.state, uint32_t{bf::kActive});
  // Last, the superblock: only now does the region open as a branch region.
  auto sb = fmt::Load<fmt::Superblock>(dst.data());
  sb.total_size = dst.size();
  sb.version = fmt::kVersionIncompat;
  sb.ext.features_incompat |= fmt::kFeatureBranchRegion;
  std::memcpy(sb.ext.reserved + fmt::kExtBranchControlOffset, &control_off, 8);
  const uint64_t csize = bf::kControlSize;
  std::memcpy(sb.ext.reserved + fmt::kExtBranchControlSize, &csize, 8);
  fmt::Store(dst.data(), sb);
  sb.ext.super_csum = fmt::SuperChecksum(dst.data());
  fmt::Store(dst.data(), sb);
  // Flushed (memory-only regions have nothing to flush), then named: an
  // error or a crash before this leaves nothing at the region's path.
  (void)msync(dst.data(), dst.size(), MS_SYNC);
  DAXFS_RETURN_IF_ERROR(region->Publish());
  return Open(region);
}

Result<std::shared_ptr<BranchStore>> BranchStore::Open(const std::string& region_spec) {
  DAXFS_ASSIGN_OR_RETURN(auto region, Region::Open(region_spec, Access::kReadWrite));
  return Open(std::move(region));
}

Result<std::shared_ptr<BranchStore>> BranchStore::Open(std::shared_ptr<Region> region) {
  if (region->access() != Access::kReadWrite)
    return Status::InvalidArgument(region->name() + ": branches need a read-write region");
  DAXFS_ASSIGN_OR_RETURN(auto base, Image::Open(region));
  const std::string name = region->name();
  if (!(base->info().features_incompat & fmt::kFeatureBranchRegion))
    return Status::InvalidArgument(name + ": not a branch region (make one with `daxfs branch init "
                                          "IMAGE REGION --delta SIZE`)");
  auto impl = std::make_unique<Impl>();
  impl->region = region;
  impl->base = base;
  impl->mem = region->writable_bytes().data();
  const uint64_t size = region->bytes().size();
  const auto sb = fmt::Load<fmt::Superblock>(impl->mem);
  uint64_t coff, csize;
  std::memcpy(&coff, sb.ext.reserved + fmt::kExtBranchControlOffset, 8);
  std::memcpy(&csize, sb.ext.reserved + fmt::kExtBranchControlSize, 8);
  auto corrupt = [&](const std::string& what) { return Status::Corruption(name + ": " + what); };
  if (coff % bf::kPage || csize != bf::kControlSize || coff < base->info().base_offset + base->info().base_size ||
      coff > size || csize > size - coff)
    return corrupt("control block [" + std::to_string(coff) + ", +" + std::to_string(csize) +
                   ") does not fit in the region");
  auto* hdr = reinterpret_cast<bf::ControlHeader*>(impl->mem + coff);
  if (hdr->magic != bf::kControlMagic) return corrupt("bad control block magic");
  if (hdr->version != bf::kControlVersion && hdr->version != bf::kControlVersionFreeTable &&
      hdr->version != bf::kControlVersionNoFreeTable)
    return Status::NotSupported(name + ": control block version " + std::to_string(hdr->version));
  if (GeometryChecksum(hdr) != hdr->geometry_csum) return corrupt("control block checksum mismatch");
  if (hdr->slot_count != bf::kSlotCount || hdr->slot_size != sizeof(bf::Slot) ||
      hdr->attach_count != bf::kAttachCount || hdr->control_size != bf::kControlSize ||
      hdr->delta_offset != coff + csize || hdr->delta_offset > size ||
      hdr->delta_size != size - hdr->delta_offset || hdr->delta_size < 2 * bf::kPage ||
      hdr->base_inode_count != base->info().inode_count)
    return corrupt("control block geometry does not match the region");
  impl->control_off = coff;
  impl->hdr = hdr;
  impl->slots = reinterpret_cast<bf::Slot*>(impl->mem + coff + bf::kSlotsOffset);
  impl->attach = reinterpret_cast<bf::AttachEntry*>(impl->mem + coff + bf::kAttachOffset);
  impl->geo = branch::Geometry{impl->mem, hdr->delta_offset, hdr->delta_size, hdr->base_inode_count};
  impl->pid = getpid();
  impl->start_time = branch::ProcessStartTime(impl->pid);
  std::random_device rd;
  impl->token = (uint64_t{rd()} << 32 | rd()) | 1;
  // The mutex lives as long as the region; after a reboot (a region on a
  // disk file) whatever it held is meaningless: set it up again, once.
  const uint64_t boot = BootHash();
  for (int tries = 0; tries < 2000; ++tries) {
    uint64_t cur = A(hdr->boot_hash).load(std::memory_order_acquire);
    if (cur == boot) break;
    if (cur != 1 && A(hdr->boot_hash).compare_exchange_strong(cur, 1, std::memory_order_acq_rel)) {
      DAXFS_RETURN_IF_ERROR(InitMutex(hdr->mutex));
      StoreRel(hdr->boot_hash, boot);
      break;
    }
    usleep(1000);
  }
  // Register in the attach table (a dead entry may be reused).
  for (uint32_t i = 0; i < bf::kAttachCount && impl->attach_idx < 0; ++i) {
    bf::AttachEntry& e = impl->attach[i];
    uint64_t p = A(e.pid).load(std::memory_order_acquire);
    if (p != 0 && branch::ProcessAlive(p, A(e.start).load(std::memory_order_acquire))) continue;
    if (A(e.pid).compare_exchange_strong(p, static_cast<uint64_t>(impl->pid),
                                          std::memory_order_acq_rel)) {
      StoreRel(e.start, impl->start_time);
      StoreRel(e.token, impl->token);
      impl->attach_idx = static_cast<int>(i);
      // Viewer bits a dead holder of this entry left are not ours.
      for (uint32_t sl = 0; sl < bf::kSlotCount; ++sl)
        A(impl->slots[sl].viewers[i / 64]).fetch_and(~(uint64_t{1} << (i % 64)), std::memory_order_acq_rel);
    }
  }
  // gc frees blocks only while no other process is attached, so a process
  // it cannot see must not read the region.
  if (impl->attach_idx < 0)
    return Status::Busy(name + ": " + std::to_string(bf::kAttachCount) +
                        " live processes have this region open (the most a region tracks); "
                        "close one and retry");
  struct stat fst;
  impl->allocate_on_demand = region->fd() >= 0 && fstat(region->fd(), &fst) == 0 && S_ISREG(fst.st_mode);
  struct statfs sfs;
  if (region->fd() >= 0 && fstatfs(region->fd(), &sfs) == 0)
    impl->needs_msync = sfs.f_type != TMPFS_MAGIC && sfs.f_type != HUGETLBFS_MAGIC;
  // A version 2 region gets version 3 records from now on: mark it so that
  // an older daxfs refuses it.
  if (LoadAcq(impl->hdr->version) == bf::kControlVersionFreeTable) {
    DAXFS_RETURN_IF_ERROR(impl->Lock());
    if (impl->hdr->version == bf::kControlVersionFreeTable) {
      impl->hdr->version = bf::kControlVersion;
      impl->hdr->geometry_csum = GeometryChecksum(impl->hdr);
    }
    impl->Unlock();
  }
  return std::shared_ptr<BranchStore>(new BranchStore(std::move(impl)));
}

Result<std::vector<BranchInfo>> BranchStore::List() const {
  std::vector<BranchInfo> out;
  for (uint32_t s = 0; s < bf::kSlotCount; ++s)
    if (LoadAcq(impl_->slots[s].state) != bf::kFree) out.push_back(impl_->MakeInfo(s));
  std::sort(out.begin(), out.end(), [](const auto& a, const auto& b) { return a.id < b.id; });
  return out;
}

Result<BranchInfo> BranchStore::Info(std::string_view name) const {
  const int s = impl_->FindSlot(name, true);
  if (s < 0) return Status::NotFound(impl_->where() + ": no branch '" + std::string(name) + "'");
  return impl_->MakeInfo(static_cast<uint32_t>(s));
}

RegionUsage BranchStore::Usage() const {
  RegionUsage u;
  u.delta_size = impl_->geo.delta_size;
  const uint64_t cursor = LoadAcq(impl_->hdr->delta_cursor);
  u.delta_free = std::min(LoadAcq(impl_->hdr->free_pages) * bf::kPage, cursor);
  u.delta_used = cursor - u.delta_free;
  u.next_inode = LoadAcq(impl_->hdr->next_inode_id);
  for (uint32_t s = 0; s < bf::kSlotCount; ++s)
    if (LoadAcq(impl_->slots[s].state) != bf::kFree) ++u.slots_used;
  for (uint32_t i = 0; i < bf::kAttachCount; ++i) {
    auto& e = impl_->attach[i];
    if (branch::ProcessAlive(LoadAcq(e.pid), LoadAcq(e.start))) ++u.attached;
  }
  return u;
}

Result<BranchInfo> BranchStore::Create(std::string_view name, std::string_view parent,
                                       SiblingPolicy siblings) {
  Impl& m = *impl_;
  DAXFS_RETURN_IF_ERROR(ValidBranchName(name));
  DAXFS_RETURN_IF_ERROR(m.Lock());
  struct Unlocker { Impl* m; ~Unlocker() { m->Unlock(); } } unlock{&m};
  if (m.FindSlot(name) >= 0)
    return Status::Exists(m.where() + ": branch '" + std::string(name) + "' exists");
  const int p = m.FindSlot(parent);
  if (p < 0)
    return Status::NotFound(m.where() + ": no active branch '" + std::string(parent) + "' to branch from");
  int free_slot = -1;
  for (int round = 0; round < 2 && free_slot < 0; ++round) {
    // Full: reclaim ended branches online (nobody needs the region to
    // itself), so the number of branches over a region's life is unbounded.
    if (round == 1 && RefuseIfDamaged(m, "reclaiming").ok()) (void)m.ReclaimEndedLocked();
    for (uint32_t s = 1; s < bf::kSlotCount && free_slot < 0; ++s)
      if (LoadAcq(m.slots[s].state) == bf::kFree) free_slot = static_cast<int>(s);
  }
  if (free_slot < 0)
    return Status::NoSpace(m.where() + ": the branch table is full: " + std::to_string(bf::kSlotCount - 1) +
                           " branches are active (or ended but still viewed by a live process); "
                           "commit or abort some");
  DAXFS_ASSIGN_OR_RETURN(uint64_t chunk, m.Alloc(kFirstChunk));
  auto* ch = reinterpret_cast<bf::ChunkHeader*>(m.mem + m.geo.delta_offset + chunk);
  ch->magic = bf::kChunkMagic;
  ch->reserved = 0;
  ch->capacity = kFirstChunk;
  ch->log_start = 0;
  StoreRel(ch->next, uint64_t{0});
  bf::Slot& sl = m.slots[free_slot];
  bf::Slot fresh{};
  fresh.parent_slot = static_cast<uint32_t>(p);
  fresh.id = m.hdr->next_branch_id++;
  fresh.parent_id = m.slots[p].id;
  fresh.snapshot_len = LoadAcq(m.slots[p].published_len);
  fresh.first_chunk = chunk;
  fresh.created_sec = time(nullptr);
  fresh.flags = siblings == SiblingPolicy::kFirstWins ? bf::kSlotFirstWins : 0;
  std::memcpy(fresh.name, name.data(), name.size());
  // Everything but the state, then the state (release): readers that see
  // the slot active see all of it.
  // (The viewer mask is left alone: a process may be setting and clearing
  // its bit right now, from a failed open of the slot's previous branch.)
  std::memcpy(reinterpret_cast<std::byte*>(&sl) + sizeof(uint32_t),
              reinterpret_cast<const std::byte*>(&fresh) + sizeof(uint32_t),
              offsetof(bf::Slot, viewers) - sizeof(uint32_t));
  std::memcpy(reinterpret_cast<std::byte*>(&sl) + offsetof(bf::Slot, reserved),
              reinterpret_cast<const std::byte*>(&fresh) + offsetof(bf::Slot, reserved), sizeof(fresh.reserved));
  StoreRel(sl.state, uint32_t{bf::kActive});
  A(m.hdr->generation).fetch_add(1, std::memory_order_acq_rel);
  return m.MakeInfo(static_cast<uint32_t>(free_slot));
}

Status BranchStore::Abort(std::string_view name) {
  Impl& m = *impl_;
  DAXFS_RETURN_IF_ERROR(m.Lock());
  struct Unlocker { Impl* m; ~Unlocker() { m->Unlock(); } } unlock{&m};
  const int s = m.FindSlot(name);
  if (s < 0) return Status::NotFound(m.where() + ": no active branch '" + std::string(name) + "'");
  if (s == bf::kMainSlot) return Status::InvalidArgument("main cannot be aborted");
  if (uint32_t n = m.ActiveChildren(s))
    return Status::Busy(m.where() + ": branch '" + std::string(name) + "' has " + std::to_string(n) +
                        " active child branch(es); commit or abort them first");
  StoreRel(m.slots[s].state, uint32_t{bf::kAborted});
  A(m.hdr->generation).fetch_add(1, std::memory_order_acq_rel);
  return Status::OK();
}

Status BranchStore::Commit(std::string_view name, std::vector<std::string>* conflicts_out) {
  Impl& m = *impl_;
  DAXFS_RETURN_IF_ERROR(m.Lock());
  struct Unlocker { Impl* m; ~Unlocker() { m->Unlock(); } } unlock{&m};
  const int si = m.FindSlot(name);
  const std::string bname(name);
  if (si < 0) return Status::NotFound(m.where() + ": no active branch '" + bname + "'");
  if (si == bf::kMainSlot) return Status::InvalidArgument("main has no parent to commit into");
  const uint32_t s = static_cast<uint32_t>(si);
  bf::Slot& sl = m.slots[s];
  if (uint32_t n = m.ActiveChildren(s))
    return Status::Busy(m.where() + ": branch '" + bname + "' has " + std::to_string(n) +
                        " active child branch(es); commit or abort them first");
  const uint32_t p = sl.parent_slot;
  bf::Slot& ps = m.slots[p];
  if (p >= bf::kSlotCount || ps.id != sl.parent_id || LoadAcq(ps.state) != bf::kActive)
    return Status::Corruption(m.where() + ": branch '" + bname + "' has no active parent");
  const std::string pname = p == bf::kMainSlot ? "main" : m.SlotName(p);
  // Nobody else may append to the leaf or the parent meanwhile: a live
  // writer lease of another BranchStore on either makes this EBUSY.
  for (bf::Slot* x : {&sl, &ps}) {
    if (m.LeaseLive(*x) && LoadAcq(x->lease_token) != m.token)
      return Status::Busy(m.where() + ": branch '" + (x == &sl ? bname : pname) +
                          "' is open for writing by pid " + std::to_string(LoadAcq(x->lease_pid)) +
                          "; close it there first");
  }
  std::scoped_lock appenders(m.append_mu[std::min(s, p)], m.append_mu[std::max(s, p)]);
  const uint64_t leaf_len = LoadAcq(sl.published_len);
  const uint64_t snap = sl.snapshot_len;
  const uint64_t parent_len = LoadAcq(ps.published_len);
  if (parent_len != snap && (sl.flags & bf::kSlotFirstWins)) {
    // First-wins: any sibling's commit since the snapshot decides it.
    std::string winner;
    DAXFS_RETURN_IF_ERROR(m.ReadLog(p, snap, parent_len, [&](uint64_t, const Record& r) -> Status {
      if (r.type == bf::kRecMerge && winner.empty())
        winner = r.child_slot < bf::kSlotCount && m.slots[r.child_slot].id == r.child_id
                     ? m.SlotName(r.child_slot)
                     : "id " + std::to_string(r.child_id);
      return Status::OK();
    }));
    if (!winner.empty()) {
      if (conflicts_out) conflicts_out->clear();
      return Status::Stale(m.where() + ": cannot commit '" + bname + "' into '" + pname + "': its sibling '" +
                           winner + "' committed first (siblings=first-wins; the branch is left as it was)");
    }
  }
  if (parent_len != snap) {
    // The parent moved on since the leaf was made: the sibling rule.
    Keys pk, lk;
    DAXFS_RETURN_IF_ERROR(m.CollectKeys(p, snap, parent_len, &pk, 0));
    DAXFS_RETURN_IF_ERROR(m.CollectKeys(s, 0, leaf_len, &lk, 0));
    std::vector<std::pair<int, std::pair<Ino, std::string>>> hits;  // 0 entry, 1 inode
    for (const auto& e : lk.entries)
      if (pk.entries.count(e)) hits.push_back({0, e});
    auto inode_hit = [&](Ino i) { hits.push_back({1, {i, ""}}); };
    for (Ino i : lk.inodes)
      if (pk.inodes.count(i) || pk.deleted.count(i)) inode_hit(i);
    for (Ino i : lk.used)
      if (pk.deleted.count(i)) inode_hit(i);
    for (Ino i : lk.deleted)
      if (pk.used.count(i) && !pk.inodes.count(i)) inode_hit(i);
    std::string why;
    std::vector<std::string> paths;
    if (!hits.empty()) {
      uint64_t a1 = 0, a2 = 0;
      auto leaf_view = m.BuildIndex(s, &a1);
      auto parent_view = m.BuildIndex(p, &a2);
      auto path_of = [&](Ino i) {
        std::string r = leaf_view.ok() ? (*leaf_view)->PathOf(i) : "";
        if ((r.empty() || r.rfind("inode ", 0) == 0) && parent_view.ok()) r = (*parent_view)->PathOf(i);
        return r;
      };
      for (const auto& [kind, key] : hits) {
        if (kind == 0) {
          std::string d = path_of(key.first);
          paths.push_back((d == "/" ? "" : d) + "/" + key.second);
        } else {
          paths.push_back(path_of(key.first));
        }
      }
      std::sort(paths.begin(), paths.end());
      paths.erase(std::unique(paths.begin(), paths.end()), paths.end());
    } else {
      // No key in common: replay the leaf on the parent as it is now. This
      // catches what keys cannot see (a rename cycle across both).
      uint64_t applied = 0;
      DAXFS_ASSIGN_OR_RETURN(auto pv, m.BuildIndex(p, &applied, parent_len));
      Status st = m.Replay(s, 0, leaf_len, pv.get(), 0);
      if (!st.ok()) why = st.message();
    }
    if (!paths.empty() || !why.empty()) {
      std::string msg = m.where() + ": cannot commit '" + bname + "' into '" + pname + "': ";
      if (!paths.empty()) {
        msg += "changed in '" + pname + "' since the branch was created:";
        for (const auto& x : paths) msg += " " + x;
      } else {
        msg += "its changes no longer apply: " + why;
      }
      if (conflicts_out) *conflicts_out = paths;
      return Status::Stale(msg + " (the branch is left as it was)");
    }
  }
  Record r;
  r.type = bf::kRecMerge;
  r.child_slot = s;
  r.child_id = sl.id;
  r.child_len = leaf_len;
  r.child_chunk = sl.first_chunk;  // the parent's log reaches the leaf's without its slot
  // Self-contained when every merge in the leaf's own log is too (a region
  // written by an older daxfs may hold merges that need their slots).
  bool self_contained = true;
  DAXFS_RETURN_IF_ERROR(m.ReadLog(s, 0, leaf_len, [&](uint64_t, const Record& x) -> Status {
    if (x.type == bf::kRecMerge && x.child_chunk == 0) self_contained = false;
    return Status::OK();
  }));
  const auto bytes = branch::Encode(r);
  DAXFS_ASSIGN_OR_RETURN(uint64_t pos, m.Append(p, bytes));  // the commit point
  sl.commit_pos = pos;
  if (self_contained) A(sl.flags).fetch_or(bf::kSlotSelfContained, std::memory_order_acq_rel);
  StoreRel(sl.state, uint32_t{bf::kCommitted});
  A(m.hdr->generation).fetch_add(1, std::memory_order_acq_rel);
  if (m.needs_msync) msync(m.mem, m.region->bytes().size(), MS_SYNC);
  return Status::OK();
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
    const uint32_t st = LoadAcq(const_cast<bf::Slot&>(sl).state);
    if (st != bf::kActive && st != bf::kCommitted) continue;
    // A committed branch counts only when its chain of parents reaches an
    // active branch: one merged into an aborted branch is garbage, and
    // online reclamation may be giving its pages back right now.
    if (st == bf::kCommitted) {
      uint32_t c = s;
      bool live = false;
      for (int hops = 0; hops < 300 && c != bf::kMainSlot; ++hops) {
        const uint32_t p = slots[c].parent_slot;
        if (p >= bf::kSlotCount || slots[p].id != slots[c].parent_id) break;
        const uint32_t ps = LoadAcq(const_cast<bf::Slot&>(slots[p]).state);
        if (ps == bf::kActive) {
          live = true;
          break;
        }
        if (ps != bf::kCommitted) break;
        c = p;
      }
      if (!live) continue;
    }
    DAXFS_RETURN_IF_ERROR(MarkLog(LogOf(s), LoadAcq(const_cast<bf::Slot&>(sl).published_len), mark, 0));
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

Result<GcResult> BranchStore::Gc() {
  Impl& m = *impl_;
  std::string others;
  for (uint32_t i = 0; i < bf::kAttachCount; ++i) {
    auto& e = m.attach[i];
    const uint64_t p = LoadAcq(e.pid);
    if (p == 0 || LoadAcq(e.token) == m.token) continue;
    if (branch::ProcessAlive(p, LoadAcq(e.start))) others += " " + std::to_string(p);
  }
  // With other processes attached, or views open here, gc works online:
  // what no live process can be reading (ReclaimEnded). Alone, it also
  // finds pages dead writers leaked and compacts the free table.
  if (!others.empty() || m.open_views.load() != 0) {
    DAXFS_ASSIGN_OR_RETURN(GcResult g, ReclaimEnded());
    if (!others.empty()) g.note += " (other processes attached:" + others + "; blocks leaked by dead writers wait for a gc run alone)";
    return g;
  }
  DAXFS_RETURN_IF_ERROR(m.Lock());
  struct Unlocker { Impl* m; ~Unlocker() { m->Unlock(); } } unlock{&m};
  DAXFS_RETURN_IF_ERROR(RefuseIfDamaged(m, "gc"));
  GcResult g;
  std::lock_guard lk(m.state_mu);
  // Free aborted slots, and committed ones whose log only an aborted (or
  // freed) parent refers to; repeat, since freeing one frees its children.
  for (bool again = true; again;) {
    again = false;
    for (uint32_t s = 1; s < bf::kSlotCount; ++s) {
      const uint32_t st = LoadAcq(m.slots[s].state);
      bool dead = st == bf::kAborted;
      if (st == bf::kCommitted) {
        const uint32_t p = m.slots[s].parent_slot;
        dead = p >= bf::kSlotCount || m.slots[p].id != m.slots[s].parent_id ||
               LoadAcq(m.slots[p].state) == bf::kAborted || LoadAcq(m.slots[p].state) == bf::kFree;
      }
      if (!dead) continue;
      StoreRel(m.slots[s].state, uint32_t{bf::kFree});
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
  for (uint32_t i = 0; i < bf::kFreeExtents; ++i)
    was_free += bf::FreeExtentPages(LoadAcq(m.hdr->free_extents[i]));
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
  if (m.hdr->version == bf::kControlVersionNoFreeTable && !words.empty()) {
    m.hdr->version = bf::kControlVersion;
    m.hdr->geometry_csum = GeometryChecksum(m.hdr);
  }
  StoreRel(m.hdr->free_pages, uint64_t{0});
  for (uint32_t i = 0; i < bf::kFreeExtents; ++i) StoreRel(m.hdr->free_extents[i], uint64_t{0});
  for (size_t i = 0; i < words.size(); ++i) StoreRel(m.hdr->free_extents[i], words[i]);
  StoreRel(m.hdr->free_pages, free_pages);
  const uint64_t old_cursor = LoadAcq(m.hdr->delta_cursor);
  StoreRel(m.hdr->delta_cursor, cursor_pages * bf::kPage);
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

namespace {

// Everything of the region but the base image: the control block, the free
// table, every slot and every active branch's log. Gc runs it too: damage
// found here must stop anything that would free or hand out pages.
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
      if (w == 0) continue;
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
    const uint32_t st = LoadAcq(const_cast<bf::Slot&>(sl).state);
    if (st == bf::kFree) continue;
    const std::string nm = m.SlotName(s);
    const std::string at = "branch '" + nm + "' (slot " + std::to_string(s) + ")";
    if (st > bf::kAborted) {
      problem(at + ": invalid state " + std::to_string(st));
      continue;
    }
    if (strnlen(sl.name, sizeof sl.name) >= sizeof sl.name || nm.empty()) problem(at + ": bad name");
    if (s == bf::kMainSlot && st != bf::kActive) problem("main is not active");
    if (s != bf::kMainSlot) {
      if (sl.parent_slot >= bf::kSlotCount || m.slots[sl.parent_slot].id != sl.parent_id ||
          sl.id <= sl.parent_id)
        problem(at + ": invalid parent");
      else if (st == bf::kActive && LoadAcq(m.slots[sl.parent_slot].state) != bf::kActive)
        problem(at + ": active, but its parent is not");
    }
    if (st == bf::kActive && !active_names.insert(nm).second) problem(at + ": duplicate active name");
    if (st != bf::kActive) continue;
    uint64_t applied = 0;
    auto idx = m.BuildIndex(s, &applied);
    if (!idx.ok()) problem(at + ": " + idx.status().message());
  }
  return problems;
}

}  // namespace

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
  return problems + CheckControlBlock(m, report);
}

}  // namespace daxfs
