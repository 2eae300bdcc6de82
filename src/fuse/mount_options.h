// The -o options of daxfs-mount (and of mount.fuse.daxfs, which mount(8)
// runs): every value is checked, conflicting repeats are refused, and every
// request that has no effect on a read-only image is reported.
#pragma once

#include <string>
#include <vector>

#include "daxfs/status.h"
#include "fuse/daxfs_fuse.h"

namespace daxfs::fuse {

struct OptionContext {
  // Run by mount(8) as mount.fuse.daxfs: suid and dev are then the defaults
  // (mount(8) passes only their negations), as with mount.fuse3.
  bool mount_helper = false;
  // Root mounts itself; others go through fusermount3, which always adds
  // nosuid,nodev.
  bool privileged = false;
  // mount -s: unknown options are reported and ignored, not refused.
  bool sloppy = false;
};

// Applies `opts` (one option per element, as split at commas) to `o`.
// Returns InvalidArgument naming the option and what is wrong (a usage
// error); appends to `warnings` one line per request that is ignored, and why.
Status ApplyMountOptions(const std::vector<std::string>& opts, const OptionContext& ctx, MountOptions* o,
                         std::vector<std::string>* warnings);

// The -o part of --help.
extern const char kMountOptionsHelp[];

}  // namespace daxfs::fuse
