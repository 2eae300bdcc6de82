// Our own /dev/fuse transport: every reply of a daxfs mount passes through
// it (see transport.cc).
#pragma once

#define FUSE_USE_VERSION 314
#include <fuse_lowlevel.h>

namespace daxfs::fuse {

// The custom I/O for fuse_session_custom_io(): adds FUSE_DIRECT_IO_ALLOW_MMAP
// to the INIT reply and turns replies into EIO once the region is lost.
const fuse_custom_io* DaxfsTransport();

}  // namespace daxfs::fuse
