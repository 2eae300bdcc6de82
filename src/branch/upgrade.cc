// Converting a branch region of control block version 2 or 3 (a robust
// process-shared mutex, pid leases) to version 4 (atomics alone), in place.
#include <sys/mman.h>
#define XXH_STATIC_LINKING_ONLY
#include <xxhash.h>

#include <cstdlib>
#include <cstring>
#include <fstream>
#include <sstream>
#include <string>

#include "branch/shared.h"
#include "daxfs/format.h"

namespace daxfs {

namespace fmt = daxfs::format;
using branch::A;
using branch::LoadAcq;
using branch::Record;

namespace {

// The version 2/3 slot and attach entry, as they were laid out.
struct SlotV3 {
  uint32_t state;
  uint32_t parent_slot;
  uint64_t id, parent_id, snapshot_len, first_chunk, published_len;
  uint64_t lease_pid, lease_start, lease_token;
  int64_t created_sec;
  uint64_t commit_pos;
  char name[64];
  uint32_t flags, reserved_a;
  uint64_t viewers[2];
  uint8_t reserved[80];
};
static_assert(sizeof(SlotV3) == 256);
struct AttachV3 {
  uint64_t pid, start, token, reserved;
};
static_assert(sizeof(AttachV3) == sizeof(bf::AttachEntry));

// Field 22 of /proc/PID/stat (start time in clock ticks), 0 if unreadable:
// version 3 recorded it with each user's pid.
uint64_t ProcessStartTime(uint64_t pid) {
  std::ifstream f("/proc/" + std::to_string(pid) + "/stat");
  std::string s;
  if (!std::getline(f, s)) return 0;
  const size_t close = s.rfind(')');  // comm may hold spaces and parentheses
  if (close == std::string::npos || close + 2 >= s.size()) return 0;
  std::istringstream rest(s.substr(close + 2));
  std::string field;
  for (int i = 3; i <= 22; ++i)
    if (!(rest >> field)) return 0;
  return std::strtoull(field.c_str(), nullptr, 10);
}

// A version 3 user still lives: its pid does, and is the same process (a
// pid reused since, by any process of this machine, is not that user).
bool V3UserLives(const AttachV3& a) {
  if (a.pid == 0 || branch::ProcessGone(a.pid)) return false;
  return a.start == 0 || ProcessStartTime(a.pid) == a.start;
}

}  // namespace

Status BranchStore::Upgrade(const std::string& region_spec) {
  DAXFS_ASSIGN_OR_RETURN(auto region, Region::Open(region_spec, Access::kReadWrite));
  const std::string name = region->name();
  DAXFS_ASSIGN_OR_RETURN(auto base, Image::Open(region));
  if (!(base->info().features_incompat & fmt::kFeatureBranchRegion))
    return Status::InvalidArgument(name + ": not a branch region");
  std::byte* mem = region->writable_bytes().data();
  const uint64_t size = region->bytes().size();
  const auto sb = fmt::Load<fmt::Superblock>(mem);
  uint64_t coff, csize;
  std::memcpy(&coff, sb.ext.reserved + fmt::kExtBranchControlOffset, 8);
  std::memcpy(&csize, sb.ext.reserved + fmt::kExtBranchControlSize, 8);
  if (coff % bf::kPage || csize != bf::kControlSize || coff > size || csize > size - coff)
    return Status::Corruption(name + ": control block does not fit in the region");
  auto* hdr = reinterpret_cast<bf::ControlHeader*>(mem + coff);
  if (hdr->magic != bf::kControlMagic) return Status::Corruption(name + ": bad control block magic");
  if (hdr->version == bf::kControlVersion) return Status::OK();  // nothing to do
  if (hdr->version != bf::kControlVersionV3 && hdr->version != bf::kControlVersionFreeTable &&
      hdr->version != bf::kControlVersionNoFreeTable)
    return Status::NotSupported(name + ": control block version " + std::to_string(hdr->version));
  auto* old_attach = reinterpret_cast<AttachV3*>(mem + coff + bf::kAttachOffset);
  std::string users;
  for (uint32_t i = 0; i < bf::kAttachCount; ++i)
    if (V3UserLives(old_attach[i]))
      users += " " + std::to_string(old_attach[i].pid);
  if (!users.empty())
    return Status::Busy(name + ": in use by pid" + users + "; stop them (unmount) before upgrading");
  auto* old_slots = reinterpret_cast<SlotV3*>(mem + coff + bf::kSlotsOffset);
  for (uint32_t s = 0; s < bf::kSlotCount; ++s) {
    const SlotV3 o = old_slots[s];
    bf::Slot n{};
    n.state = bf::SlotWord(o.state <= bf::kAborted ? o.state : uint32_t{bf::kFree});
    n.parent_slot = o.parent_slot;
    n.flags = o.flags;
    n.id = o.id;
    n.parent_id = o.parent_id;
    n.snapshot_len = o.snapshot_len;
    n.first_chunk = o.first_chunk;
    n.published = bf::PublishedWord(0, o.published_len & bf::kLenMask);
    n.created_sec = o.created_sec;
    n.commit_pos = o.commit_pos;
    std::memcpy(n.name, o.name, sizeof n.name);
    std::memcpy(&old_slots[s], &n, sizeof n);
  }
  std::memset(old_attach, 0, sizeof(AttachV3) * bf::kAttachCount);
  hdr->reserved_v3 = 0;
  hdr->lease_timeout_ms = bf::kLeaseTimeoutDefaultMs;
  hdr->reserved1 = 0;
  hdr->gc_lease = 0;
  std::memset(hdr->reserved_mutex, 0, sizeof hdr->reserved_mutex);
  hdr->version = bf::kControlVersion;
  hdr->geometry_csum = XXH3_64bits(hdr, offsetof(bf::ControlHeader, geometry_csum));
  (void)msync(mem, size, MS_SYNC);
  // A commit whose holder died between its merge record and its state
  // (version 3 finished those at the next lock): finished now.
  DAXFS_ASSIGN_OR_RETURN(auto store, Open(region));
  Impl& m = *store->impl_;
  for (uint32_t s = 1; s < bf::kSlotCount; ++s) {
    if (branch::StateOf(m.slots[s]) != bf::kActive) continue;
    const uint64_t at = m.FindMerge(s);
    if (at == UINT64_MAX) continue;
    m.FinishCommitted(s, at, bf::SlotWord(bf::kActive));
  }
  return Status::OK();
}

}  // namespace daxfs
