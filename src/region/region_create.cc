// Creating regions to load images into: files, shm, hugetlbfs, memfds.
#include <fcntl.h>
#include <linux/dma-buf.h>
#include <linux/dma-heap.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/statvfs.h>
#include <sys/vfs.h>
#include <unistd.h>

#include <algorithm>
#include <cstring>

#include "daxfs/region.h"
#include "format/file_type.h"
#include "output/new_file.h"
#include "region/fd_passing.h"
#include "region/mapped_region.h"
#include "region/region_spec.h"
#include "util/file_io.h"

namespace daxfs {
namespace {

// Allocates every block up front: writing through a mapping into space the
// filesystem cannot provide would be a SIGBUS, not an error.
// The file is `size` bytes long; the first `reserve` of them are allocated.
Status ReserveSpace(int fd, uint64_t size, uint64_t reserve, const output::NewFile& file, bool huge) {
  int err = ftruncate(fd, static_cast<off_t>(size)) == 0 ? 0 : errno;
  if (err == 0 && reserve > 0) {
    err = fallocate(fd, 0, 0, static_cast<off_t>(reserve)) == 0 ? 0 : errno;
    if (err == EOPNOTSUPP) err = posix_fallocate(fd, 0, static_cast<off_t>(reserve));  // emulated
  }
  if (err == 0) return Status::OK();
  if (err == ENOSPC || err == EDQUOT || err == ENOMEM || (huge && err == EINVAL)) {
    struct statvfs v;
    const std::string avail = fstatvfs(fd, &v) == 0
        ? std::to_string(static_cast<uint64_t>(v.f_bavail) * v.f_frsize) + " available"
        : "less available";
    return Status::NoSpace(file.path() + ": no space for the image: " + std::to_string(reserve) +
                           " bytes needed, " + avail + " in " + file.dir() +
                           (huge ? " (reserve more huge pages: /proc/sys/vm/nr_hugepages)" : "") +
                           " (" + std::strerror(err) + ")");
  }
  return Status::FromErrno(err, file.path() + ": cannot reserve " + std::to_string(size) +
                                    " bytes: " + std::strerror(err));
}

}  // namespace

Result<std::shared_ptr<Region>> Region::Create(const std::string& spec, uint64_t size) {
  return Create(spec, size, size);
}

Result<std::shared_ptr<Region>> Region::Create(const std::string& spec, uint64_t size,
                                               uint64_t reserve) {
  const auto [kind, rest] = SplitRegionSpec(spec);
  std::string path;
  if (kind == "memfd") {
    // A new writable memfd, to be handed out on the socket `rest` by its
    // creator (daxfs branch init ... memfd:SOCKET); it can neither shrink
    // nor grow, so a client's mapping never runs past its end.
    // The socket must be possible before the work of filling the region.
    sockaddr_un addr;
    DAXFS_RETURN_IF_ERROR(UnixSocketAddress(rest, &addr));
    DAXFS_RETURN_IF_ERROR(ClaimSocketPath(rest, /*remove_stale=*/false).WithContext(spec));
    const auto slash = rest.rfind('/');
    const std::string dir = slash == std::string::npos ? "." : slash == 0 ? "/" : rest.substr(0, slash);
    if (::access(dir.c_str(), W_OK | X_OK) != 0)
      return Status::FromErrno(errno, spec + ": cannot make the socket in " + dir + ": " + std::strerror(errno));
    int fd = memfd_create(("daxfs:" + rest).c_str(), MFD_CLOEXEC | MFD_ALLOW_SEALING);
    if (fd < 0) return Status::IOError(spec + ": memfd_create", errno);
    int err = ftruncate(fd, static_cast<off_t>(size)) == 0 ? 0 : errno;
    if (err == 0 && reserve > 0 && fallocate(fd, 0, 0, static_cast<off_t>(std::min(reserve, size))) != 0)
      err = errno;
    if (err == 0 && fcntl(fd, F_ADD_SEALS, F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_SEAL) != 0) err = errno;
    if (err != 0) {
      close(fd);
      return Status::FromErrno(err, spec + ": cannot make a memfd of " + std::to_string(size) +
                                        " bytes: " + std::strerror(err));
    }
    return MapFd(fd, Access::kReadWrite, spec, 0, size);
  }
  if (kind == "shm") {
    DAXFS_ASSIGN_OR_RETURN(path, ShmPath(spec, rest));
  } else if (kind.empty() || kind == "file" || kind == "hugetlbfs") {
    path = rest;
  } else {
    // Fixed-size regions (dax:, phys:, resource:, fd:): open and check.
    DAXFS_ASSIGN_OR_RETURN(auto region, Open(spec, Access::kReadWrite));
    if (region->bytes().size() < size)
      return Status::NoSpace(spec + ": region holds " + std::to_string(region->bytes().size()) +
                             " bytes, the image needs " + std::to_string(size));
    return region;
  }
  // Devices are written only through their own descriptors (dax:, phys:,
  // resource:): a plain path to one is a mistake, not a target.
  struct stat st;
  if (stat(path.c_str(), &st) == 0 && (S_ISCHR(st.st_mode) || S_ISBLK(st.st_mode)))
    return Status::InvalidArgument(path + ": is " + DescribeFileType(st.st_mode) +
                                   "; images are loaded into files here (device DAX: dax:" + path +
                                   ", PCI BAR: resource:" + path + ")");
  DAXFS_ASSIGN_OR_RETURN(auto file, output::NewFile::Create(path, 0644));
  const int fd = file->fd();
  uint64_t want = size;
  struct statfs sfs;
  const bool huge = fstatfs(fd, &sfs) == 0 && sfs.f_type == kHugetlbfsMagic;
  if (huge) {
    want = (size + sfs.f_bsize - 1) / sfs.f_bsize * sfs.f_bsize;  // f_bsize is the huge page size
  } else if (kind == "hugetlbfs") {
    return Status::InvalidArgument(path + ": not on a hugetlbfs mount");
  }
  uint64_t reserve_bytes = std::min(reserve, size);
  if (huge) reserve_bytes = (reserve_bytes + sfs.f_bsize - 1) / sfs.f_bsize * sfs.f_bsize;
  DAXFS_RETURN_IF_ERROR(ReserveSpace(fd, want, reserve_bytes, *file, huge));
  return MapNewFile(std::move(file), want);
}

Result<std::shared_ptr<Region>> Region::SealedMemfd(std::span<const std::byte> bytes,
                                                    const std::string& name, bool hugetlb) {
  unsigned flags = MFD_CLOEXEC | MFD_ALLOW_SEALING | (hugetlb ? MFD_HUGETLB : 0u);
  int fd = memfd_create(name.c_str(), flags);
  if (fd < 0) return Status::IOError("memfd_create " + name, errno);
  uint64_t size = bytes.size();
  if (hugetlb) {
    // Huge-page memfds cannot be written with write(2): size, map, copy.
    const uint64_t huge = 2u << 20;
    size = (size + huge - 1) / huge * huge;
    if (ftruncate(fd, static_cast<off_t>(size)) != 0) {
      int err = errno;
      close(fd);
      return Status::IOError("memfd " + name + ": cannot reserve " + std::to_string(size) +
                                 " bytes of huge pages", err);
    }
    void* p = mmap(nullptr, size, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
    if (p == MAP_FAILED) {
      int err = errno;
      close(fd);
      return Status::IOError("memfd " + name + ": mmap", err);
    }
    std::memcpy(p, bytes.data(), bytes.size());
    munmap(p, size);
  } else {
    Status st = PwriteAll(fd, bytes, 0, "memfd " + name);
    if (!st.ok()) {
      close(fd);
      return st;
    }
  }
  // Nobody can change the image now; hugetlbfs cannot seal writes.
  int seals = F_SEAL_SHRINK | F_SEAL_GROW | (hugetlb ? 0 : F_SEAL_WRITE) | F_SEAL_SEAL;
  if (fcntl(fd, F_ADD_SEALS, seals) != 0) {
    int err = errno;
    close(fd);
    return Status::IOError("memfd " + name + ": seal", err);
  }
  return MapFd(fd, Access::kReadOnly, "memfd:" + name, 0, size);
}

Result<std::shared_ptr<Region>> Region::DmaHeapCopy(std::span<const std::byte> bytes,
                                                    const std::string& heap) {
  const std::string dev = "/dev/dma_heap/" + heap;
  int heap_fd = open(dev.c_str(), O_RDONLY | O_CLOEXEC);
  if (heap_fd < 0) return Status::FromErrno(errno, dev + ": cannot open: " + std::strerror(errno));
  const uint64_t page = static_cast<uint64_t>(sysconf(_SC_PAGESIZE));
  dma_heap_allocation_data alloc{};
  alloc.len = (bytes.size() + page - 1) / page * page;
  alloc.fd_flags = O_RDWR | O_CLOEXEC;
  const int rc = ioctl(heap_fd, DMA_HEAP_IOCTL_ALLOC, &alloc);
  const int err = errno;
  close(heap_fd);
  if (rc != 0) return Status::IOError(dev + ": cannot allocate " + std::to_string(alloc.len) + " bytes", err);
  const int fd = static_cast<int>(alloc.fd);
  void* p = mmap(nullptr, alloc.len, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
  if (p == MAP_FAILED) {
    int e = errno;
    close(fd);
    return Status::IOError(dev + ": mmap of the dma-buf", e);
  }
  // CPU access to a dma-buf is bracketed by sync ioctls (cache maintenance).
  dma_buf_sync sync{DMA_BUF_SYNC_START | DMA_BUF_SYNC_WRITE};
  ioctl(fd, DMA_BUF_IOCTL_SYNC, &sync);
  std::memcpy(p, bytes.data(), bytes.size());
  sync.flags = DMA_BUF_SYNC_END | DMA_BUF_SYNC_WRITE;
  ioctl(fd, DMA_BUF_IOCTL_SYNC, &sync);
  munmap(p, alloc.len);
  return MapFd(fd, Access::kReadOnly, "dmabuf:" + heap, 0, alloc.len);
}

}  // namespace daxfs
