// Opening the image before anything is mounted. The first reads of a region
// can fault as well as later ones (a sparse file on a full tmpfs cannot be
// given pages, a device can go away): such a fault ends daxfs-mount with a
// message and exit status 1 instead of a bus error, and nothing is mounted.
#pragma once

#include <memory>
#include <string>

#include "daxfs/image.h"

namespace daxfs::fuse {

// Image::Open(spec, options) with that guard held during the open and left
// in place until the mount's own guard (GuardRegion) replaces it.
Result<std::shared_ptr<const Image>> OpenImageForMount(const std::string& spec, const OpenOptions& options);

}  // namespace daxfs::fuse
