#include "fuse/transport.h"

#include <linux/fuse.h>
#include <sys/uio.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <span>
#include <utility>
#include <vector>

#include "fuse/region_guard.h"

namespace daxfs::fuse {
namespace {

// --- Our own /dev/fuse transport ------------------------------------------
// Every reply passes through here, which lets us (1) add what libfuse 3.14
// cannot ask for to the INIT reply: FUSE_DIRECT_IO_ALLOW_MMAP (kernel 6.6+),
// so that direct-I/O files can be mmapped, and FUSE_PASSTHROUGH (6.9+) with
// its max_stack_depth, (2) put a backing id into an OPEN reply, and (3) turn
// every reply into EIO once the image's memory is gone.
// The kernel's ABI (include/uapi/linux/fuse.h, 7.40+); Debian 12's header
// predates passthrough, so the offsets are spelled out here.

constexpr uint32_t kInitExt = 1u << 30;              // FUSE_INIT_EXT
constexpr uint32_t kDirectIoAllowMmapHi = 1u << 4;   // bit 36 in flags2
constexpr uint32_t kPassthroughHi = 1u << 5;         // FUSE_PASSTHROUGH, bit 37 in flags2
constexpr uint32_t kOverIoUringHi = 1u << 9;         // FUSE_OVER_IO_URING, bit 41 in flags2
constexpr uint32_t kOpInit = 26;                     // FUSE_INIT
constexpr size_t kInHeader = sizeof(fuse_in_header);
constexpr size_t kInHeaderOpcode = offsetof(fuse_in_header, opcode);
constexpr size_t kInitInFlags2 = 16;                 // in fuse_init_in
constexpr size_t kOutHeader = sizeof(fuse_out_header);
constexpr size_t kInitOutFlags = 12, kInitOutFlags2 = 32, kInitOutMinSize = 64;
constexpr size_t kInitOutMaxWrite = 20, kInitOutMaxPages = 28;  // u32, u16
constexpr size_t kOutHeaderUnique = offsetof(fuse_out_header, unique);
constexpr size_t kInitOutMaxStackDepth = 36;         // u32, was unused[0]
constexpr size_t kOpenOutSize = 16;                  // fh, open_flags, backing_id
constexpr size_t kOpenOutFlags = 8, kOpenOutBackingId = 12;
constexpr uint32_t kFopenPassthrough = 1u << 7;      // FOPEN_PASSTHROUGH
// Our backing files (object files) sit on a filesystem that stacks on
// nothing; 1 leaves room to stack one overlayfs on top of the mount.
constexpr uint32_t kMaxStackDepth = 1;

std::atomic<bool> g_init_sent{false};
std::atomic<bool> g_passthrough_offered{false};
std::atomic<bool> g_passthrough_wanted{false};
std::atomic<bool> g_uring_offered{false};
std::atomic<bool> g_uring_wanted{false};
InitRepliedHook g_init_replied;   // set before serving, read once
std::atomic<int> g_device_fd{-1};
thread_local RingReply* t_ring_reply = nullptr;
// Set by ReplyOpenPassthrough for the reply fuse_reply_open sends next from
// this thread (libfuse writes a reply synchronously in the caller).
thread_local int32_t t_open_backing_id = 0;
// BounceRepliesFrom: the mapping whose bytes replies must not carry as they
// are (empty: none), and each thread's buffer for their copies.
std::span<const std::byte> g_bounce_range;
thread_local std::vector<std::byte> t_bounce;

// Sends, instead of a reply, a bare header carrying -EIO.
ssize_t WriteEio(int fd, const iovec& header) {
  char out[kOutHeader];
  std::memcpy(out, header.iov_base, kOutHeader);
  const uint32_t len = kOutHeader;
  const int32_t error = -EIO;
  std::memcpy(out, &len, 4);
  std::memcpy(out + 4, &error, 4);
  return write(fd, out, kOutHeader);
}

// The reply to the request of this thread's ring entry: copied into the
// entry (out header into in_out, the out arguments one after the other into
// the payload buffer); the ring thread then commits it.
ssize_t RingWritev(RingReply* r, const iovec* iov, int count) {
  char header[kOutHeader];
  std::memcpy(header, iov[0].iov_base, kOutHeader);
  int32_t error;
  std::memcpy(&error, header + 4, 4);
  size_t total = 0;
  for (int i = 1; i < count; ++i) total += iov[i].iov_len;
  if (total > r->capacity) {
    error = -EIO;   // cannot happen: the buffer holds max_pages pages
    total = 0;
  } else if (!RegionLost()) {
    size_t at = 0;
    // memmove: an out argument could point into the request, which shares
    // the payload buffer.
    for (int i = 1; i < count; ++i) {
      std::memmove(r->payload + at, iov[i].iov_base, iov[i].iov_len);
      at += iov[i].iov_len;
    }
  }
  // A fault in the copy (the region went away) leaves zeros: say EIO.
  if (RegionLost()) {
    error = -EIO;
    total = 0;
  }
  if (error != 0) total = 0;
  const uint32_t len = static_cast<uint32_t>(kOutHeader + total);
  std::memcpy(header, &len, 4);
  std::memcpy(header + 4, &error, 4);
  std::memcpy(r->out_header, header, kOutHeader);
  r->payload_size = static_cast<uint32_t>(total);
  r->replied = true;
  return static_cast<ssize_t>(len);
}

// Copies the reply's payload into this thread's buffer if any part of it lies
// in the bounce range; returns the iovecs to write (iov itself, or `out`).
const iovec* Bounce(const iovec* iov, int count, iovec (&out)[2]) {
  const std::byte* lo = g_bounce_range.data();
  const std::byte* hi = lo + g_bounce_range.size();
  size_t total = 0;
  bool hit = false;
  for (int i = 1; i < count; ++i) {
    const auto* b = static_cast<const std::byte*>(iov[i].iov_base);
    total += iov[i].iov_len;
    if (iov[i].iov_len > 0 && b < hi && b + iov[i].iov_len > lo) hit = true;
  }
  if (!hit) return iov;
  if (t_bounce.size() < total) t_bounce.resize(total);
  size_t at = 0;
  for (int i = 1; i < count; ++i) {
    std::memcpy(t_bounce.data() + at, iov[i].iov_base, iov[i].iov_len);
    at += iov[i].iov_len;
  }
  out[0] = iov[0];
  out[1] = {t_bounce.data(), total};
  return out;
}

ssize_t TransportWritev(int fd, iovec* iov, int count, void*) {
  const bool is_reply = count >= 1 && iov[0].iov_len == kOutHeader;
  bool init_reply = false, uring_asked = false;
  uint32_t max_write = 0, max_pages = 0;
  if (!g_init_sent.exchange(true) && is_reply && count >= 2 && iov[1].iov_len >= kInitOutMinSize) {
    init_reply = true;
    auto* init = static_cast<char*>(iov[1].iov_base);
    uint32_t flags, flags2;
    std::memcpy(&flags, init + kInitOutFlags, 4);
    std::memcpy(&flags2, init + kInitOutFlags2, 4);
    flags |= kInitExt;
    flags2 |= kDirectIoAllowMmapHi;
    if (g_passthrough_wanted && g_passthrough_offered) {
      flags2 |= kPassthroughHi;
      std::memcpy(init + kInitOutMaxStackDepth, &kMaxStackDepth, 4);
    }
    if (g_uring_wanted && g_uring_offered) {
      flags2 |= kOverIoUringHi;
      uring_asked = true;
    }
    std::memcpy(init + kInitOutFlags, &flags, 4);
    std::memcpy(init + kInitOutFlags2, &flags2, 4);
    uint16_t pages;
    std::memcpy(&max_write, init + kInitOutMaxWrite, 4);
    std::memcpy(&pages, init + kInitOutMaxPages, 2);
    max_pages = pages;
  }
  if (t_open_backing_id != 0) {
    const int32_t id = t_open_backing_id;
    t_open_backing_id = 0;
    if (is_reply && count >= 2 && iov[1].iov_len == kOpenOutSize) {
      auto* out = static_cast<char*>(iov[1].iov_base);
      uint32_t open_flags;
      std::memcpy(&open_flags, out + kOpenOutFlags, 4);
      open_flags |= kFopenPassthrough;
      std::memcpy(out + kOpenOutFlags, &open_flags, 4);
      std::memcpy(out + kOpenOutBackingId, &id, 4);
    }
  }
  if (RingReply* r = t_ring_reply; r != nullptr && is_reply && !r->replied) {
    uint64_t unique;
    std::memcpy(&unique, static_cast<const char*>(iov[0].iov_base) + kOutHeaderUnique, 8);
    if (unique == r->unique) return RingWritev(r, iov, count);
  }
  iovec bounced[2];
  if (is_reply && !g_bounce_range.empty() && count >= 2) {
    iov = const_cast<iovec*>(Bounce(iov, count, bounced));
    if (iov == bounced) count = 2;
  }
  // (After the bounce: a fault in its copy, the region gone, left zeros.)
  if (is_reply && RegionLost()) return WriteEio(fd, iov[0]);
  ssize_t n = writev(fd, iov, count);
  if (n < 0 && errno == EFAULT && is_reply) {
    // The kernel could not copy from our buffers: if they lie in a region
    // that just went away, touching them here trips the guard.
    for (int i = 1; i < count; ++i)
      ProbeTail({static_cast<const std::byte*>(iov[i].iov_base), iov[i].iov_len});
    if (RegionLost()) return WriteEio(fd, iov[0]);
    errno = EFAULT;
  }
  // The kernel has taken INIT (the write ran its INIT handling): a ring can
  // be registered from now on.
  if (init_reply && n >= 0 && g_init_replied) {
    const int err = errno;
    g_init_replied(uring_asked, max_write, max_pages);
    errno = err;
  }
  return n;
}
ssize_t TransportRead(int fd, void* buf, size_t len, void*) {
  g_device_fd = fd;
  const ssize_t n = read(fd, buf, len);
  if (n >= static_cast<ssize_t>(kInHeader)) TmpfileAsCreate(static_cast<std::byte*>(buf));
  if (!g_init_sent && n >= static_cast<ssize_t>(kInHeader + kInitInFlags2 + 4)) {
    const auto* in = static_cast<const char*>(buf);
    uint32_t opcode, flags2;
    std::memcpy(&opcode, in + kInHeaderOpcode, 4);
    std::memcpy(&flags2, in + kInHeader + kInitInFlags2, 4);
    if (opcode == kOpInit) {
      g_passthrough_offered = (flags2 & kPassthroughHi) != 0;
      g_uring_offered = (flags2 & kOverIoUringHi) != 0;
    }
  }
  return n;
}

}  // namespace

void BounceRepliesFrom(std::span<const std::byte> mapping) { g_bounce_range = mapping; }

void TmpfileAsCreate(std::byte* in_header) {
  // FUSE_TMPFILE (kernel 6.3+) carries what FUSE_CREATE does (fuse_create_in
  // and a name, "/" for the nameless dentry) and wants the same reply, but
  // libfuse 3.14 does not know it: hand it over as a create of "/".
  uint32_t opcode;
  std::memcpy(&opcode, in_header + kInHeaderOpcode, 4);
  if (opcode != FUSE_TMPFILE) return;
  opcode = FUSE_CREATE;
  std::memcpy(in_header + kInHeaderOpcode, &opcode, 4);
}

bool KernelOffersPassthrough() { return g_passthrough_offered; }
void RequestPassthrough(bool on) { g_passthrough_wanted = on; }
int DeviceFd() { return g_device_fd; }
void RequestUring(bool on, InitRepliedHook hook) {
  g_uring_wanted = on;
  g_init_replied = std::move(hook);
}
void SetThreadRingReply(RingReply* reply) { t_ring_reply = reply; }
bool ThreadRepliesOnRing() { return t_ring_reply != nullptr; }

void ReplyOpenPassthrough(fuse_req_t req, fuse_file_info* fi, int32_t backing_id) {
  t_open_backing_id = backing_id;
  fuse_reply_open(req, fi);
  t_open_backing_id = 0;  // not consumed if the reply could not be sent
}

const fuse_custom_io* DaxfsTransport() {
  static const fuse_custom_io kIo = {TransportWritev, TransportRead, nullptr, nullptr};
  return &kIo;
}


}  // namespace daxfs::fuse
