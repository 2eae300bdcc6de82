// Prefetch (include/daxfs/prefetch.h): madvise on the pages of a range.
#include "daxfs/prefetch.h"

#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstdint>
#include <string>

#ifndef MADV_POPULATE_READ
#define MADV_POPULATE_READ 22
#endif

namespace daxfs {

namespace {

// `range` lies in a mapping that covers whole pages around it.
Status Advise(const std::string& name, std::span<const std::byte> range, PrefetchMode mode) {
  // The region's mapping covers whole pages around its bytes, so rounding
  // the range out to pages stays inside it.
  const uintptr_t page = static_cast<uintptr_t>(sysconf(_SC_PAGESIZE));
  const uintptr_t start = reinterpret_cast<uintptr_t>(range.data()) & ~(page - 1);
  const uintptr_t end = (reinterpret_cast<uintptr_t>(range.data()) + range.size() + page - 1) & ~(page - 1);
  void* addr = reinterpret_cast<void*>(start);
  const size_t len = end - start;
  if (mode == PrefetchMode::kPopulate) {
    if (madvise(addr, len, MADV_POPULATE_READ) == 0) return Status::OK();
    // EINVAL: a kernel before 5.14 (or memory it will not populate, such as
    // a PFN mapping of a device): fall back to a hint.
    if (errno != EINVAL)
      return Status::IOError(name + ": prefetch: the memory behind the region cannot be provided", errno);
  }
  if (madvise(addr, len, MADV_WILLNEED) == 0) return Status::OK();
  return Status::IOError(name + ": prefetch", errno);
}

}  // namespace

Status Prefetch(const Region& region, std::span<const std::byte> range, PrefetchMode mode) {
  if (range.empty()) return Status::OK();
  const auto all = region.bytes();
  if (range.data() < all.data() || range.size() > all.size() ||
      static_cast<size_t>(range.data() - all.data()) > all.size() - range.size())
    return Status::InvalidArgument(region.name() + ": prefetch range outside the region");
  return Advise(region.name(), range, mode);
}

Status Prefetch(const PinnedData& data, std::span<const std::byte> range, PrefetchMode mode) {
  if (range.empty()) return Status::OK();
  const auto all = data.bytes;
  if (range.data() < all.data() || range.size() > all.size() ||
      static_cast<size_t>(range.data() - all.data()) > all.size() - range.size())
    return Status::InvalidArgument("prefetch range outside the pinned file data");
  return Advise("object", range, mode);
}

Status Prefetch(const Image& image, Ino ino, PrefetchMode mode) {
  DAXFS_ASSIGN_OR_RETURN(Attr attr, image.stat(ino));
  if (!S_ISREG(attr.mode))
    return Status::InvalidArgument("inode " + std::to_string(ino) + " is not a regular file");
  if (image.info().objects) {
    // An object's own mapping (whole pages, like a region's).
    DAXFS_ASSIGN_OR_RETURN(PinnedData data, image.pin(ino));
    if (data.bytes.empty()) return Status::OK();
    return Advise(image.region().name() + ": inode " + std::to_string(ino), data.bytes, mode);
  }
  DAXFS_ASSIGN_OR_RETURN(auto bytes, image.contents(ino));
  return Prefetch(image.region(), bytes, mode);
}

}  // namespace daxfs
