// Handing a region to other processes: `daxfs serve` listens on a Unix
// socket and passes the region's file descriptor (SCM_RIGHTS) to every
// client; clients open it with the region descriptor "memfd:SOCKET".
#pragma once

#include <atomic>
#include <functional>
#include <string>

#include "daxfs/export.h"
#include "daxfs/region.h"

namespace daxfs {

// Serves `region` (which must have an fd) on `socket_path` until `stop` is
// set. The socket file is created (replacing a stale one) and removed on
// return. `on_client` is told about each connection.
DAXFS_EXPORT Status ServeRegion(const Region& region, const std::string& socket_path,
                                const std::atomic<bool>& stop,
                                const std::function<void(int client_pid)>& on_client = nullptr);

}  // namespace daxfs
