// Opening an image and reading inodes, file data and symlinks.
#include "daxfs/image.h"

#include <sys/stat.h>
#define XXH_STATIC_LINKING_ONLY
#include <xxhash.h>

#include <cinttypes>
#include <cstdio>
#include <cstring>

#include <fcntl.h>
#include <unistd.h>

#include "daxfs/format.h"
#include "format/checksum.h"
#include "format/file_type.h"
#include "format/path_walk.h"
#include "objects/object_cache.h"

namespace daxfs {

namespace fmt = daxfs::format;

namespace {

std::string Hex(uint64_t v) {
  char buf[24];
  std::snprintf(buf, sizeof buf, "0x%" PRIx64, v);
  return buf;
}

}  // namespace

std::string FeatureNames(const ImageInfo& info) {
  static constexpr std::pair<uint64_t, const char*> kCompat[] = {
      {fmt::kFeatureSortedDirs, "sorted-dirs"}, {fmt::kFeatureInodeExt, "inode-ext"},
      {fmt::kFeatureXattrs, "xattrs"},          {fmt::kFeatureMetaCsum, "meta-csum"},
      {fmt::kFeatureDataCsum, "data-csum"},
      {fmt::kFeatureErofsView, "erofs-view"}, {fmt::kFeatureContainerConfig, "container-config"}};
  static constexpr std::pair<uint64_t, const char*> kIncompat[] = {
      {fmt::kFeatureCompactDirs, "compact-dirs"}, {fmt::kFeatureBranchRegion, "branch-region"},
      {fmt::kFeatureObjects, "objects"}};
  std::string out;
  auto add = [&](const char* name) { out += out.empty() ? name : std::string(" ") + name; };
  for (const auto& [bit, name] : kCompat)
    if (info.features_compat & bit) add(name);
  for (const auto& [bit, name] : kIncompat)
    if (info.features_incompat & bit) add(name);
  return out.empty() ? "none" : out;
}

const char* FileTypeName(uint32_t mode) {
  switch (mode & S_IFMT) {
    case S_IFREG: return "file";
    case S_IFDIR: return "dir";
    case S_IFLNK: return "symlink";
    case S_IFCHR: return "chardev";
    case S_IFBLK: return "blockdev";
    case S_IFIFO: return "fifo";
    case S_IFSOCK: return "socket";
    default: return "unknown";
  }
}


Result<std::shared_ptr<const Image>> Image::Open(std::shared_ptr<Region> region,
                                                 const OpenOptions& options) {
  std::shared_ptr<Image> image(new Image(std::move(region)));
  DAXFS_RETURN_IF_ERROR(image->Init(options));
  return std::shared_ptr<const Image>(std::move(image));
}

Result<std::shared_ptr<const Image>> Image::Open(const std::string& spec,
                                                 const OpenOptions& options) {
  DAXFS_ASSIGN_OR_RETURN(auto region, Region::Open(spec, Access::kReadOnly));
  return Open(std::move(region), options);
}

Status Image::Init(const OpenOptions& options) {
  const auto bytes = region_->bytes();
  const std::string& name = region_->name();
  auto corrupt = [&](const std::string& what) {
    return Status::Corruption(name + ": " + what);
  };
  if (bytes.size() < sizeof(fmt::Superblock))
    return corrupt("region is " + std::to_string(bytes.size()) +
                   " bytes, smaller than a superblock (" +
                   std::to_string(sizeof(fmt::Superblock)) + ")");
  const auto sb = fmt::Load<fmt::Superblock>(bytes.data());
  if (sb.magic != fmt::kSuperMagic)
    return corrupt("bad magic " + Hex(sb.magic) + " at offset 0 (expected " +
                   Hex(fmt::kSuperMagic) + ", not a daxfs image)");
  if (sb.version != fmt::kVersion && sb.version != fmt::kVersionIncompat)
    return corrupt("unsupported version " + std::to_string(sb.version) + " at offset 4");
  if (sb.block_size != fmt::kBlockSize)
    return corrupt("unsupported block size " + std::to_string(sb.block_size) + " at offset 12");
  if (sb.total_size > bytes.size())
    return corrupt("superblock total_size " + std::to_string(sb.total_size) +
                   " exceeds the region size " + std::to_string(bytes.size()) +
                   " (truncated image?)");
  if (sb.base_offset == 0 || sb.base_offset % fmt::kBlockSize != 0 ||
      sb.base_offset > sb.total_size || sb.base_size > sb.total_size - sb.base_offset ||
      sb.base_size < sizeof(fmt::BaseSuper))
    return corrupt("base image [" + std::to_string(sb.base_offset) + ", +" +
                   std::to_string(sb.base_size) + ") does not fit in total_size " +
                   std::to_string(sb.total_size));

  info_.region_size = bytes.size();
  info_.total_size = sb.total_size;
  info_.base_offset = sb.base_offset;
  info_.base_size = sb.base_size;
  info_.branching = sb.branch_table_entries != 0;

  if (sb.ext.magic == fmt::kExtMagic) {
    const auto& ext = sb.ext;
    if (fmt::SuperChecksum(bytes.data()) != ext.super_csum)
      return corrupt("superblock checksum mismatch (offset " +
                     std::to_string(offsetof(fmt::Superblock, ext.super_csum)) + ")");
    if (ext.version != fmt::kExtVersion)
      return corrupt("unsupported extension version " + std::to_string(ext.version));
    if (ext.features_incompat & ~fmt::kKnownIncompat)
      return Status::NotSupported(name + ": image uses unknown incompatible features " +
                                  Hex(ext.features_incompat & ~fmt::kKnownIncompat));
    if ((ext.features_incompat != 0) != (sb.version == fmt::kVersionIncompat))
      return corrupt("version " + std::to_string(sb.version) + " at offset 4 does not match " +
                     "incompatible features " + Hex(ext.features_incompat));
    info_.daxfs_extensions = true;
    info_.features_compat = ext.features_compat;
    info_.features_incompat = ext.features_incompat;
    info_.compact_dirs = ext.features_incompat & fmt::kFeatureCompactDirs;
    info_.objects = ext.features_incompat & fmt::kFeatureObjects;
    info_.sorted_dirs = ext.features_compat & fmt::kFeatureSortedDirs;
    info_.meta_size = ext.meta_size;
    info_.build_time = ext.build_time;
    info_.file_count = ext.file_count;
    info_.label.assign(ext.label, strnlen(ext.label, sizeof ext.label));
    inode_ext_ = ext.features_compat & fmt::kFeatureInodeExt;
    if (info_.compact_dirs && !inode_ext_)
      return corrupt("compact directories without the inode extension (no parent pointers)");
    if (ext.meta_size > sb.base_size) return corrupt("meta_size beyond the base image");
    if (ext.features_compat & fmt::kFeatureXattrs) {
      if (ext.xattr_offset < sizeof(fmt::BaseSuper) || ext.xattr_offset > sb.base_size ||
          ext.xattr_size > sb.base_size - ext.xattr_offset ||
          ext.xattr_size < sizeof(fmt::XattrAreaHeader))
        return corrupt("xattr area [" + std::to_string(ext.xattr_offset) + ", +" +
                       std::to_string(ext.xattr_size) + ") is outside the base image");
      xattr_offset_ = ext.xattr_offset;
      xattr_size_ = ext.xattr_size;
    }
    meta_csum_ = ext.features_compat & fmt::kFeatureMetaCsum ? ext.meta_csum : 0;
    data_csum_ = ext.features_compat & fmt::kFeatureDataCsum ? ext.data_csum : 0;
  }

  if (sb.version == fmt::kVersionIncompat && !info_.daxfs_extensions)
    return corrupt("version 6 image without the daxfs extension header");
  base_ = bytes.data() + sb.base_offset;
  base_size_ = sb.base_size;
  if (info_.features_compat & fmt::kFeatureContainerConfig) {
    uint64_t off = 0, len = 0;
    std::memcpy(&off, sb.ext.reserved + fmt::kExtContainerConfigOffset, 8);
    std::memcpy(&len, sb.ext.reserved + fmt::kExtContainerConfigLength, 8);
    if (len == 0 || len > fmt::kContainerConfigMax || off < sizeof(fmt::BaseSuper) || off > info_.meta_size ||
        len > info_.meta_size - off)
      return corrupt("container config [" + std::to_string(off) + ", +" + std::to_string(len) +
                     ") (superblock offset " +
                     std::to_string(offsetof(fmt::Superblock, ext.reserved) + fmt::kExtContainerConfigOffset) +
                     ") is outside the metadata area");
    info_.container_config.assign(reinterpret_cast<const char*>(base_ + off), len);
  }
  const auto bs = fmt::Load<fmt::BaseSuper>(base_);
  const std::string at = " (base superblock at offset " + std::to_string(sb.base_offset) + ")";
  if (bs.magic != fmt::kBaseMagic)
    return corrupt("bad base magic " + Hex(bs.magic) + at);
  if (bs.block_size != fmt::kBlockSize) return corrupt("bad base block size" + at);
  external_data_ = bs.flags & fmt::kBaseFlagExternalData;
  if (bs.inode_count == 0) return corrupt("inode_count is 0" + at);
  if (bs.inode_offset < sizeof(fmt::BaseSuper) || bs.inode_offset > base_size_ ||
      uint64_t{bs.inode_count} * fmt::kInodeSize > base_size_ - bs.inode_offset)
    return corrupt("inode table (offset " + std::to_string(bs.inode_offset) + ", " +
                   std::to_string(bs.inode_count) + " inodes) does not fit in the base image" + at);
  if (bs.root_inode == 0 || bs.root_inode > bs.inode_count)
    return corrupt("root inode " + std::to_string(bs.root_inode) + " out of range" + at);
  inode_table_ = bs.inode_offset;
  inode_count_ = bs.inode_count;
  root_ = bs.root_inode;
  info_.inode_count = bs.inode_count;
  info_.inode_table_end = sb.base_offset + bs.inode_offset + uint64_t{bs.inode_count} * fmt::kInodeSize;

  DAXFS_ASSIGN_OR_RETURN(format::Inode root, inode(root_));
  if (!S_ISDIR(root.mode)) return corrupt("root inode " + std::to_string(root_) + " is not a directory");
  if (inode_ext_ && root.parent != root_)
    return corrupt("root inode's parent is " + std::to_string(root.parent) + ", not itself");
  if (options.verify_metadata) DAXFS_RETURN_IF_ERROR(VerifyMetadataChecksum());
  if (info_.features_incompat & fmt::kFeatureObjects) DAXFS_RETURN_IF_ERROR(InitObjects(sb, options));
  if (!inode_ext_) DAXFS_RETURN_IF_ERROR(BuildLegacyParents());
  return Status::OK();
}

// The object directory: the caller's, or the path recorded in the image.
// Opened once; objects are found relative to it.
Status Image::InitObjects(const fmt::Superblock& sb, const OpenOptions& options) {
  const std::string& name = region_->name();
  uint64_t off = 0, len = 0;
  std::memcpy(&off, sb.ext.reserved + fmt::kExtObjectDirOffset, 8);
  std::memcpy(&len, sb.ext.reserved + fmt::kExtObjectDirLength, 8);
  if (!inode_ext_)
    return Status::Corruption(name + ": object-store image without the inode extension");
  if (off != 0) {
    if (len == 0 || len > fmt::kObjectDirPathMax || off < sizeof(fmt::BaseSuper) ||
        off > info_.meta_size || len > info_.meta_size - off)
      return Status::Corruption(name + ": recorded object directory [" + std::to_string(off) +
                                ", +" + std::to_string(len) + ") (superblock offset " +
                                std::to_string(offsetof(fmt::Superblock, ext.reserved) +
                                               fmt::kExtObjectDirOffset) +
                                ") is outside the metadata area");
    info_.recorded_object_dir.assign(reinterpret_cast<const char*>(base_ + off), len);
    if (info_.recorded_object_dir.find('\0') != std::string::npos)
      return Status::Corruption(name + ": recorded object directory at base offset " +
                                std::to_string(off) + " contains a NUL byte");
  }
  info_.object_dir = options.object_dir.empty() ? info_.recorded_object_dir : options.object_dir;
  if (info_.object_dir.empty())
    return Status::InvalidArgument(name + ": object-store image records no object directory; "
                                   "give one (--objects DIR)");
  const int fd = open(info_.object_dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (fd < 0)
    return Status::IOError(name + ": cannot open the object directory " + info_.object_dir, errno);
  objects_ = std::make_shared<objects::ObjectCache>(fd, info_.object_dir, options.max_object_mappings);
  return Status::OK();
}

std::string Image::object_what(Ino ino) const {
  return region_->name() + ": inode " + std::to_string(ino);
}

Status Image::VerifyMetadataChecksum() const {
  if (meta_csum_ == 0) return Status::OK();
  const uint64_t got = XXH3_64bits(base_, info_.meta_size);
  if (got != meta_csum_)
    return Status::Corruption(region_->name() + ": metadata checksum mismatch over base bytes [0, " +
                              std::to_string(info_.meta_size) + "): stored " + Hex(meta_csum_) +
                              ", computed " + Hex(got));
  return Status::OK();
}

Status Image::VerifyDataChecksum() const {
  if (data_csum_ == 0) return Status::OK();
  const uint64_t got = XXH3_64bits(base_ + info_.meta_size, base_size_ - info_.meta_size);
  if (got != data_csum_)
    return Status::Corruption(region_->name() + ": file data checksum mismatch over base bytes [" +
                              std::to_string(info_.meta_size) + ", " + std::to_string(base_size_) +
                              "): stored " + Hex(data_csum_) + ", computed " + Hex(got));
  return Status::OK();
}

// Upstream images carry no parent pointers. One pass over the directory
// entries (metadata only) records each directory's parent so that ".." works
// and a directory reachable twice (a cycle) is rejected when used.
Status Image::BuildLegacyParents() {
  constexpr uint32_t kConflict = UINT32_MAX;
  legacy_parent_.assign(size_t{inode_count_} + 1, 0);
  legacy_parent_[root_] = static_cast<uint32_t>(root_);
  std::vector<uint32_t> stack{static_cast<uint32_t>(root_)};
  while (!stack.empty()) {
    const uint32_t dir = stack.back();
    stack.pop_back();
    auto ino = inode(dir);
    if (!ino.ok()) continue;  // reported when the directory is used
    const uint64_t count = ino->size / fmt::kDirentSizeUnit;
    for (uint64_t i = 0; i < count; ++i) {
      auto e = dirent_at(dir, ino->data_offset, i);
      if (!e.ok()) break;
      if (!S_ISDIR(e->mode) || e->ino == 0 || e->ino > inode_count_) continue;
      uint32_t& p = legacy_parent_[e->ino];
      if (p == 0) {
        p = dir;
        stack.push_back(static_cast<uint32_t>(e->ino));
      } else {
        p = kConflict;  // hard-linked directory or a cycle back to an ancestor
      }
    }
  }
  return Status::OK();
}

Result<format::Inode> Image::inode(Ino ino) const {
  if (ino == 0 || ino > inode_count_)
    return Status::Corruption(region_->name() + ": inode number " + std::to_string(ino) +
                              " out of range [1, " + std::to_string(inode_count_) + "]");
  const uint64_t off = inode_table_ + (ino - 1) * fmt::kInodeSize;
  fmt::Inode r = fmt::Load<fmt::Inode>(base_ + off);
  auto bad = [&](const std::string& what) {
    return Status::Corruption(region_->name() + ": inode " + std::to_string(ino) + " (offset " +
                              std::to_string(info_.base_offset + off) + "): " + what);
  };
  if (r.ino != ino) return bad("stored inode number is " + std::to_string(r.ino));
  if (!ValidFileType(r.mode)) return bad("invalid file type in mode " + Hex(r.mode));
  if (!inode_ext_) {  // upstream leaves these bytes undefined
    r.mtime_sec = 0;
    r.mtime_nsec = 0;
    r.rdev = 0;
    r.parent = 0;
    r.xattr_ref = 0;
  } else if (r.mtime_nsec >= 1000000000u) {
    return bad("mtime nanoseconds " + std::to_string(r.mtime_nsec) + " out of range");
  }
  switch (r.mode & S_IFMT) {
    case S_IFREG:
      if (info_.objects) {
        // The digest naming the object lies in the metadata area.
        if (r.size == 0) break;
        DAXFS_RETURN_IF_ERROR(CheckExtent(ino, r.data_offset, fmt::kObjectDigestSize, "object digest"));
        if (r.data_offset + fmt::kObjectDigestSize > info_.meta_size)
          return bad("object digest at base offset " + std::to_string(r.data_offset) +
                     " lies outside the metadata area");
      } else if (!external_data_) {
        DAXFS_RETURN_IF_ERROR(CheckExtent(ino, r.data_offset, r.size, "file data"));
      }
      break;
    case S_IFDIR:
      if (info_.compact_dirs) {
        if (r.size == 0) break;
        if (r.size < sizeof(fmt::CompactDirHeader))
          return bad("compact directory size " + std::to_string(r.size) + " is smaller than its header");
        DAXFS_RETURN_IF_ERROR(CheckExtent(ino, r.data_offset, r.size, "directory"));
        break;
      }
      if (r.size % fmt::kDirentSizeUnit != 0)
        return bad("directory size " + std::to_string(r.size) + " is not a multiple of " +
                   std::to_string(fmt::kDirentSizeUnit));
      // The last entry needs only its header and name; CheckEntry bounds each.
      if (r.size > 0) DAXFS_RETURN_IF_ERROR(CheckExtent(ino, r.data_offset, 16, "directory entries"));
      if (r.size / fmt::kDirentSizeUnit > (base_size_ - r.data_offset) / 16)
        return bad("directory entry count " + std::to_string(r.size / fmt::kDirentSizeUnit) +
                   " cannot fit in the image");
      break;
    case S_IFLNK:
      if (r.size == 0 || r.size > fmt::kSymlinkMax)
        return bad("symlink length " + std::to_string(r.size) + " out of range [1, 4095]");
      DAXFS_RETURN_IF_ERROR(CheckExtent(ino, r.data_offset, r.size + 1, "symlink target"));
      break;
    default:
      break;
  }
  return r;
}

Status Image::CheckExtent(Ino ino, uint64_t offset, uint64_t len, const char* what) const {
  if (offset > base_size_ || len > base_size_ - offset || (len > 0 && offset < sizeof(fmt::BaseSuper)))
    return Status::Corruption(region_->name() + ": inode " + std::to_string(ino) + ": " + what +
                              " [" + std::to_string(offset) + ", +" + std::to_string(len) +
                              ") lies outside the base image (size " +
                              std::to_string(base_size_) + ")");
  return Status::OK();
}

Result<Attr> Image::stat(Ino ino) const {
  DAXFS_ASSIGN_OR_RETURN(format::Inode r, inode(ino));
  Attr a;
  a.ino = ino;
  a.mode = r.mode;
  a.uid = r.uid;
  a.gid = r.gid;
  a.nlink = r.nlink;
  a.size = S_ISREG(r.mode) || S_ISLNK(r.mode) || S_ISDIR(r.mode) ? r.size : 0;
  // Block-aligned data owns whole blocks; packed data only its bytes.
  if (S_ISREG(r.mode))
    a.blocks = fmt::AlignUp(r.size, info_.objects || r.data_offset % fmt::kBlockSize == 0
                                        ? fmt::kBlockSize : 512) / 512;
  a.mtime_sec = r.mtime_sec;
  a.mtime_nsec = r.mtime_nsec;
  if (S_ISCHR(r.mode) || S_ISBLK(r.mode)) {
    a.rdev_major = fmt::DevMajor(r.rdev);
    a.rdev_minor = fmt::DevMinor(r.rdev);
  }
  return a;
}

Result<std::span<const std::byte>> Image::read(Ino ino, uint64_t offset, size_t len) const {
  DAXFS_ASSIGN_OR_RETURN(format::Inode r, inode(ino));
  if (!S_ISREG(r.mode)) {
    if (S_ISDIR(r.mode)) return Status::IsDirectory("inode " + std::to_string(ino) + " is a directory");
    return Status::InvalidArgument("inode " + std::to_string(ino) + " is a " +
                                   FileTypeName(r.mode) + ", not a regular file");
  }
  if (external_data_)
    return Status::NotSupported(region_->name() + ": file data lives in an external backing file");
  if (offset >= r.size) return std::span<const std::byte>();
  const uint64_t n = std::min<uint64_t>(len, r.size - offset);
  if (objects_) {
    const auto digest = fmt::Load<objects::Digest>(base_ + r.data_offset);
    DAXFS_ASSIGN_OR_RETURN(auto m, objects_->Map(digest, r.size, object_what(ino)));
    return m->bytes().subspan(static_cast<size_t>(offset), static_cast<size_t>(n));
  }
  return std::span<const std::byte>(base_ + r.data_offset + offset, static_cast<size_t>(n));
}

Result<std::span<const std::byte>> Image::contents(Ino ino) const {
  return read(ino, 0, SIZE_MAX);
}

Result<PinnedData> Image::pin(Ino ino) const {
  if (!objects_) {
    DAXFS_ASSIGN_OR_RETURN(auto bytes, contents(ino));
    return PinnedData{bytes, region_};
  }
  DAXFS_ASSIGN_OR_RETURN(format::Inode r, inode(ino));
  if (!S_ISREG(r.mode) || r.size == 0) {
    DAXFS_ASSIGN_OR_RETURN(auto bytes, contents(ino));  // the error, or empty
    return PinnedData{bytes, nullptr};
  }
  const auto digest = fmt::Load<objects::Digest>(base_ + r.data_offset);
  DAXFS_ASSIGN_OR_RETURN(auto m, objects_->Map(digest, r.size, object_what(ino)));
  return PinnedData{m->bytes(), m};
}

Result<int> Image::open_object(Ino ino) const {
  if (!objects_) return Status::NotSupported(region_->name() + " is not an object-store image");
  DAXFS_ASSIGN_OR_RETURN(format::Inode r, inode(ino));
  if (!S_ISREG(r.mode) || r.size == 0)
    return Status::InvalidArgument("inode " + std::to_string(ino) + " has no object");
  const auto digest = fmt::Load<objects::Digest>(base_ + r.data_offset);
  return objects_->OpenVerified(digest, r.size, object_what(ino));
}

Result<std::string> Image::object_path(Ino ino) const {
  if (!objects_) return Status::NotSupported(region_->name() + " is not an object-store image");
  DAXFS_ASSIGN_OR_RETURN(format::Inode r, inode(ino));
  if (!S_ISREG(r.mode) || r.size == 0)
    return Status::InvalidArgument("inode " + std::to_string(ino) + " has no object");
  return objects_->dir() + "/" +
         objects::ObjectRelPath(fmt::Load<objects::Digest>(base_ + r.data_offset));
}

Result<std::string> Image::object_name(Ino ino) const {
  if (!info_.objects) return Status::NotSupported(region_->name() + " is not an object-store image");
  DAXFS_ASSIGN_OR_RETURN(format::Inode r, inode(ino));
  if (!S_ISREG(r.mode) || r.size == 0)
    return Status::InvalidArgument("inode " + std::to_string(ino) + " has no object");
  return objects::ObjectRelPath(fmt::Load<objects::Digest>(base_ + r.data_offset));
}

Status Image::VerifyObject(Ino ino) const {
  if (!objects_) return Status::OK();
  DAXFS_ASSIGN_OR_RETURN(format::Inode r, inode(ino));
  if (!S_ISREG(r.mode) || r.size == 0) return Status::OK();
  return objects_->Verify(fmt::Load<objects::Digest>(base_ + r.data_offset), r.size, object_what(ino));
}

Result<uint64_t> Image::data_location(Ino ino) const {
  DAXFS_ASSIGN_OR_RETURN(format::Inode r, inode(ino));
  if (objects_)
    return Status::NotSupported(region_->name() + ": inode " + std::to_string(ino) +
                                ": file data lives in an object file, not in the region");
  if (!S_ISREG(r.mode) || external_data_)
    return Status::InvalidArgument("inode " + std::to_string(ino) + " has no in-image data");
  return info_.base_offset + r.data_offset;
}

Result<Image::Extent> Image::extent(Ino ino) const {
  DAXFS_ASSIGN_OR_RETURN(format::Inode r, inode(ino));
  Extent e;
  switch (r.mode & S_IFMT) {
    case S_IFREG:
      if (info_.objects) e.length = r.size > 0 ? fmt::kObjectDigestSize : 0;
      else if (!external_data_) e.length = r.size;
      break;
    case S_IFLNK:
      e.length = r.size + 1;
      break;
    case S_IFDIR: {
      if (info_.compact_dirs) {
        e.length = r.size;
        break;
      }
      // Our images reserve the full 272-byte stride; upstream reserves 271
      // per entry (its writer may spill the last entry past that).
      const uint64_t count = r.size / fmt::kDirentSizeUnit;
      e.length = count * (inode_ext_ ? fmt::kDirentStride : fmt::kDirentSizeUnit);
      break;
    }
    default:
      break;
  }
  if (e.length > 0) e.offset = info_.base_offset + r.data_offset;
  return e;
}

Result<std::string_view> Image::readlink(Ino ino) const {
  DAXFS_ASSIGN_OR_RETURN(format::Inode r, inode(ino));
  if (!S_ISLNK(r.mode))
    return Status::InvalidArgument("inode " + std::to_string(ino) + " is not a symlink");
  const char* p = reinterpret_cast<const char*>(base_ + r.data_offset);
  if (p[r.size] != '\0' || std::memchr(p, '\0', r.size) != nullptr)
    return Status::Corruption(region_->name() + ": inode " + std::to_string(ino) +
                              ": symlink target at offset " +
                              std::to_string(info_.base_offset + r.data_offset) +
                              " has a misplaced NUL");
  return std::string_view(p, r.size);
}

Result<Ino> Image::parent(Ino dir) const {
  DAXFS_ASSIGN_OR_RETURN(format::Inode r, inode(dir));
  if (!S_ISDIR(r.mode)) return Status::NotDirectory("inode " + std::to_string(dir) + " is not a directory");
  const Ino p = stored_parent(dir, r);
  if (p == 0 || p > inode_count_)
    return Status::Corruption(region_->name() + ": directory inode " + std::to_string(dir) +
                              " has no valid parent (unreachable, hard-linked or in a cycle)");
  return p;
}

Result<Ino> Image::lookup(Ino dir, std::string_view name) const {
  if (name == ".") {
    DAXFS_ASSIGN_OR_RETURN(Directory d, opendir(dir));
    return d.ino();
  }
  if (name == "..") return parent(dir);
  DAXFS_ASSIGN_OR_RETURN(Directory d, opendir(dir));
  // No entry can have such a name; say so as Linux does (not "not found").
  if (name.size() > fmt::kNameMax)
    return Status::FromErrno(ENAMETOOLONG, std::string(name.substr(0, 32)) + "...: name longer than " +
                                               std::to_string(fmt::kNameMax) + " bytes");
  DAXFS_ASSIGN_OR_RETURN(DirEntry e, d.find(name));
  return e.ino;
}

Result<Ino> Image::resolve(std::string_view path) const {
  return WalkPath(root_, path, [this](Ino dir, std::string_view name) { return lookup(dir, name); });
}

}  // namespace daxfs
