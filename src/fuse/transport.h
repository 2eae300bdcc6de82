// Our own /dev/fuse transport: every reply of a daxfs mount passes through
// it (see transport.cc).
#pragma once

#define FUSE_USE_VERSION 314
#include <fuse_lowlevel.h>

#include <cstddef>
#include <cstdint>
#include <functional>
#include <span>

namespace daxfs::fuse {

// The custom I/O for fuse_session_custom_io(): adds FUSE_DIRECT_IO_ALLOW_MMAP
// to the INIT reply and turns replies into EIO once the region is lost.
const fuse_custom_io* DaxfsTransport();

// FUSE passthrough (kernel 6.9+): whether the kernel's INIT offered it
// (known once INIT arrived, e.g. in the init handler).
// Rewrites a FUSE_TMPFILE request in place as FUSE_CREATE of the name "/"
// (libfuse 3.14 has no tmpfile handler; branch mounts serve it in create).
void TmpfileAsCreate(std::byte* in_header);
bool KernelOffersPassthrough();
// Asks for passthrough in the INIT reply; call from the init handler.
void RequestPassthrough(bool on);
// The /dev/fuse descriptor requests arrive on (-1 before the first one).
int DeviceFd();
// fuse_reply_open with FOPEN_PASSTHROUGH and `backing_id` (from
// FUSE_DEV_IOC_BACKING_OPEN) added to the reply.
void ReplyOpenPassthrough(fuse_req_t req, fuse_file_info* fi, int32_t backing_id);
// Replies whose payload points into `mapping` are copied into a buffer of
// the thread's before they are written to /dev/fuse: for a region the kernel
// cannot pin (Region::kernel_can_pin), whose bytes the kernel's copy of a
// reply cannot take (the reader would get EIO). Call before serving.
void BounceRepliesFrom(std::span<const std::byte> mapping);

// --- FUSE over io_uring (kernel 6.14+, uring.h) ---------------------------
// Called once, in the thread that wrote the INIT reply, right after the
// kernel took it: `uring` says whether the reply asked for the ring (the
// kernel offered it and a ring was wanted), `max_write` and `max_pages` are
// what the reply negotiated (they size the ring's payload buffers).
using InitRepliedHook = std::function<void(bool uring, uint32_t max_write, uint32_t max_pages)>;
// Asks for FUSE_OVER_IO_URING in the INIT reply (if the kernel offers it)
// and sets the hook; call before serving.
void RequestUring(bool on, InitRepliedHook hook);

// The ring entry whose request this thread is processing: the reply to that
// request (same unique) goes into the entry instead of /dev/fuse. Every other
// reply (an INTERRUPT's EAGAIN) still goes to /dev/fuse.
struct RingReply {
  uint64_t unique = 0;
  std::byte* out_header = nullptr;   // the entry's in_out area
  std::byte* payload = nullptr;      // the entry's payload buffer
  size_t capacity = 0;
  uint32_t payload_size = 0;         // set by the reply
  bool replied = false;
};
void SetThreadRingReply(RingReply* reply);
// Whether this thread serves a request from a ring entry: its reply must be
// given before the handler returns (it cannot be deferred to another thread).
bool ThreadRepliesOnRing();

}  // namespace daxfs::fuse
