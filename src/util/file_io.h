// Whole-buffer positional I/O with EINTR and short transfers handled once.
#pragma once

#include <cstddef>
#include <cstdint>
#include <span>
#include <string>

#include "daxfs/status.h"

namespace daxfs {

// Writes all of `bytes` at `offset`; the error names `name` and the offset.
Status PwriteAll(int fd, std::span<const std::byte> bytes, uint64_t offset, const std::string& name);
// Writes all of `bytes` to a stream (a pipe, a terminal, stdout).
Status WriteAll(int fd, std::span<const std::byte> bytes, const std::string& name);
// Reads `out.size()` bytes at `offset`; bytes past end of file read as zero.
Status PreadFull(int fd, std::span<std::byte> out, uint64_t offset, const std::string& name);

}  // namespace daxfs
