// Which mount is ours. The daemon unmounts, when it ends, only the mount it
// made and only while that mount is still the top one at the mountpoint:
// never a filesystem that was there before it (after an external `umount`,
// a lazy `umount -l`, or a session that ended for any other reason) and
// never one that was mounted over it later.
#pragma once

#include <cstdint>
#include <string>

#include "daxfs/status.h"

namespace daxfs::fuse {

class MountOwnership {
 public:
  // Records the mount now on top of `mountpoint` (an absolute path) as ours.
  // Call right after mounting, before serving: it sends no FUSE request.
  static Result<MountOwnership> Claim(const std::string& mountpoint);

  // What is at the mountpoint now.
  enum class State {
    kOurs,     // our mount is the top one
    kGone,     // something else is the top mount (ours was unmounted, or is covered)
  };
  State Check() const;

  // Detaches our mount if and only if it is still the top one at the
  // mountpoint. Returns what was found; on kOurs with a failed detach,
  // `error` holds the reason. Sends no FUSE request.
  State UnmountIfOurs(std::string* error) const;

  const std::string& mountpoint() const { return mountpoint_; }

  // A mount: STATX_MNT_ID_UNIQUE (never reused; Linux 6.8+) or else the
  // reusable mount ID, with the device of the mount's superblock, which is
  // unique while the superblock lives.
  struct Id {
    uint64_t mnt_id = 0;
    bool unique = false;
    uint32_t dev_major = 0, dev_minor = 0;
    bool operator==(const Id&) const = default;
  };

 private:
  MountOwnership(std::string mountpoint, Id id) : mountpoint_(std::move(mountpoint)), id_(id) {}

  std::string mountpoint_;
  Id id_;
};

}  // namespace daxfs::fuse
