// Handing a region's file descriptor between processes over a Unix socket
// (SCM_RIGHTS). Used by `daxfs serve` and by memfd: region descriptors.
#pragma once

#include <sys/un.h>

#include <string>

#include "daxfs/status.h"

namespace daxfs {

// Fills `addr` for the Unix socket at `path` (fails if the path is too long).
Status UnixSocketAddress(const std::string& path, sockaddr_un* addr);
// Whether our socket may be made at `path`: nothing is there, or a stale
// socket nobody listens on (removed when `remove_stale`). Anything else
// belongs to someone else and is refused, untouched: a regular file, a
// directory, a FIFO, a device, a symlink, the socket of a live server.
Status ClaimSocketPath(const std::string& path, bool remove_stale);
// Connects to the Unix socket at `path` and receives one file descriptor.
Result<int> ReceiveRegionFd(const std::string& path);
// Sends `fd` over the connected socket `sock`.
Status SendRegionFd(int sock, int fd);

}  // namespace daxfs
