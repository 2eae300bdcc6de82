// Region: the one seam between daxfs and the memory that holds an image.
//
// A region is a contiguous range of bytes mapped into this process: a file on
// tmpfs or hugetlbfs, a memfd, a device-DAX character device, a physical range,
// a dma-buf, or memory somebody else mapped. Everything above this layer (the
// image reader, mkdaxfs's loader, the mount, branches) sees only bytes().
#pragma once

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <span>
#include <string>

#include "daxfs/export.h"
#include "daxfs/status.h"

namespace daxfs {

enum class Access { kReadOnly, kReadWrite };

class DAXFS_EXPORT Region {
 public:
  virtual ~Region() = default;
  Region(const Region&) = delete;
  Region& operator=(const Region&) = delete;

  // The mapped bytes. Valid for the lifetime of the Region.
  std::span<const std::byte> bytes() const { return {data_, size_}; }
  // Writable view; REQUIRES: access() == Access::kReadWrite.
  std::span<std::byte> writable_bytes() const { return {data_, size_}; }
  Access access() const { return access_; }
  // Human-readable name used in error messages ("/dev/shm/img", "memfd:x").
  const std::string& name() const { return name_; }
  // A file descriptor that refers to the region, or -1. Lets the mount splice
  // data and lets `daxfs serve` hand the region to other processes.
  virtual int fd() const { return -1; }
  // Offset of the region inside fd() (non-zero for phys:/BAR ranges).
  virtual uint64_t fd_offset() const { return 0; }
  // OK while the memory behind the region is intact. Regions this library
  // maps are guarded: when a page cannot be provided (a sparse file on a
  // full tmpfs, a truncated file, a removed device), the access that faults
  // does not kill the process with SIGBUS; the mapping then reads as zeros
  // and this says where the first fault was. Check it after reading.
  virtual Status status() const { return Status::OK(); }
  // For a file region from Create(): gives the new file its name, atomically
  // replacing a previous file. Until then the path is untouched, and a
  // region dropped unpublished leaves nothing behind. A no-op otherwise.
  virtual Status Publish() { return Status::OK(); }
  // Whether the kernel can take references to the region's pages. False for
  // PFN mappings (a PCI BAR such as ivshmem's, phys: ranges of /dev/mem, some
  // dma-bufs): handing their addresses to a call that pins user pages
  // (vmsplice, a FUSE reply written to /dev/fuse, O_DIRECT) fails with
  // EFAULT, so such callers copy through a buffer of their own instead.
  // Probed once, on first use, with a one-byte vmsplice.
  bool kernel_can_pin() const;

  // Maps a whole file (regular file, block or DAX character device).
  static Result<std::shared_ptr<Region>> OpenFile(const std::string& path, Access access);
  // Maps `size` bytes of `fd` at `offset` (size 0 = to the end of the file).
  // Takes ownership of fd.
  static Result<std::shared_ptr<Region>> MapFd(int fd, Access access, std::string name,
                                               uint64_t offset = 0, uint64_t size = 0);
  // Wraps memory mapped by someone else. The caller keeps it alive and
  // unchanged in size for the Region's lifetime.
  static std::shared_ptr<Region> FromMemory(const void* data, size_t size, std::string name);
  // Opens a region descriptor:
  //   PATH | file:PATH             a file on any filesystem
  //   shm:/NAME                    /dev/shm/NAME (POSIX shared memory)
  //   hugetlbfs:PATH               a file on a hugetlbfs mount
  //   dax:/dev/daxX.Y              device DAX, mapped at its alignment
  //   phys:0xADDR+SIZE             a physical range of /dev/mem
  //   resource:PATH[+SIZE]         a PCI BAR resource file (e.g. ivshmem)
  //   fd:N                         an inherited file descriptor (memfd, dma-buf)
  //   memfd:SOCKET                 a memfd received from `daxfs serve`
  static Result<std::shared_ptr<Region>> Open(const std::string& spec, Access access);
  // Opens `spec` read-write with room for at least `size` bytes. For files,
  // shm: and hugetlbfs: a new unnamed file in the target's directory, with
  // its space reserved (NoSpace if it cannot be: writing through the mapping
  // can then not fail), that appears at the path on Publish(); hugetlbfs
  // rounds up to its page size. Anything but a regular file at the path is
  // refused. Devices and physical ranges are written in place and must
  // already be large enough.
  static Result<std::shared_ptr<Region>> Create(const std::string& spec, uint64_t size);
  // The same, with only the first `reserve` bytes allocated now; the rest of
  // a file is left sparse, for a user that allocates as it goes (branch
  // delta areas: fallocate before each use, so a full tmpfs is ENOSPC).
  static Result<std::shared_ptr<Region>> Create(const std::string& spec, uint64_t size,
                                                uint64_t reserve);
  // A new memfd holding a copy of `bytes`, sealed against writing and
  // resizing, mapped read-only. With `hugetlb`, backed by huge pages.
  static Result<std::shared_ptr<Region>> SealedMemfd(std::span<const std::byte> bytes,
                                                     const std::string& name, bool hugetlb);
  // A new dma-buf from /dev/dma_heap/HEAP (e.g. "system") holding a copy of
  // `bytes`, mapped read-only; its fd can be passed to other processes or
  // drivers (upstream daxfs mounts dma-bufs).
  static Result<std::shared_ptr<Region>> DmaHeapCopy(std::span<const std::byte> bytes,
                                                     const std::string& heap);

 protected:
  Region(std::byte* data, size_t size, Access access, std::string name)
      : data_(data), size_(size), access_(access), name_(std::move(name)) {}

 private:
  std::byte* data_;
  size_t size_;
  Access access_;
  std::string name_;
  mutable std::atomic<int> pinnable_{-1};  // kernel_can_pin(): -1 = not probed yet
};

}  // namespace daxfs
