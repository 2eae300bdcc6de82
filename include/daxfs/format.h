// The daxfs on-disk (in-memory) image format.
//
// Layout-compatible with the upstream daxfs v5 kernel module: every structure
// and field upstream reads keeps its offset and meaning. daxfs additions live
// only in fields upstream leaves reserved and are announced by feature bits in
// the extension header, which upstream never looks at. See docs/FORMAT.md.
//
// All integers are little-endian. The structures below are only ever accessed
// by memcpy'ing bytes in and out (see Load/Store), never by casting pointers
// into an untrusted mapping, so their alignment in the image does not matter.
#pragma once

#include <bit>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <type_traits>

static_assert(std::endian::native == std::endian::little,
              "daxfs images are little-endian; big-endian hosts are not supported");

namespace daxfs::format {

inline constexpr uint32_t kSuperMagic = 0x64617835;      // "dax5"
inline constexpr uint32_t kVersion = 5;
// Images with incompatible features carry version 6 in the superblock: the
// upstream v5 module checks only magic and version at mount, so this makes
// it refuse an image it would misread instead of serving garbage.
inline constexpr uint32_t kVersionIncompat = 6;
inline constexpr uint32_t kBlockSize = 4096;
inline constexpr uint32_t kBaseMagic = 0x64646135;       // "dda5"
inline constexpr uint32_t kBaseFlagExternalData = 1u << 0;
inline constexpr uint32_t kRootIno = 1;
inline constexpr uint32_t kNameMax = 255;
inline constexpr uint32_t kInodeSize = 64;
// Upstream computes directory sizes with 271 bytes per entry but steps through
// the array with sizeof(struct) == 272. Both must be kept for compatibility.
inline constexpr uint32_t kDirentSizeUnit = 271;
inline constexpr uint32_t kDirentStride = 272;
// Bytes [1024, 2048) of the first block are kept free for an EROFS superblock.
inline constexpr uint64_t kErofsReservedBegin = 1024;
inline constexpr uint64_t kErofsReservedEnd = 2048;
// Longest symlink target we write or accept (PATH_MAX without the NUL).
inline constexpr uint32_t kSymlinkMax = 4095;

// daxfs extension header, stored in the superblock's reserved area.
inline constexpr uint32_t kExtMagic = 0x58465844;  // "DXFX"
inline constexpr uint32_t kExtVersion = 1;

// Compatible features: a reader that does not know one may ignore it.
enum FeatureCompat : uint64_t {
  kFeatureSortedDirs = 1ull << 0,    // dirents sorted by name (memcmp order)
  kFeatureInodeExt = 1ull << 1,      // mtime, rdev, parent, xattr ref in inode
  kFeatureXattrs = 1ull << 2,        // xattr area present
  kFeatureMetaCsum = 1ull << 3,      // ext.meta_csum valid
  kFeatureDataCsum = 1ull << 4,      // ext.data_csum valid
  kFeatureErofsView = 1ull << 5,     // an EROFS superblock at 1024 describes the same tree (§11)
  kFeatureContainerConfig = 1ull << 6,  // a container image's config is recorded (§12)
};
inline constexpr uint64_t kKnownCompat = kFeatureSortedDirs | kFeatureInodeExt | kFeatureXattrs |
                                         kFeatureMetaCsum | kFeatureDataCsum | kFeatureErofsView |
                                         kFeatureContainerConfig;
// Incompatible features: a reader must refuse an image with unknown ones.
enum FeatureIncompat : uint64_t {
  kFeatureCompactDirs = 1ull << 0,   // directories use the compact layout
  kFeatureBranchRegion = 1ull << 1,  // a branchable region: control block + delta
  kFeatureObjects = 1ull << 2,       // file data lives in content-addressed object files
                                     // area after the base (docs/BRANCHES.md)
};
inline constexpr uint64_t kKnownIncompat = kFeatureCompactDirs | kFeatureBranchRegion | kFeatureObjects;
// kFeatureBranchRegion: where the control block is, in ExtHeader::reserved.
inline constexpr size_t kExtBranchControlOffset = 0;  // u64 absolute offset
inline constexpr size_t kExtBranchControlSize = 8;    // u64 bytes
// kFeatureObjects: a regular file's data_offset points at the SHA-256 digest
// (kObjectDigestSize bytes, in the metadata area) naming its object file;
// ExtHeader::reserved holds where the object directory's recorded path is.
inline constexpr size_t kExtObjectDirOffset = 16;     // u64 base-relative, 0 = none
inline constexpr size_t kExtObjectDirLength = 24;     // u64 bytes (no NUL)
// kFeatureErofsView: XXH3-64 of bytes [1024, 4096) of the image (the EROFS
// superblock and root inode, which no other checksum covers).
inline constexpr size_t kExtErofsChecksum = 32;       // u64
inline constexpr uint64_t kErofsBlock0Begin = 1024;
inline constexpr uint64_t kErofsBlock0End = 4096;
// kFeatureContainerConfig: where the OCI image config (JSON) is, in the
// metadata area (covered by meta_csum).
inline constexpr size_t kExtContainerConfigOffset = 40;  // u64 base-relative
inline constexpr size_t kExtContainerConfigLength = 48;  // u64 bytes
inline constexpr uint64_t kContainerConfigMax = 1 << 20;
inline constexpr uint64_t kObjectDigestSize = 32;
inline constexpr uint64_t kObjectDirPathMax = 4096;

// Extension header at superblock offset 192 (ends before byte 1024).
struct ExtHeader {
  uint32_t magic;            // kExtMagic
  uint32_t version;          // kExtVersion
  uint64_t features_compat;
  uint64_t features_incompat;
  uint64_t meta_size;        // base-relative end of metadata; file data follows
  uint64_t xattr_offset;     // base-relative start of the xattr area (0 = none)
  uint64_t xattr_size;
  uint64_t meta_csum;        // XXH3-64 of base bytes [0, meta_size)
  uint64_t data_csum;        // XXH3-64 of base bytes [meta_size, base_size)
  int64_t build_time;        // seconds since the epoch, for information
  uint64_t file_count;       // dirents in the tree (for statfs / progress)
  char label[64];            // volume label, NUL padded
  uint8_t reserved[104];
  uint64_t super_csum;       // XXH3-64 over superblock bytes [0,40) and this
                             // header up to (not including) super_csum
};
static_assert(sizeof(ExtHeader) == 256);

// Top-level superblock at offset 0 of the region (one 4 KiB block).
struct Superblock {
  uint32_t magic;                 // 0
  uint32_t version;               // 4
  uint32_t flags;                 // 8
  uint32_t block_size;            // 12
  uint64_t total_size;            // 16
  uint64_t base_offset;           // 24 absolute
  uint64_t base_size;             // 32
  uint64_t branch_table_offset;   // 40
  uint32_t branch_table_entries;  // 48
  uint32_t active_branches;       // 52
  uint64_t next_branch_id;        // 56
  uint64_t next_inode_id;         // 64
  uint64_t delta_region_offset;   // 72
  uint64_t delta_region_size;     // 80
  uint64_t delta_alloc_offset;    // 88
  uint8_t coord[64];              // 96 upstream coordination area (unused by us)
  uint64_t pcache_offset;         // 160
  uint64_t pcache_size;           // 168
  uint32_t pcache_slot_count;     // 176
  uint32_t pcache_hash_shift;     // 180
  uint32_t pcache_pending;        // 184
  uint32_t pcache_reserved;       // 188
  ExtHeader ext;                  // 192 daxfs extension
  uint8_t reserved0[576];         // 448
  uint8_t erofs_reserved[1024];   // 1024 kept zero for an EROFS superblock
  uint8_t reserved1[2048];        // 2048
};
static_assert(sizeof(Superblock) == kBlockSize);
static_assert(offsetof(Superblock, coord) == 96);
static_assert(offsetof(Superblock, pcache_offset) == 160);
static_assert(offsetof(Superblock, ext) == 192);
static_assert(offsetof(Superblock, erofs_reserved) == kErofsReservedBegin);
// Bytes of the superblock covered by ext.super_csum besides the ext header.
inline constexpr size_t kSuperCsumPrefix = 40;

// Base image superblock at base_offset.
struct BaseSuper {
  uint32_t magic;         // 0 kBaseMagic
  uint32_t version;       // 4
  uint32_t flags;         // 8
  uint32_t block_size;    // 12
  uint64_t total_size;    // 16 bytes of the base image
  uint64_t inode_offset;  // 24 base-relative
  uint32_t inode_count;   // 32
  uint32_t root_inode;    // 36
  uint64_t data_offset;   // 40 base-relative start of the data area
  uint8_t reserved[4048];
};
static_assert(sizeof(BaseSuper) == kBlockSize);

// One inode; the table is indexed by ino - 1.
struct Inode {
  uint32_t ino;          // 0
  uint32_t mode;         // 4 full st_mode
  uint32_t uid;          // 8
  uint32_t gid;          // 12
  uint64_t size;         // 16 file size / dirents*271 / symlink length
  uint64_t data_offset;  // 24 base-relative
  uint32_t nlink;        // 32
  // daxfs extension (kFeatureInodeExt); upstream's reserved bytes.
  uint32_t mtime_nsec;   // 36
  int64_t mtime_sec;     // 40
  uint32_t rdev;         // 48 Linux "new" encoding (see EncodeDev)
  uint32_t parent;       // 52 directories: parent ino (root: itself)
  uint32_t xattr_ref;    // 56 offset in the xattr area (0 = no xattrs)
  uint32_t reserved;     // 60
};
static_assert(sizeof(Inode) == kInodeSize);
static_assert(offsetof(Inode, nlink) == 32 && offsetof(Inode, mtime_nsec) == 36);

// Directory entry, array stride kDirentStride.
struct Dirent {
  uint32_t ino;          // 0
  uint32_t mode;         // 4 child's st_mode
  uint16_t name_len;     // 8
  uint8_t reserved[6];   // 10
  char name[kNameMax];   // 16, not NUL terminated
  uint8_t pad;           // 271
};
static_assert(sizeof(Dirent) == kDirentStride);
static_assert(offsetof(Dirent, name) == 16);

// Compact directory (kFeatureCompactDirs): a header, `count` fixed entries
// sorted by name, then the names back to back. The directory inode's size is
// the byte length of the whole block. Names are stored once (no 255-byte
// slot per entry) and the sorted entries keep lookups a binary search.
struct CompactDirHeader {
  uint32_t count;        // entries
  uint32_t reserved;
};
struct CompactDirent {
  uint32_t ino;          // 0
  uint32_t name_offset;  // 4 from the start of the directory block
  uint8_t name_len;      // 8 1..255
  uint8_t type;          // 9 child's st_mode >> 12 (file type only)
  uint16_t reserved;     // 10
};
static_assert(sizeof(CompactDirHeader) == 8 && sizeof(CompactDirent) == 12);
inline constexpr uint32_t kCompactDirAlign = 4;

// Regular files smaller than a block may share blocks with other small files
// and with the unused end of a larger file's last block ("packed"); larger
// files always start on a block boundary so they can be mapped in place.
inline constexpr uint64_t kPackedFileMax = kBlockSize - 1;

// Xattr area: an 8-byte header, then 8-aligned records, one per distinct set.
inline constexpr uint32_t kXattrMagic = 0x52544158;  // "XATR"
struct XattrAreaHeader {
  uint32_t magic;
  uint32_t reserved;
};
struct XattrRecordHeader {
  uint16_t count;       // entries in this record
  uint16_t reserved;
  uint32_t size;        // bytes of the record including this header
};
struct XattrEntryHeader {
  uint16_t name_len;    // full name, e.g. "security.capability"
  uint16_t reserved;
  uint32_t value_len;
};
static_assert(sizeof(XattrRecordHeader) == 8 && sizeof(XattrEntryHeader) == 8);
inline constexpr uint32_t kXattrNameMax = 255;
inline constexpr uint32_t kXattrValueMax = 65536;

// Copies a trivially copyable T out of possibly unaligned memory.
template <typename T>
inline T Load(const std::byte* p) {
  static_assert(std::is_trivially_copyable_v<T>);
  T v;
  std::memcpy(&v, p, sizeof(T));
  return v;
}
template <typename T>
inline void Store(std::byte* p, const T& v) {
  static_assert(std::is_trivially_copyable_v<T>);
  std::memcpy(p, &v, sizeof(T));
}

constexpr uint64_t AlignUp(uint64_t v, uint64_t a) { return (v + a - 1) / a * a; }

// Linux's 32-bit on-disk device encoding (as ext4/erofs use it).
constexpr uint32_t EncodeDev(uint32_t major, uint32_t minor) {
  return (minor & 0xff) | (major << 8) | ((minor & ~0xffu) << 12);
}
constexpr uint32_t DevMajor(uint32_t dev) { return (dev & 0xfff00) >> 8; }
constexpr uint32_t DevMinor(uint32_t dev) { return (dev & 0xff) | ((dev >> 12) & 0xfff00); }

}  // namespace daxfs::format
