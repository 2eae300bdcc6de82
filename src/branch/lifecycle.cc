// Branch lifecycle: create, commit, abort, and what a gone holder left half
// done. Every slot transition is one CAS of the slot's state word.
#include <sys/mman.h>

#include <algorithm>
#include <cstring>
#include <random>
#include <thread>

#include "branch/shared.h"

namespace daxfs {

using branch::A;
using branch::Index;
using branch::Keys;
using branch::LoadAcq;
using branch::Record;
using branch::StoreRel;
using branch::kFirstChunk;

namespace {

const char* StateName(uint32_t s) {
  switch (s) {
    case bf::kActive: return "active";
    case bf::kCommitted: return "committed";
    case bf::kAborted: return "aborted";
    case bf::kFree: return "free";
    case bf::kEnding: return "active";  // being committed or aborted right now
    case bf::kClaimed: return "being created";
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

std::string BranchStore::Impl::SlotName(uint32_t s) const {
  const bf::Slot& sl = slots[s];
  return std::string(sl.name, strnlen(sl.name, sizeof sl.name));
}


int BranchStore::Impl::FindSlot(std::string_view name, bool any_state) const {
  if (name == "main") return bf::kMainSlot;
  int best = -1;
  for (uint32_t s = 1; s < bf::kSlotCount; ++s) {
    const uint32_t st = branch::StateOf(slots[s]);
    if (st == bf::kFree || st == bf::kClaimed || SlotName(s) != name) continue;
    if (branch::Live(st)) return static_cast<int>(s);
    if (any_state && (best < 0 || slots[s].id > slots[best].id)) best = static_cast<int>(s);
  }
  return best;
}

uint32_t BranchStore::Impl::ActiveChildren(uint32_t s) const {
  uint32_t n = 0;
  for (uint32_t c = 1; c < bf::kSlotCount; ++c)
    if (branch::Live(branch::StateOf(slots[c])) && slots[c].parent_slot == s && slots[c].parent_id == slots[s].id)
      ++n;
  return n;
}

BranchInfo BranchStore::Impl::MakeInfo(uint32_t s) const {
  auto& sl = slots[s];
  BranchInfo i;
  i.name = s == bf::kMainSlot ? "main" : SlotName(s);
  i.id = sl.id;
  i.slot = s;
  if (s != bf::kMainSlot && sl.parent_slot < bf::kSlotCount)
    i.parent = sl.parent_slot == bf::kMainSlot ? "main" : SlotName(sl.parent_slot);
  i.state = StateName(branch::StateOf(sl));
  i.log_bytes = branch::PublishedLenOf(sl);
  i.snapshot = sl.snapshot_len;
  i.writer = HolderPid(LoadAcq(sl.lease));
  i.children = ActiveChildren(s);
  i.created_sec = sl.created_sec;
  i.siblings = (sl.flags & bf::kSlotFirstWins) ? "first-wins" : "merge";
  return i;
}

bool BranchStore::Impl::CasState(uint32_t s, uint64_t expect, uint64_t want) {
  return A(slots[s].state).compare_exchange_strong(expect, want, std::memory_order_seq_cst);
}

void BranchStore::Impl::ResolveAbandoned() {
  for (uint32_t s = 1; s < bf::kSlotCount; ++s) {
    uint64_t w = A(slots[s].state).load(std::memory_order_seq_cst);
    const uint32_t st = bf::SlotWordState(w);
    const bf::Holder h = bf::SlotWordHolder(w);
    if (h == 0 || h == me || HolderLive(h)) continue;
    if (st == bf::kClaimed) {
      // Its creator went before the branch existed (its first chunk is
      // leaked until an exclusive gc).
      CasState(s, w, bf::SlotWord(bf::kFree));
      continue;
    }
    if (st == bf::kCommitted || st == bf::kAborted) {
      // A reclaimer's claim: give the slot back as it was (its pages, if
      // some were already handed back, are not touched again).
      CasState(s, w, bf::SlotWord(st));
      continue;
    }
    if (st != bf::kEnding) continue;
    // A commit or abort its ender left: ours to finish now.
    const uint64_t mine = bf::SlotWord(bf::kEnding, me);
    if (!CasState(s, w, mine)) continue;
    const uint32_t p = slots[s].parent_slot;
    if (p < bf::kSlotCount) {
      // The ender may have held the parent's lease, about to publish the
      // merge: fence it first, so that what the parent's log says now is
      // final.
      std::lock_guard lk(append_mu[p]);
      const uint64_t holder = LoadAcq(slots[p].lease);
      if (holder == h && TakeLease(p, false).ok()) DropLease(p);
    }
    const uint64_t at = FindMerge(s);
    if (at != UINT64_MAX) {
      FinishCommitted(s, at, mine);
    } else {
      CasState(s, mine, bf::SlotWord(bf::kActive));  // nothing was published: it never happened
    }
    A(hdr->generation).fetch_add(1, std::memory_order_acq_rel);
  }
}

void BranchStore::Impl::WaitOutEnder(uint32_t s) {
  const auto deadline = std::chrono::steady_clock::now() + timeout + timeout / 4;
  for (int spins = 0;; ++spins) {
    const uint64_t w = A(slots[s].state).load(std::memory_order_seq_cst);
    const bf::Holder h = bf::SlotWordHolder(w);
    if (bf::SlotWordState(w) != bf::kEnding || h == me) return;
    if (!HolderLive(h)) {
      ResolveAbandoned();
      return;
    }
    if (HolderBeating(h) || std::chrono::steady_clock::now() > deadline) return;
    std::this_thread::sleep_for(std::chrono::microseconds(spins < 100 ? 100 : 1000));
  }
}

Result<std::vector<BranchInfo>> BranchStore::List() const {
  std::vector<BranchInfo> out;
  for (uint32_t s = 0; s < bf::kSlotCount; ++s) {
    const uint32_t st = branch::StateOf(impl_->slots[s]);
    if (st != bf::kFree && st != bf::kClaimed) out.push_back(impl_->MakeInfo(s));
  }
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
    if (branch::StateOf(impl_->slots[s]) != bf::kFree) ++u.slots_used;
  for (uint32_t i = 0; i < bf::kAttachCount; ++i)
    if (impl_->EntryLive(i)) ++u.attached;
  return u;
}

namespace {
// Another branch of this name that is live (or being made), not slot `s`.
bool NameTaken(const BranchStore::Impl& m, std::string_view name, uint32_t s) {
  for (uint32_t o = 1; o < bf::kSlotCount; ++o) {
    if (o == s) continue;
    const uint32_t st = branch::StateOf(m.slots[o]);
    if (branch::Live(st) && m.SlotName(o) == name) return true;
  }
  return false;
}
}  // namespace

Result<BranchInfo> BranchStore::Create(std::string_view name, std::string_view parent,
                                       SiblingPolicy siblings) {
  Impl& m = *impl_;
  DAXFS_RETURN_IF_ERROR(ValidBranchName(name));
  DAXFS_RETURN_IF_ERROR(m.NotEvicted());
  m.ResolveAbandoned();
  std::minstd_rand backoff(static_cast<uint32_t>(m.me));
  for (int attempt = 0;; ++attempt) {
    if (m.FindSlot(name) >= 0)
      return Status::Exists(m.where() + ": branch '" + std::string(name) + "' exists");
    const int p = m.FindSlot(parent);
    if (p < 0 || branch::StateOf(m.slots[p]) != bf::kActive)
      return Status::NotFound(m.where() + ": no active branch '" + std::string(parent) + "' to branch from");
    // A free slot, claimed with one CAS (free -> being made by us).
    int slot = -1;
    for (int round = 0; round < 8 && slot < 0; ++round) {
      // Full: reclaim ended branches online (nobody needs the region to
      // itself), so the number of branches over a region's life is unbounded.
      // Other creators reclaim at the same time and may take the slots
      // this one freed, or hold the claims it would have made: a few
      // rounds, with a short pause, before the table counts as full.
      if (round >= 2) std::this_thread::sleep_for(std::chrono::microseconds(100 << (round - 2)));
      if (round >= 1 && branch::RefuseIfDamaged(m, "reclaiming").ok()) (void)m.ReclaimOnline();
      for (uint32_t s = 1; s < bf::kSlotCount && slot < 0; ++s)
        if (m.CasState(s, bf::SlotWord(bf::kFree), bf::SlotWord(bf::kClaimed, m.me))) slot = static_cast<int>(s);
    }
    if (slot < 0)
      return Status::NoSpace(m.where() + ": the branch table is full: " + std::to_string(bf::kSlotCount - 1) +
                             " branches are active (or ended but still viewed by a live process); "
                             "commit or abort some");
    const uint64_t claimed = bf::SlotWord(bf::kClaimed, m.me);
    auto chunk = m.Alloc(kFirstChunk);
    if (!chunk.ok()) {
      m.CasState(slot, claimed, bf::SlotWord(bf::kFree));
      return chunk.status();
    }
    bf::Slot& sl = m.slots[slot];
    // A new epoch: an appender of the slot's previous branch that was
    // stopped and resumes now can never publish into this log.
    const uint64_t epoch = bf::PublishedEpoch(LoadAcq(sl.published)) + 1;
    auto* ch = reinterpret_cast<bf::ChunkHeader*>(m.mem + m.geo.delta_offset + *chunk);
    ch->magic = bf::kChunkMagic;
    ch->writer = bf::ChunkStamp(epoch);
    ch->capacity = kFirstChunk;
    ch->log_start = 0;
    StoreRel(ch->next, uint64_t{0});
    sl.parent_slot = static_cast<uint32_t>(p);
    A(sl.flags).store(siblings == SiblingPolicy::kFirstWins ? bf::kSlotFirstWins : 0, std::memory_order_relaxed);
    sl.id = A(m.hdr->next_branch_id).fetch_add(1, std::memory_order_acq_rel);
    sl.parent_id = m.slots[p].id;
    sl.snapshot_len = branch::PublishedLenOf(m.slots[p]);
    sl.first_chunk = *chunk;
    StoreRel(sl.published, bf::PublishedWord(epoch, 0));
    StoreRel(sl.lease, uint64_t{0});
    sl.created_sec = time(nullptr);
    sl.commit_pos = 0;
    std::memset(sl.name, 0, sizeof sl.name);
    std::memcpy(sl.name, name.data(), name.size());
    // (The viewer mask is left alone: a process may be setting and
    // clearing its bit right now, from a failed open of the slot's
    // previous branch.)
    // Active (seq_cst), then look at the parent and the name: a commit or
    // abort of the parent marks it ending before it counts its children,
    // and a rival creator of this name publishes before it looks, so at
    // least one of each pair sees the other.
    if (!m.CasState(slot, claimed, bf::SlotWord(bf::kActive)))
      return Status::Stale(m.where() + ": creating branch '" + std::string(name) +
                           "': the slot was taken over (this process was stopped past the lease timeout)");
    const bool parent_ok = branch::StateOf(m.slots[p]) == bf::kActive && m.slots[p].id == sl.parent_id;
    const bool rival = NameTaken(m, name, static_cast<uint32_t>(slot));
    if (parent_ok && !rival) {
      A(m.hdr->generation).fetch_add(1, std::memory_order_acq_rel);
      return m.MakeInfo(static_cast<uint32_t>(slot));
    }
    // Back off: this one never existed for anyone who asked (online
    // reclamation frees it).
    m.CasState(slot, bf::SlotWord(bf::kActive), bf::SlotWord(bf::kAborted));
    A(m.hdr->generation).fetch_add(1, std::memory_order_acq_rel);
    if (!parent_ok)
      return Status::NotFound(m.where() + ": branch '" + std::string(parent) +
                              "' ended while a child was being made of it");
    if (attempt >= 50)
      return Status::Busy(m.where() + ": branch '" + std::string(name) + "' is being created by another process too");
    std::this_thread::sleep_for(std::chrono::microseconds(50 + backoff() % 2000));
  }
}

Status BranchStore::Abort(std::string_view name) {
  Impl& m = *impl_;
  DAXFS_RETURN_IF_ERROR(m.NotEvicted());
  m.ResolveAbandoned();
  int s = m.FindSlot(name);
  if (s < 0) return Status::NotFound(m.where() + ": no active branch '" + std::string(name) + "'");
  if (s == bf::kMainSlot) return Status::InvalidArgument("main cannot be aborted");
  if (branch::StateOf(m.slots[s]) == bf::kEnding) {
    m.WaitOutEnder(static_cast<uint32_t>(s));
    s = m.FindSlot(name);
    if (s < 0) return Status::NotFound(m.where() + ": no active branch '" + std::string(name) + "'");
  }
  const uint64_t ending = bf::SlotWord(bf::kEnding, m.me);
  if (!m.CasState(s, bf::SlotWord(bf::kActive), ending))
    return Status::Busy(m.where() + ": branch '" + std::string(name) + "' is being committed or aborted right now");
  if (uint32_t n = m.ActiveChildren(s)) {
    m.CasState(s, ending, bf::SlotWord(bf::kActive));
    return Status::Busy(m.where() + ": branch '" + std::string(name) + "' has " + std::to_string(n) +
                        " active child branch(es); commit or abort them first");
  }
  if (!m.CasState(s, ending, bf::SlotWord(bf::kAborted)))
    return Status::Stale(m.where() + ": aborting '" + std::string(name) +
                         "': undone by another process (this one was stopped past the lease timeout)");
  A(m.hdr->generation).fetch_add(1, std::memory_order_acq_rel);
  return Status::OK();
}

Status BranchStore::Commit(std::string_view name, std::vector<std::string>* conflicts_out) {
  Impl& m = *impl_;
  DAXFS_RETURN_IF_ERROR(m.NotEvicted());
  m.ResolveAbandoned();
  int si = m.FindSlot(name);
  const std::string bname(name);
  if (si > 0 && branch::StateOf(m.slots[si]) == bf::kEnding) {
    m.WaitOutEnder(static_cast<uint32_t>(si));
    si = m.FindSlot(name);
  }
  if (si < 0) return Status::NotFound(m.where() + ": no active branch '" + bname + "'");
  if (si == bf::kMainSlot) return Status::InvalidArgument("main has no parent to commit into");
  const uint32_t s = static_cast<uint32_t>(si);
  bf::Slot& sl = m.slots[s];
  const uint32_t p = sl.parent_slot;
  // (Its own parent only in a damaged table: locking the one mutex twice
  // below would never return.)
  if (p >= bf::kSlotCount || p == s)
    return Status::Corruption(m.where() + ": branch '" + bname + "' has no valid parent (slot " + std::to_string(p) + ")");
  bf::Slot& ps = m.slots[p];
  const std::string pname = p == bf::kMainSlot ? "main" : m.SlotName(p);
  std::scoped_lock appenders(m.append_mu[std::min(s, p)], m.append_mu[std::max(s, p)]);
  // Nobody else may append to the leaf or the parent meanwhile: their
  // writer leases (a live writer elsewhere: EBUSY; main's are short: wait).
  DAXFS_RETURN_IF_ERROR(m.TakeLease(s, false));
  struct Drop {
    BranchStore::Impl& m;
    uint32_t s;
    ~Drop() { m.DropLease(s); }
  } drop_leaf{m, s};
  const uint64_t ending = bf::SlotWord(bf::kEnding, m.me);
  if (!m.CasState(s, bf::SlotWord(bf::kActive), ending))
    return Status::Busy(m.where() + ": branch '" + bname + "' is being committed or aborted right now");
  bool done = false;
  struct Revert {
    BranchStore::Impl& m;
    uint32_t s;
    uint64_t ending;
    bool& done;
    ~Revert() {
      if (!done) m.CasState(s, ending, bf::SlotWord(bf::kActive));
    }
  } revert{m, s, ending, done};
  if (uint32_t n = m.ActiveChildren(s))
    return Status::Busy(m.where() + ": branch '" + bname + "' has " + std::to_string(n) +
                        " active child branch(es); commit or abort them first");
  if (ps.id != sl.parent_id || branch::StateOf(ps) != bf::kActive)
    return Status::Corruption(m.where() + ": branch '" + bname + "' has no active parent");
  DAXFS_RETURN_IF_ERROR(m.TakeLease(p, p == bf::kMainSlot));
  Drop drop_parent{m, p};
  const uint64_t leaf_len = branch::PublishedLenOf(sl);
  const uint64_t snap = sl.snapshot_len;
  const uint64_t parent_len = branch::PublishedLenOf(ps);
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
  DAXFS_ASSIGN_OR_RETURN(const bool self_contained, m.LogSelfContained(s, leaf_len));
  const auto bytes = branch::Encode(r);
  DAXFS_ASSIGN_OR_RETURN(uint64_t pos, m.Append(p, bytes));  // the commit point
  done = true;
  sl.commit_pos = pos;
  if (self_contained) A(sl.flags).fetch_or(bf::kSlotSelfContained, std::memory_order_acq_rel);
  // (Fails only if another process finished it for us, finding the merge
  // record: committed either way.)
  m.CasState(s, ending, bf::SlotWord(bf::kCommitted));
  A(m.hdr->generation).fetch_add(1, std::memory_order_acq_rel);
  if (m.needs_msync) msync(m.mem, m.region->bytes().size(), MS_SYNC);
  return Status::OK();
}


}  // namespace daxfs
