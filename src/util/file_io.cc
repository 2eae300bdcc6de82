#include "util/file_io.h"

#include <unistd.h>

#include <cerrno>
#include <cstring>

namespace daxfs {

Status PwriteAll(int fd, std::span<const std::byte> bytes, uint64_t offset, const std::string& name) {
  while (!bytes.empty()) {
    const ssize_t w = pwrite(fd, bytes.data(), bytes.size(), static_cast<off_t>(offset));
    if (w < 0) {
      if (errno == EINTR) continue;
      return Status::IOError(name + ": write of " + std::to_string(bytes.size()) +
                                 " bytes at offset " + std::to_string(offset),
                             errno);
    }
    bytes = bytes.subspan(static_cast<size_t>(w));
    offset += static_cast<uint64_t>(w);
  }
  return Status::OK();
}

Status WriteAll(int fd, std::span<const std::byte> bytes, const std::string& name) {
  while (!bytes.empty()) {
    const ssize_t w = write(fd, bytes.data(), bytes.size());
    if (w < 0) {
      if (errno == EINTR) continue;
      return Status::IOError(name, errno);
    }
    bytes = bytes.subspan(static_cast<size_t>(w));
  }
  return Status::OK();
}

Status PreadFull(int fd, std::span<std::byte> out, uint64_t offset, const std::string& name) {
  while (!out.empty()) {
    const ssize_t r = pread(fd, out.data(), out.size(), static_cast<off_t>(offset));
    if (r < 0) {
      if (errno == EINTR) continue;
      return Status::IOError(name + ": read at offset " + std::to_string(offset), errno);
    }
    if (r == 0) {  // past the end: what was never written reads as zero
      std::memset(out.data(), 0, out.size());
      break;
    }
    out = out.subspan(static_cast<size_t>(r));
    offset += static_cast<uint64_t>(r);
  }
  return Status::OK();
}

}  // namespace daxfs
