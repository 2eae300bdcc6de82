// Region backends built on mmap(2) of a file descriptor, plus borrowed memory.
#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cinttypes>
#include <cstdio>
#include <cstring>

#include "daxfs/region.h"
#include "format/file_type.h"
#include "region/fault_guard.h"
#include "region/mapped_region.h"
#include "region/open_flags.h"

namespace daxfs {
namespace {

class MappedRegion final : public Region {
 public:
  MappedRegion(std::byte* data, size_t size, Access access, std::string name, int fd,
               uint64_t offset, void* map_base, size_t map_len, int prot)
      : Region(data, size, access, std::move(name)),
        fd_(fd), offset_(offset), map_base_(map_base), map_len_(map_len),
        guard_(GuardMapping(map_base, map_len, prot)) {}
  ~MappedRegion() override {
    UnguardMapping(guard_);
    if (map_base_ != nullptr) munmap(map_base_, map_len_);
    if (fd_ >= 0) close(fd_);
  }
  int fd() const override { return fd_; }
  uint64_t fd_offset() const override { return offset_; }

  Status status() const override {
    const int64_t fault = MappingFaultOffset(guard_);
    if (fault < 0) return Status::OK();
    const uint64_t skip = static_cast<uint64_t>(bytes().data() - static_cast<std::byte*>(map_base_));
    const uint64_t at = static_cast<uint64_t>(fault) > skip ? static_cast<uint64_t>(fault) - skip : 0;
    return Status::FromErrno(EIO, name() + ": bus error at region offset " + std::to_string(at) +
                                      ": the memory behind the region cannot be provided (a sparse "
                                      "file on a full tmpfs, a truncated file or a removed device); "
                                      "its bytes now read as zeros");
  }

  Status Publish() override { return new_file_ ? new_file_->Publish() : Status::OK(); }
  void set_new_file(std::unique_ptr<output::NewFile> f) { new_file_ = std::move(f); }

 private:
  int fd_;
  uint64_t offset_;
  void* map_base_;
  size_t map_len_;
  int guard_;
  std::unique_ptr<output::NewFile> new_file_;
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
  // (dma-bufs are anonymous inodes with no file type: not refused here.)
  if (S_ISDIR(st.st_mode) || S_ISFIFO(st.st_mode) || S_ISSOCK(st.st_mode)) {
    close(fd);
    const std::string what = name + ": is " + DescribeFileType(st.st_mode) + ", not an image";
    return S_ISDIR(st.st_mode) ? Status::IsDirectory(what) : Status::InvalidArgument(what);
  }
  if (size == 0 && S_ISCHR(st.st_mode)) {
    close(fd);
    return Status::InvalidArgument(name + ": is a character device of unknown size (device DAX: "
                                   "dax:PATH; a PCI BAR: resource:PATH; memory: phys:ADDR+SIZE)");
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
      return Status::InvalidArgument(name + ": is empty (" + std::to_string(st.st_size) +
                                     " bytes), not an image");
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
    if (err == ENODEV)
      return Status::NotSupported(name + ": is " + DescribeFileType(st.st_mode) +
                                  " that cannot be mapped" + buf);
    return Status::IOError(name + buf, err);
  }
  auto* data = static_cast<std::byte*>(base) + skip;
  return std::shared_ptr<Region>(
      new MappedRegion(data, static_cast<size_t>(size), access, std::move(name), fd, offset,
                       base, map_len, prot));
}

Result<std::shared_ptr<Region>> MapNewFile(std::unique_ptr<output::NewFile> file, uint64_t size) {
  const int fd = fcntl(file->fd(), F_DUPFD_CLOEXEC, 0);
  if (fd < 0) return Status::IOError(file->path() + ": dup", errno);
  DAXFS_ASSIGN_OR_RETURN(auto region, Region::MapFd(fd, Access::kReadWrite, file->path(), 0, size));
  static_cast<MappedRegion*>(region.get())->set_new_file(std::move(file));
  return region;
}

Result<std::shared_ptr<Region>> Region::OpenFile(const std::string& path, Access access) {
  // Opening a FIFO would block; say what it is instead.
  struct stat st;
  if (stat(path.c_str(), &st) == 0 && (S_ISFIFO(st.st_mode) || S_ISSOCK(st.st_mode) || S_ISDIR(st.st_mode))) {
    const std::string what = path + ": is " + DescribeFileType(st.st_mode) + ", not an image";
    return S_ISDIR(st.st_mode) ? Status::IsDirectory(what) : Status::InvalidArgument(what);
  }
  int flags = OpenFlagsFor(access);
  int fd = open(path.c_str(), flags);
  if (fd < 0) return Status::FromErrno(errno, path + ": cannot open: " + std::strerror(errno));
  return MapFd(fd, access, path);
}

std::shared_ptr<Region> Region::FromMemory(const void* data, size_t size, std::string name) {
  return std::make_shared<BorrowedRegion>(data, size, std::move(name));
}

}  // namespace daxfs
