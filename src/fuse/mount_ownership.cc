#include "fuse/mount_ownership.h"

#include <fcntl.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

namespace daxfs::fuse {
namespace {

constexpr unsigned kStatxMntIdUnique = 0x4000;  // STATX_MNT_ID_UNIQUE (Linux 6.8), not in our headers yet

// The mount `dirfd`/`path` lies on. AT_STATX_DONT_SYNC: without it a FUSE
// mount asks its daemon for the root's attributes, and ours may have
// stopped serving (or not started yet): the call would hang.
int Identify(int dirfd, const char* path, int flags, MountOwnership::Id* id) {
  struct statx sx;
  std::memset(&sx, 0, sizeof sx);
  if (statx(dirfd, path, flags | AT_STATX_DONT_SYNC | AT_NO_AUTOMOUNT | AT_SYMLINK_NOFOLLOW,
            STATX_MNT_ID | kStatxMntIdUnique, &sx) != 0)
    return -1;
  if (!(sx.stx_mask & (STATX_MNT_ID | kStatxMntIdUnique))) {
    errno = ENOSYS;
    return -1;
  }
  id->mnt_id = sx.stx_mnt_id;
  id->unique = sx.stx_mask & kStatxMntIdUnique;
  id->dev_major = sx.stx_dev_major;
  id->dev_minor = sx.stx_dev_minor;
  return 0;
}

}  // namespace

Result<MountOwnership> MountOwnership::Claim(const std::string& mountpoint) {
  MountOwnership::Id id;
  if (Identify(AT_FDCWD, mountpoint.c_str(), 0, &id) != 0)
    return Status::IOError(mountpoint + ": cannot identify the new mount (statx)", errno);
  return MountOwnership(mountpoint, id);
}

MountOwnership::State MountOwnership::Check() const {
  MountOwnership::Id now;
  const bool ours = Identify(AT_FDCWD, mountpoint_.c_str(), 0, &now) == 0 && now == id_;
  return ours ? State::kOurs : State::kGone;
}

MountOwnership::State MountOwnership::UnmountIfOurs(std::string* error) const {
  error->clear();
  // Check and unmount the same object: the descriptor pins what we checked,
  // so a mount made over the path in between is not what gets detached.
  const int fd = open(mountpoint_.c_str(), O_PATH | O_NOFOLLOW | O_CLOEXEC);
  if (fd < 0) return State::kGone;
  MountOwnership::Id now;
  const bool ours = Identify(fd, "", AT_EMPTY_PATH, &now) == 0 && now == id_;
  if (!ours) {
    close(fd);
    return State::kGone;
  }
  // Lazy: readers still inside the mount must not keep the daemon from
  // leaving. The descriptor only delays freeing the detached mount.
  const std::string by_fd = "/proc/self/fd/" + std::to_string(fd);
  int rc = umount2(by_fd.c_str(), MNT_DETACH);
  if (rc != 0 && errno == ENOENT) {
    // No /proc: by path, which is still ours unless someone raced us here.
    rc = umount2(mountpoint_.c_str(), MNT_DETACH | UMOUNT_NOFOLLOW);
  }
  if (rc != 0) *error = "unmount " + mountpoint_ + ": " + std::strerror(errno);
  close(fd);
  return State::kOurs;
}

}  // namespace daxfs::fuse
