// open(2) flags matching a region's access mode.
#pragma once

#include <fcntl.h>

#include "daxfs/region.h"

namespace daxfs {

inline int OpenFlagsFor(Access access) {
  return (access == Access::kReadWrite ? O_RDWR : O_RDONLY) | O_CLOEXEC;
}

}  // namespace daxfs
