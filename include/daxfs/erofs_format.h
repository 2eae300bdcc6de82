// The EROFS on-disk structures daxfs writes for an image's EROFS view
// (docs/FORMAT.md §7): the stock Linux EROFS driver mounts the same image
// bytes, its inodes pointing at the blocks daxfs's inodes point at.
//
// Only the uncompressed subset is used: the superblock at byte 1024,
// extended (64-byte) inodes, flat plain and flat inline data, inline
// xattrs, directory blocks, and (object-store images) chunk-based files
// whose chunks are all holes. Field names follow the kernel's
// include/linux/erofs_fs.h (facts of the format, little-endian; accessed by
// memcpy only, like format.h).
#pragma once

#include <cstddef>
#include <cstdint>

namespace daxfs::erofs {

inline constexpr uint32_t kMagic = 0xE0F5E1E2;
inline constexpr uint64_t kSuperOffset = 1024;
inline constexpr uint32_t kBlockBits = 12;  // 4 KiB blocks, as daxfs's
inline constexpr uint32_t kBlockSize = 1u << kBlockBits;
inline constexpr uint32_t kSlotBits = 5;    // nid = (inode offset - meta start) / 32

struct SuperBlock {  // 128 bytes at byte 1024
  uint32_t magic;
  uint32_t checksum;         // crc32c, only with kCompatSbChksum (unused)
  uint32_t feature_compat;
  uint8_t blkszbits;
  uint8_t sb_extslots;
  uint16_t root_nid;
  uint64_t inos;             // inodes in the filesystem
  uint64_t build_time;
  uint32_t build_time_nsec;
  uint32_t blocks;           // blocks of the image
  uint32_t meta_blkaddr;     // first block of the inode area
  uint32_t xattr_blkaddr;    // shared xattrs (unused: 0)
  uint8_t uuid[16];
  uint8_t volume_name[16];
  uint32_t feature_incompat;
  uint16_t available_compr_algs;
  uint16_t extra_devices;
  uint16_t devt_slotoff;
  uint8_t dirblkbits;
  uint8_t xattr_prefix_count;
  uint32_t xattr_prefix_start;
  uint64_t packed_nid;
  uint8_t xattr_filter_reserved;
  uint8_t reserved2[23];
};
static_assert(sizeof(SuperBlock) == 128);
static_assert(offsetof(SuperBlock, root_nid) == 14);
static_assert(offsetof(SuperBlock, meta_blkaddr) == 40);
static_assert(offsetof(SuperBlock, feature_incompat) == 80);
static_assert(offsetof(SuperBlock, dirblkbits) == 90);
static_assert(offsetof(SuperBlock, packed_nid) == 96);

// i_format: bit 0 the inode version (1 = extended), bits 1..3 the layout.
inline constexpr uint16_t kInodeExtended = 1;
inline constexpr uint16_t kLayoutFlatPlain = 0;   // data in blocks from raw_blkaddr
inline constexpr uint16_t kLayoutFlatInline = 2;  // the last partial block right after the inode
inline constexpr uint16_t kLayoutChunkBased = 4;  // a chunk map right after the inode (and xattrs)
inline constexpr uint16_t Format(uint16_t layout) { return static_cast<uint16_t>(layout << 1 | kInodeExtended); }
inline constexpr uint16_t LayoutOf(uint16_t format) { return (format >> 1) & 7; }

struct InodeExtended {  // 64 bytes, 32-byte aligned
  uint16_t i_format;
  uint16_t i_xattr_icount;  // 0: none; else xattr body = 12 + (icount - 1) * 4 bytes
  uint16_t i_mode;
  uint16_t i_reserved;
  uint64_t i_size;
  uint32_t i_u;             // raw_blkaddr, or rdev (Linux "new" encoding)
  uint32_t i_ino;           // for 32-bit stat
  uint32_t i_uid;
  uint32_t i_gid;
  uint64_t i_mtime;
  uint32_t i_mtime_nsec;
  uint32_t i_nlink;
  uint8_t i_reserved2[16];
};
static_assert(sizeof(InodeExtended) == 64);
static_assert(offsetof(InodeExtended, i_mtime) == 32);
static_assert(offsetof(InodeExtended, i_nlink) == 44);

// Chunk-based files: i_u holds the chunk format, the low bits of which
// are log2(chunk size) - kBlockBits; without kChunkIndexes the map after
// the inode is one 4-byte block address per chunk (the "block map"),
// kNullAddr for a hole.
inline constexpr uint16_t kChunkBlkbitsMask = 0x1f;
inline constexpr uint16_t kChunkIndexes = 0x20;  // 8-byte chunk indexes instead (not written)
inline constexpr uint32_t kNullAddr = 0xffffffff;
inline constexpr uint32_t kIncompatChunkedFile = 0x4;  // SuperBlock::feature_incompat

struct XattrBodyHeader {  // 12 bytes, then the entries
  uint32_t h_name_filter;  // only with the xattr filter feature (unused: 0)
  uint8_t h_shared_count;
  uint8_t h_reserved2[7];
};
static_assert(sizeof(XattrBodyHeader) == 12);

struct XattrEntry {  // 4 bytes, then the name (without prefix) and the value; 4-aligned
  uint8_t e_name_len;
  uint8_t e_name_index;
  uint16_t e_value_size;
};
static_assert(sizeof(XattrEntry) == 4);

// e_name_index: the prefix the stored name lacks.
inline constexpr uint8_t kXattrUser = 1;
inline constexpr uint8_t kXattrPosixAclAccess = 2;   // "system.posix_acl_access", empty name
inline constexpr uint8_t kXattrPosixAclDefault = 3;  // "system.posix_acl_default", empty name
inline constexpr uint8_t kXattrTrusted = 4;
inline constexpr uint8_t kXattrSecurity = 6;

struct __attribute__((packed)) Dirent {  // 12 bytes; a block's first nameoff / 12 = its entry count
  uint64_t nid;
  uint16_t nameoff;
  uint8_t file_type;
  uint8_t reserved;
};
static_assert(sizeof(Dirent) == 12);

enum FileType : uint8_t {
  kFtUnknown = 0, kFtRegular = 1, kFtDirectory = 2, kFtCharDevice = 3,
  kFtBlockDevice = 4, kFtFifo = 5, kFtSocket = 6, kFtSymlink = 7,
};

}  // namespace daxfs::erofs
