// Checksums stored in the extension header (XXH3-64).
#pragma once

#include <cstddef>
#include <cstdint>

namespace daxfs::format {

// Checksum of the immutable superblock fields and the extension header
// (everything up to ext.super_csum). `sb` points at a 4096-byte superblock.
uint64_t SuperChecksum(const std::byte* sb);

}  // namespace daxfs::format
