// Region backends built on mmap(2) of a file descriptor, plus borrowed memory.
#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cinttypes>
#include <cstdio>
#include <cstring>

#include "daxfs/region.h"
#include "region/open_flags.h"

namespace daxfs {
namespace {

class MappedRegion final : public Region {
 public:
  MappedRegion(std::byte* data, size_t size, Access access, std::string name, int fd,
               uint64_t offset, void* map_base, size_t map_len)
      : Region(data, size, access, std::move(name)),
        fd_(fd), offset_(offset), map_base_(map_base), map_len_(map_len) {}
  ~MappedRegion() override {
    if (map_base_ != nullptr) munmap(map_base_, map_len_);
    if (fd_ >= 0) close(fd_);
  }
  int fd() const override { return fd_; }
  uint64_t fd_offset() const override { return offset_; }

 private:
  int fd_;
  uint64_t offset_;
  void* map_base_;
  size_t map_len_;
};

class BorrowedRegion final : public Region {
 public:
  BorrowedRegion(const void* data, size_t size, std::string name)
      : Region(static_cast<std::byte*>(const_cast<void*>(data)), size, Access::kReadOnly,
               std::move(name)) {}
};

}  // namespace

Result<std::shared_ptr<Region>> Region::MapFd(int fd, Access access, std::string name,
                                              uint64_t offset, uint64_t size) {
  struct stat st;
  if (fstat(fd, &st) != 0) {
    int err = errno;
    close(fd);
    return Status::IOError(name + ": fstat", err);
  }
  if (size == 0) {
    if (S_ISBLK(st.st_mode)) {
      off_t end = lseek(fd, 0, SEEK_END);
      if (end < 0) {
        int err = errno;
        close(fd);
        return Status::IOError(name + ": cannot size block device", err);
      }
      st.st_size = end;
    }
    if (static_cast<uint64_t>(st.st_size) <= offset) {
      close(fd);
      return Status::InvalidArgument(name + ": region is empty (size " +
                                     std::to_string(st.st_size) + " bytes)");
    }
    size = static_cast<uint64_t>(st.st_size) - offset;
  }
  // mmap needs a page-aligned file offset; map from the page below and
  // point data at the requested byte.
  const uint64_t page = static_cast<uint64_t>(sysconf(_SC_PAGESIZE));
  const uint64_t map_off = offset / page * page;
  const uint64_t skip = offset - map_off;
  const size_t map_len = static_cast<size_t>(size + skip);
  const int prot = access == Access::kReadWrite ? PROT_READ | PROT_WRITE : PROT_READ;
  void* base = mmap(nullptr, map_len, prot, MAP_SHARED, fd, static_cast<off_t>(map_off));
  if (base == MAP_FAILED) {
    int err = errno;
    close(fd);
    char buf[96];
    std::snprintf(buf, sizeof buf, ": mmap of %" PRIu64 " bytes at offset %" PRIu64,
                  size, offset);
    return Status::IOError(name + buf, err);
  }
  auto* data = static_cast<std::byte*>(base) + skip;
  return std::shared_ptr<Region>(
      new MappedRegion(data, static_cast<size_t>(size), access, std::move(name), fd, offset,
                       base, map_len));
}

Result<std::shared_ptr<Region>> Region::OpenFile(const std::string& path, Access access) {
  int flags = OpenFlagsFor(access);
  int fd = open(path.c_str(), flags);
  if (fd < 0) return Status::FromErrno(errno, path + ": cannot open: " + std::strerror(errno));
  return MapFd(fd, access, path);
}

std::shared_ptr<Region> Region::FromMemory(const void* data, size_t size, std::string name) {
  return std::make_shared<BorrowedRegion>(data, size, std::move(name));
}

}  // namespace daxfs
