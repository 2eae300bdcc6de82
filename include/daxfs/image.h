// Image: the zero-copy reader for a daxfs image held in a Region.
//
// Thread safety: an Image is immutable after Open; every method is const and
// lock-free, so any number of threads may call it concurrently.
//
// Untrusted input: every offset, length, inode number and name is checked
// before use. A malformed image yields Status::Corruption naming the inode,
// offset and problem; nothing reads outside the region. Open() checks the
// superblocks only (O(1)) unless OpenOptions::verify_metadata is set; use
// Check() (daxfs/check.h) for a full verification.
//
// Lifetime: spans and string_views returned by an Image point into the
// region's mapping and stay valid as long as the Image is alive (hold the
// shared_ptr).
//
// Object-store images (docs/FORMAT.md §6.2) keep file data in separate
// object files, mapped lazily and kept in a bounded cache of
// OpenOptions::max_object_mappings mappings. For them the rule for file
// data is narrower: a span from read() or contents() stays valid until that
// many other objects have been mapped through this Image since (enough for
// a thread that reads one file at a time). Code that holds file data longer,
// or maps files from several threads at once, uses pin(), whose PinnedData
// keeps its mapping alive on its own. Names, symlink targets and xattrs are
// in the image itself and follow the first rule.
#pragma once

#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "daxfs/export.h"
#include "daxfs/format.h"
#include "daxfs/region.h"
#include "daxfs/status.h"

namespace daxfs {

using Ino = uint64_t;

// What stat(2) would report for an inode.
struct Attr {
  Ino ino = 0;
  uint32_t mode = 0;   // st_mode: type and permission bits
  uint32_t uid = 0;
  uint32_t gid = 0;
  uint32_t nlink = 0;
  uint64_t size = 0;   // bytes; directories: entries * 271 like upstream (v5 layout)
                       // or the directory's bytes (compact layout)
  uint64_t blocks = 0; // 512-byte units allocated in the image
  int64_t mtime_sec = 0;
  uint32_t mtime_nsec = 0;
  uint32_t rdev_major = 0;
  uint32_t rdev_minor = 0;
};

struct DirEntry {
  std::string_view name;  // points into the image
  Ino ino = 0;
  uint32_t mode = 0;      // st_mode of the child
};

struct ImageInfo {
  uint64_t region_size = 0;
  uint64_t total_size = 0;
  uint64_t base_offset = 0;
  uint64_t base_size = 0;
  uint32_t inode_count = 0;
  uint64_t meta_size = 0;   // base-relative start of file data (0 if unknown)
  uint64_t inode_table_end = 0;  // absolute end of the inode table
  uint64_t features_compat = 0;
  uint64_t features_incompat = 0;
  bool daxfs_extensions = false;  // false for plain upstream images
  bool sorted_dirs = false;
  bool compact_dirs = false;      // compact directory layout (not upstream-readable)
  bool branching = false;   // the image has a branch table (upstream -b)
  bool objects = false;     // file data lives in an object directory (§6.2)
  std::string object_dir;   // the object directory in use (objects only)
  std::string recorded_object_dir;  // the path mkdaxfs recorded in the image
  // Built from a container image: its config (OCI image config JSON).
  std::string container_config;
  int64_t build_time = 0;
  uint64_t file_count = 0;
  std::string label;
};

struct OpenOptions {
  // Verify the metadata checksum at open (reads all metadata once).
  bool verify_metadata = false;
  // Object-store images: the object directory. Empty: the path recorded in
  // the image (mkdaxfs --objects records the directory's absolute path).
  std::string object_dir;
  // Object-store images: how many objects stay mapped when nobody pins them.
  size_t max_object_mappings = 1024;
};

namespace objects {
class ObjectCache;
}

// File data that stays mapped as long as this value lives.
struct PinnedData {
  std::span<const std::byte> bytes;
  std::shared_ptr<const void> owner;
};

class Directory;

class DAXFS_EXPORT Image {
 public:
  // Opens the image at the start of `region`.
  static Result<std::shared_ptr<const Image>> Open(std::shared_ptr<Region> region,
                                                   const OpenOptions& options = {});
  // Opens a region descriptor (see Region::Open) read-only.
  static Result<std::shared_ptr<const Image>> Open(const std::string& spec,
                                                   const OpenOptions& options = {});

  Image(const Image&) = delete;
  Image& operator=(const Image&) = delete;

  const ImageInfo& info() const { return info_; }
  const Region& region() const { return *region_; }
  std::shared_ptr<Region> shared_region() const { return region_; }
  Ino root() const { return root_; }

  Result<Attr> stat(Ino ino) const;
  // Looks `name` up in directory `dir`. "." and ".." are understood.
  Result<Ino> lookup(Ino dir, std::string_view name) const;
  // Resolves a slash-separated path from the root without following symlinks.
  Result<Ino> resolve(std::string_view path) const;
  // The directory containing `dir` (the root is its own parent).
  Result<Ino> parent(Ino dir) const;
  Result<Directory> opendir(Ino dir) const;

  // Zero-copy read: up to `len` bytes at `offset`, clipped at end of file
  // (empty at or past EOF). The span points into the mapping.
  Result<std::span<const std::byte>> read(Ino ino, uint64_t offset, size_t len) const;
  // The whole file.
  Result<std::span<const std::byte>> contents(Ino ino) const;
  // The whole file, valid while the returned value lives (see Lifetime).
  Result<PinnedData> pin(Ino ino) const;
  // Object-store images: a read-only descriptor of the regular file's
  // verified object (the caller closes it); NotSupported for other images
  // and InvalidArgument for empty files, which have no object.
  Result<int> open_object(Ino ino) const;
  // Object-store images: the object file's path ("DIR/ab/cdef...").
  Result<std::string> object_path(Ino ino) const;
  // Object-store images: its name inside the object directory ("ab/cdef...").
  Result<std::string> object_name(Ino ino) const;
  // Object-store images: hashes the file's object now (daxfs check).
  Status VerifyObject(Ino ino) const;
  // Offset of a regular file's data inside the region (for mmap/splice).
  Result<uint64_t> data_location(Ino ino) const;
  // The bytes an inode owns in the region (file data, dirent array, symlink
  // target + NUL), as an absolute [offset, offset + length). Empty if none.
  struct Extent {
    uint64_t offset = 0;
    uint64_t length = 0;
  };
  Result<Extent> extent(Ino ino) const;
  Result<std::string_view> readlink(Ino ino) const;

  // Calls fn(name, value) for each extended attribute, in name order.
  Status list_xattrs(Ino ino, const std::function<void(std::string_view name,
                                                       std::span<const std::byte> value)>& fn) const;
  // One attribute's value; errno_value() is ENODATA if absent.
  Result<std::span<const std::byte>> getxattr(Ino ino, std::string_view name) const;
  // Every xattr name that some record of the xattr area holds, sorted and
  // distinct (empty without an area). Walks the area's records in order
  // (O(area), not O(inodes)); Corruption if they do not tile the area.
  Result<std::vector<std::string>> xattr_names() const;

  // Verifies the metadata / data checksums (O(size)).
  Status VerifyMetadataChecksum() const;
  Status VerifyDataChecksum() const;

 private:
  friend class Directory;
  Image(std::shared_ptr<Region> region) : region_(std::move(region)) {}
  Status Init(const OpenOptions& options);
  Status BuildLegacyParents();
  Result<format::Inode> inode(Ino ino) const;
  Status InitObjects(const format::Superblock& sb, const OpenOptions& options);
  std::string object_what(Ino ino) const;
  Status CheckExtent(Ino ino, uint64_t offset, uint64_t len, const char* what) const;
  Result<DirEntry> dirent_at(Ino dir, uint64_t data_offset, size_t index) const;
  Result<DirEntry> compact_dirent_at(Ino dir, uint64_t data_offset, uint64_t bytes,
                                     size_t index) const;
  Status CheckChild(Ino dir, const DirEntry& e) const;
  // The parent recorded for directory inode `dir` (0 or out of range when
  // unknown): the inode's field, or the map built for upstream images.
  Ino stored_parent(Ino dir, const format::Inode& r) const {
    return inode_ext_ ? r.parent : legacy_parent_[dir];
  }

  std::shared_ptr<Region> region_;
  const std::byte* base_ = nullptr;  // start of the base image
  uint64_t base_size_ = 0;
  uint64_t inode_table_ = 0;         // base-relative
  uint32_t inode_count_ = 0;
  Ino root_ = 1;
  uint64_t xattr_offset_ = 0, xattr_size_ = 0;
  uint64_t meta_csum_ = 0, data_csum_ = 0;
  bool inode_ext_ = false;
  bool external_data_ = false;
  std::vector<uint32_t> legacy_parent_;  // upstream images: parent per directory
  std::shared_ptr<objects::ObjectCache> objects_;  // object-store images only
  ImageInfo info_;
};

// A view of one directory's entries, valid while its Image lives.
class DAXFS_EXPORT Directory {
 public:
  Ino ino() const { return ino_; }
  size_t size() const { return count_; }
  bool sorted() const { return sorted_; }
  // The i-th entry (i < size()), validated.
  Result<DirEntry> entry(size_t i) const;
  // Binary search when sorted, linear scan otherwise.
  Result<DirEntry> find(std::string_view name) const;

 private:
  friend class Image;
  Directory(const Image* image, Ino ino, uint64_t data_offset, uint64_t bytes, size_t count,
            bool sorted, bool compact)
      : image_(image), ino_(ino), data_offset_(data_offset), bytes_(bytes), count_(count),
        sorted_(sorted), compact_(compact) {}
  // The i-th name without validating the rest of the entry (for probes);
  // false if the entry's bounds are broken.
  bool raw_name(size_t i, std::string_view* out) const;

  const Image* image_;
  Ino ino_;
  uint64_t data_offset_;  // base-relative
  uint64_t bytes_;        // compact: bytes of the directory block
  size_t count_;
  bool sorted_;
  bool compact_;
};

// The image's feature bits as names ("sorted-dirs inode-ext ... compact-dirs").
DAXFS_EXPORT std::string FeatureNames(const ImageInfo& info);

// Returns "file", "dir", "symlink", "chardev", ... for a st_mode.
DAXFS_EXPORT const char* FileTypeName(uint32_t mode);

}  // namespace daxfs
