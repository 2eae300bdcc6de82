#include "fuse/transport.h"

#include <sys/uio.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <cstdint>
#include <cstring>
#include <span>

#include "fuse/region_guard.h"

namespace daxfs::fuse {
namespace {

// --- Our own /dev/fuse transport ------------------------------------------
// Every reply passes through here, which lets us (1) add what libfuse 3.14
// cannot ask for to the INIT reply: FUSE_DIRECT_IO_ALLOW_MMAP (kernel 6.6+),
// so that direct-I/O files can be mmapped, and (2) turn every reply into
// EIO once the image's memory is gone.

constexpr uint32_t kInitExt = 1u << 30;              // FUSE_INIT_EXT
constexpr uint32_t kDirectIoAllowMmapHi = 1u << 4;   // bit 36 in flags2
constexpr size_t kOutHeader = 16;                    // len, error, unique
constexpr size_t kInitOutFlags = 12, kInitOutFlags2 = 32, kInitOutMinSize = 64;

std::atomic<bool> g_init_sent{false};

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

ssize_t TransportWritev(int fd, iovec* iov, int count, void*) {
  const bool is_reply = count >= 1 && iov[0].iov_len == kOutHeader;
  if (!g_init_sent.exchange(true) && is_reply && count >= 2 && iov[1].iov_len >= kInitOutMinSize) {
    auto* init = static_cast<char*>(iov[1].iov_base);
    uint32_t flags, flags2;
    std::memcpy(&flags, init + kInitOutFlags, 4);
    std::memcpy(&flags2, init + kInitOutFlags2, 4);
    flags |= kInitExt;
    flags2 |= kDirectIoAllowMmapHi;
    std::memcpy(init + kInitOutFlags, &flags, 4);
    std::memcpy(init + kInitOutFlags2, &flags2, 4);
  }
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
  return n;
}
ssize_t TransportRead(int fd, void* buf, size_t len, void*) { return read(fd, buf, len); }

}  // namespace

const fuse_custom_io* DaxfsTransport() {
  static const fuse_custom_io kIo = {TransportWritev, TransportRead, nullptr, nullptr};
  return &kIo;
}


}  // namespace daxfs::fuse
