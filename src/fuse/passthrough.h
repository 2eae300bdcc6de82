// Backing files for FUSE passthrough (kernel 6.9+): an object-store image's
// regular files are served by the kernel straight from their object files
// (reads, splice and mmap go to the object's page cache, no round trip, and
// every mount and process maps the object's own pages).
//
// Each object file is registered with FUSE_DEV_IOC_BACKING_OPEN when an
// inode is first opened; the id is shared by all opens of that inode (the
// kernel refuses two different backing files for one inode) and closed with
// FUSE_DEV_IOC_BACKING_CLOSE when the last open is released.
#pragma once

#include <cstdint>
#include <mutex>
#include <optional>
#include <string>
#include <unordered_map>

#include "daxfs/image.h"
#include "daxfs/status.h"

namespace daxfs::fuse {

class Backings {
 public:
  // Why passthrough cannot be used by this process ("" if it can): it needs
  // CAP_SYS_ADMIN in the initial user namespace.
  static std::string MissingPrivilege();

  // The backing id for regular file `ino` (size > 0), registering its
  // verified object on first use. An object that is missing or damaged
  // gives the image's error; when the kernel refuses the backing file
  // (no privilege, no passthrough, the object's filesystem stacked too
  // deep: ELOOP), *kernel_refused is set and the status has its errno.
  Result<int32_t> Acquire(const Image& image, Ino ino, int device_fd, bool* kernel_refused);
  // The backing id `ino` already has (counted as one more open), if any.
  std::optional<int32_t> Reuse(Ino ino);
  // Whether no inode has a backing file now.
  bool Empty();
  // One open of `ino` ended.
  void Release(Ino ino, int device_fd);

 private:
  struct Entry {
    int32_t id = 0;
    uint32_t opens = 0;
  };
  std::mutex mu_;
  std::unordered_map<Ino, Entry> by_ino_;
};

}  // namespace daxfs::fuse
