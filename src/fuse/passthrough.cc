#include "fuse/passthrough.h"

#include <linux/capability.h>
#include <sys/ioctl.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <cerrno>

namespace daxfs::fuse {
namespace {

// include/uapi/linux/fuse.h (7.40+), absent from Debian 12's header.
struct BackingMap {
  int32_t fd;
  uint32_t flags;
  uint64_t padding;
};
constexpr unsigned kDevIocMagic = 229;
const unsigned long kBackingOpen = _IOW(kDevIocMagic, 1, BackingMap);
const unsigned long kBackingClose = _IOW(kDevIocMagic, 2, uint32_t);

}  // namespace

std::string Backings::MissingPrivilege() {
  __user_cap_header_struct hdr{_LINUX_CAPABILITY_VERSION_3, 0};
  __user_cap_data_struct data[2] = {};
  if (syscall(SYS_capget, &hdr, data) != 0) return "cannot read this process's capabilities";
  if (!(data[0].effective & (1u << CAP_SYS_ADMIN))) return "it needs CAP_SYS_ADMIN (run as root)";
  return "";
}

Result<int32_t> Backings::Acquire(const Image& image, Ino ino, int device_fd, bool* kernel_refused) {
  *kernel_refused = false;
  // Every open checks the object against its digest (outside the lock: a
  // large file's hash must not hold up other opens). The hash runs again
  // only when the object file changed (inode, size or ctime) since it was
  // last verified, so an object changed while another descriptor holds the
  // file open fails the next open with EIO instead of serving its bytes.
  DAXFS_ASSIGN_OR_RETURN(int fd, image.open_object(ino));
  {
    std::lock_guard lock(mu_);
    auto it = by_ino_.find(ino);
    if (it != by_ino_.end()) {
      close(fd);
      ++it->second.opens;
      return it->second.id;
    }
  }
  std::lock_guard lock(mu_);
  auto it = by_ino_.find(ino);
  if (it != by_ino_.end()) {  // another open registered it meanwhile
    close(fd);
    ++it->second.opens;
    return it->second.id;
  }
  BackingMap map{fd, 0, 0};
  const int id = ioctl(device_fd, kBackingOpen, &map);
  const int err = errno;
  close(fd);  // the kernel holds its own reference
  if (id < 0) {
    *kernel_refused = true;
    return Status::IOError("FUSE_DEV_IOC_BACKING_OPEN", err);
  }
  by_ino_[ino] = Entry{id, 1};
  return id;
}

std::optional<int32_t> Backings::Reuse(Ino ino) {
  std::lock_guard lock(mu_);
  auto it = by_ino_.find(ino);
  if (it == by_ino_.end()) return std::nullopt;
  ++it->second.opens;
  return it->second.id;
}

bool Backings::Empty() {
  std::lock_guard lock(mu_);
  return by_ino_.empty();
}

void Backings::Release(Ino ino, int device_fd) {
  std::lock_guard lock(mu_);
  auto it = by_ino_.find(ino);
  if (it == by_ino_.end() || --it->second.opens > 0) return;
  uint32_t id = static_cast<uint32_t>(it->second.id);
  (void)ioctl(device_fd, kBackingClose, &id);
  by_ino_.erase(it);
}

}  // namespace daxfs::fuse
