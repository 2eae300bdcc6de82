// Our own /dev/fuse transport: every reply of a daxfs mount passes through
// it (see transport.cc).
#pragma once

#define FUSE_USE_VERSION 314
#include <fuse_lowlevel.h>

namespace daxfs::fuse {

// The custom I/O for fuse_session_custom_io(): adds FUSE_DIRECT_IO_ALLOW_MMAP
// to the INIT reply and turns replies into EIO once the region is lost.
const fuse_custom_io* DaxfsTransport();

// FUSE passthrough (kernel 6.9+): whether the kernel's INIT offered it
// (known once INIT arrived, e.g. in the init handler).
bool KernelOffersPassthrough();
// Asks for passthrough in the INIT reply; call from the init handler.
void RequestPassthrough(bool on);
// The /dev/fuse descriptor requests arrive on (-1 before the first one).
int DeviceFd();
// fuse_reply_open with FOPEN_PASSTHROUGH and `backing_id` (from
// FUSE_DEV_IOC_BACKING_OPEN) added to the reply.
void ReplyOpenPassthrough(fuse_req_t req, fuse_file_info* fi, int32_t backing_id);

}  // namespace daxfs::fuse
