// Serving a region's descriptor from a tool until the user stops it.
#pragma once

#include <string>

#include "daxfs/region.h"

namespace daxfs::tools {

// ServeRegion on `socket` until SIGINT or SIGTERM (then the socket is
// removed and OK is returned).
// Whether a socket may be made at `socket` (before any work is done):
// nothing there, or a stale socket; never someone else's file.
Status CheckSocketPath(const std::string& socket);
Status ServeUntilInterrupted(const Region& region, const std::string& socket);

}  // namespace daxfs::tools
