#include "fuse/replies.h"

#include <cerrno>

#include "fuse/region_guard.h"
#include "fuse/session.h"

namespace daxfs::fuse {

void ReplyStatus(fuse_req_t req, const Status& s) {
  int err = s.errno_value();
  if (s.IsCorruption()) {
    // Once the region is gone its zero pages read as corruption.
    if (!RegionLost()) LogProblem(s.message());
    err = EIO;
  }
  fuse_reply_err(req, err ? err : EIO);
}

void ReplyXattr(fuse_req_t req, std::span<const std::byte> bytes, size_t size) {
  if (size == 0) return (void)fuse_reply_xattr(req, bytes.size());
  if (size < bytes.size()) return (void)fuse_reply_err(req, ERANGE);
  fuse_reply_buf(req, reinterpret_cast<const char*>(bytes.data()), bytes.size());
}

}  // namespace daxfs::fuse
