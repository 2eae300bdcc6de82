// Serving a region's descriptor from a tool until the user stops it.
#pragma once

#include <string>

#include "daxfs/region.h"

namespace daxfs::tools {

// ServeRegion on `socket` until SIGINT or SIGTERM (then the socket is
// removed and OK is returned).
Status ServeUntilInterrupted(const Region& region, const std::string& socket);

}  // namespace daxfs::tools
