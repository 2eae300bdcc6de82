// Replies that image and branch mounts give the same way.
#pragma once

#define FUSE_USE_VERSION 314
#include <fuse_lowlevel.h>

#include <cstddef>
#include <span>
#include <string_view>

#include "daxfs/status.h"

namespace daxfs::fuse {

// The errno of `s`; corruption is EIO to the caller and said in the log
// (unless the region itself was lost: the guard has said that already).
void ReplyStatus(fuse_req_t req, const Status& s);

// GETXATTR and LISTXATTR: `bytes` is a value or a list of NUL-terminated
// names. A caller's size of 0 asks for the length; a smaller buffer than
// the answer is ERANGE.
void ReplyXattr(fuse_req_t req, std::span<const std::byte> bytes, size_t size);
inline void ReplyXattr(fuse_req_t req, std::string_view bytes, size_t size) {
  ReplyXattr(req, std::as_bytes(std::span(bytes.data(), bytes.size())), size);
}

}  // namespace daxfs::fuse
