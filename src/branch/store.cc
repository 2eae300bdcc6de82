// BranchStore: making a branch region, opening one (attaching), and
// upgrading a region of an older version.
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
#include <thread>

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
using branch::kFirstChunk;

namespace {

uint64_t GeometryChecksum(const bf::ControlHeader* h) {
  return XXH3_64bits(h, offsetof(bf::ControlHeader, geometry_csum));
}

}  // namespace

BranchStore::BranchStore(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
BranchStore::~BranchStore() { impl_->Detach(); }

const Region& BranchStore::region() const { return *impl_->region; }
std::shared_ptr<const Image> BranchStore::base() const { return impl_->base; }

Result<std::shared_ptr<BranchStore>> BranchStore::Init(const std::string& image_spec,
                                                       const std::string& region_spec,
                                                       uint64_t delta_size, uint32_t lease_timeout_ms) {
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
  if (delta_size > bf::kDeltaMax)
    return Status::InvalidArgument("--delta " + std::to_string(delta_size) + " is too large (at most 1 PiB)");
  if (lease_timeout_ms == 0) lease_timeout_ms = bf::kLeaseTimeoutDefaultMs;
  if (lease_timeout_ms < bf::kLeaseTimeoutMinMs || lease_timeout_ms > bf::kLeaseTimeoutMaxMs)
    return Status::InvalidArgument("--lease-timeout must be " + std::to_string(bf::kLeaseTimeoutMinMs) + " ms to " +
                                   std::to_string(bf::kLeaseTimeoutMaxMs / 1000) + " s");
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
  // A fixed device (dax:, resource:) larger than asked: the delta takes
  // what is there (up to the format's limit).
  hdr->delta_size = std::min(dst.size() - delta_off, bf::kDeltaMax);
  hdr->slot_count = bf::kSlotCount;
  hdr->slot_size = sizeof(bf::Slot);
  hdr->attach_count = bf::kAttachCount;
  hdr->base_inode_count = info.inode_count;
  hdr->geometry_csum = GeometryChecksum(hdr);
  hdr->next_inode_id = uint64_t{info.inode_count} + 1;
  hdr->delta_cursor = bf::kDeltaReserved;
  hdr->next_branch_id = 2;
  hdr->lease_timeout_ms = lease_timeout_ms;
  // main: slot 0 with an empty log.
  auto* slots = reinterpret_cast<bf::Slot*>(dst.data() + control_off + bf::kSlotsOffset);
  const uint64_t chunk = hdr->delta_cursor;
  hdr->delta_cursor += kFirstChunk;
  auto* ch = reinterpret_cast<bf::ChunkHeader*>(dst.data() + delta_off + chunk);
  *ch = bf::ChunkHeader{bf::kChunkMagic, bf::ChunkStamp(0), kFirstChunk, 0, 0};
  bf::Slot& m = slots[bf::kMainSlot];
  m.id = 1;
  m.parent_slot = 0;
  m.first_chunk = chunk;
  m.created_sec = time(nullptr);
  std::memcpy(m.name, "main", 4);
  StoreRel(m.state, bf::SlotWord(bf::kActive));
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
  if (hdr->version == bf::kControlVersionV3 || hdr->version == bf::kControlVersionFreeTable ||
      hdr->version == bf::kControlVersionNoFreeTable)
    return Status::NotSupported(name + ": a branch region of control block version " + std::to_string(hdr->version) +
                                " (coordinated by a process-shared mutex); this daxfs coordinates by atomics "
                                "alone (version " + std::to_string(bf::kControlVersion) +
                                "): convert it with `daxfs branch upgrade " + name +
                                "` while nothing else uses it");
  if (hdr->version != bf::kControlVersion)
    return Status::NotSupported(name + ": control block version " + std::to_string(hdr->version) +
                                " (this daxfs knows versions up to " + std::to_string(bf::kControlVersion) + ")");
  if (GeometryChecksum(hdr) != hdr->geometry_csum) return corrupt("control block checksum mismatch");
  if (hdr->slot_count != bf::kSlotCount || hdr->slot_size != sizeof(bf::Slot) ||
      hdr->attach_count != bf::kAttachCount || hdr->control_size != bf::kControlSize ||
      hdr->delta_offset != coff + csize || hdr->delta_offset > size ||
      hdr->delta_size > size - hdr->delta_offset || hdr->delta_size < 2 * bf::kPage || hdr->delta_size > bf::kDeltaMax ||
      hdr->base_inode_count != base->info().inode_count)
    return corrupt("control block geometry does not match the region");
  impl->control_off = coff;
  impl->hdr = hdr;
  impl->slots = reinterpret_cast<bf::Slot*>(impl->mem + coff + bf::kSlotsOffset);
  impl->attach = reinterpret_cast<bf::AttachEntry*>(impl->mem + coff + bf::kAttachOffset);
  impl->geo = branch::Geometry{impl->mem, hdr->delta_offset, hdr->delta_size, hdr->base_inode_count};
  uint32_t t = A(hdr->lease_timeout_ms).load(std::memory_order_relaxed);
  if (t < bf::kLeaseTimeoutMinMs || t > bf::kLeaseTimeoutMaxMs) t = bf::kLeaseTimeoutDefaultMs;
  impl->timeout = std::chrono::milliseconds(t);
  DAXFS_RETURN_IF_ERROR(impl->Attach());
  // An exclusive gc frees what only its own process could see: wait while
  // one runs (it saw us, or we see it: both publish, then look).
  for (;;) {
    const uint64_t g = A(hdr->gc_lease).load(std::memory_order_seq_cst);
    if (g == 0 || !impl->HolderLive(g)) break;
    std::this_thread::sleep_for(std::chrono::milliseconds(1));
  }
  struct stat fst;
  impl->allocate_on_demand = region->fd() >= 0 && fstat(region->fd(), &fst) == 0 && S_ISREG(fst.st_mode);
  struct statfs sfs;
  if (region->fd() >= 0 && fstatfs(region->fd(), &sfs) == 0)
    impl->needs_msync = sfs.f_type != TMPFS_MAGIC && sfs.f_type != HUGETLBFS_MAGIC;
  return std::shared_ptr<BranchStore>(new BranchStore(std::move(impl)));
}


}  // namespace daxfs
