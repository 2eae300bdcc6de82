// Directory entry access: validated entries, binary-search lookup.
#include <sys/stat.h>

#include <algorithm>

#include "daxfs/format.h"
#include "daxfs/image.h"
#include "format/names.h"

namespace daxfs {

namespace fmt = daxfs::format;

Result<Directory> Image::opendir(Ino dir) const {
  DAXFS_ASSIGN_OR_RETURN(format::Inode r, inode(dir));
  if (!S_ISDIR(r.mode))
    return Status::NotDirectory("inode " + std::to_string(dir) + " is not a directory");
  if (!info_.compact_dirs)
    return Directory(this, dir, r.data_offset, 0, r.size / fmt::kDirentSizeUnit, info_.sorted_dirs,
                     false);
  if (r.size == 0) return Directory(this, dir, 0, 0, 0, true, true);
  // inode() bounded [data_offset, +size) inside the base and size >= header.
  const auto h = fmt::Load<fmt::CompactDirHeader>(base_ + r.data_offset);
  if (uint64_t{h.count} > (r.size - sizeof h) / sizeof(fmt::CompactDirent))
    return Status::Corruption(region_->name() + ": directory inode " + std::to_string(dir) +
                              " (offset " + std::to_string(info_.base_offset + r.data_offset) +
                              "): " + std::to_string(h.count) + " entries do not fit in " +
                              std::to_string(r.size) + " bytes");
  return Directory(this, dir, r.data_offset, r.size, h.count, true, true);
}

// Entry `index` of a compact directory block; the caller has bounded index
// by the header's count, which opendir checked against the block size.
Result<DirEntry> Image::compact_dirent_at(Ino dir, uint64_t data_offset, uint64_t bytes,
                                          size_t index) const {
  const uint64_t off = sizeof(fmt::CompactDirHeader) + uint64_t{index} * sizeof(fmt::CompactDirent);
  auto bad = [&](const std::string& what) {
    return Status::Corruption(region_->name() + ": directory inode " + std::to_string(dir) +
                              ", entry " + std::to_string(index) + " (offset " +
                              std::to_string(info_.base_offset + data_offset + off) + "): " + what);
  };
  const auto de = fmt::Load<fmt::CompactDirent>(base_ + data_offset + off);
  if (de.name_offset > bytes || de.name_len > bytes - de.name_offset)
    return bad("name [" + std::to_string(de.name_offset) + ", +" + std::to_string(de.name_len) +
               ") lies outside the directory's " + std::to_string(bytes) + " bytes");
  DirEntry e;
  e.ino = de.ino;
  e.mode = uint32_t{de.type} << 12;
  e.name = std::string_view(reinterpret_cast<const char*>(base_ + data_offset + de.name_offset),
                            de.name_len);
  if (const char* why = fmt::InvalidNameReason(e.name)) return bad(why);
  if (e.ino == 0 || e.ino > inode_count_)
    return bad("inode number " + std::to_string(e.ino) + " out of range");
  if (e.ino == root_) return bad("entry refers to the root directory");
  return e;
}

// Reads entry `index` of the array at `data_offset`, checking its bounds and
// its name. The caller has bounded index by the directory's entry count.
Result<DirEntry> Image::dirent_at(Ino dir, uint64_t data_offset, size_t index) const {
  const uint64_t off = data_offset + uint64_t{index} * fmt::kDirentStride;
  auto bad = [&](const std::string& what) {
    return Status::Corruption(region_->name() + ": directory inode " + std::to_string(dir) +
                              ", entry " + std::to_string(index) + " (offset " +
                              std::to_string(info_.base_offset + off) + "): " + what);
  };
  if (off > base_size_ || base_size_ - off < offsetof(fmt::Dirent, name))
    return bad("entry lies outside the base image");
  const std::byte* p = base_ + off;
  const uint16_t name_len = fmt::Load<uint16_t>(p + offsetof(fmt::Dirent, name_len));
  if (name_len > fmt::kNameMax || base_size_ - off - offsetof(fmt::Dirent, name) < name_len)
    return bad("name length " + std::to_string(name_len) + " out of bounds");
  DirEntry e;
  e.ino = fmt::Load<uint32_t>(p);
  e.mode = fmt::Load<uint32_t>(p + offsetof(fmt::Dirent, mode));
  e.name = std::string_view(reinterpret_cast<const char*>(p + offsetof(fmt::Dirent, name)), name_len);
  if (const char* why = fmt::InvalidNameReason(e.name)) return bad(why);
  if (e.ino == 0 || e.ino > inode_count_)
    return bad("inode number " + std::to_string(e.ino) + " out of range");
  if (e.ino == root_) return bad("entry refers to the root directory");
  return e;
}

// A child is consistent with its inode, and a child directory must name this
// directory as its parent: with one parent per directory, nothing reachable
// from the root can form a cycle.
Status Image::CheckChild(Ino dir, const DirEntry& e) const {
  DAXFS_ASSIGN_OR_RETURN(format::Inode child, inode(e.ino));
  if ((child.mode & S_IFMT) != (e.mode & S_IFMT))
    return Status::Corruption(region_->name() + ": directory inode " + std::to_string(dir) +
                              ": entry '" + std::string(e.name) + "' says " +
                              FileTypeName(e.mode) + " but inode " + std::to_string(e.ino) +
                              " is a " + FileTypeName(child.mode));
  if (S_ISDIR(child.mode)) {
    const Ino p = stored_parent(e.ino, child);
    if (p != dir)
      return Status::Corruption(region_->name() + ": directory inode " + std::to_string(e.ino) +
                                " ('" + std::string(e.name) + "') is linked from inode " +
                                std::to_string(dir) + " but its parent is " + std::to_string(p) +
                                " (hard-linked directory or cycle)");
  }
  return Status::OK();
}

Result<DirEntry> Directory::entry(size_t i) const {
  if (i >= count_)
    return Status::InvalidArgument("entry index " + std::to_string(i) + " past the end of directory " +
                                   std::to_string(ino_));
  DAXFS_ASSIGN_OR_RETURN(DirEntry e, compact_ ? image_->compact_dirent_at(ino_, data_offset_, bytes_, i)
                                               : image_->dirent_at(ino_, data_offset_, i));
  DAXFS_RETURN_IF_ERROR(image_->CheckChild(ino_, e));
  return e;
}

bool Directory::raw_name(size_t i, std::string_view* out) const {
  const std::byte* base = image_->base_;
  if (compact_) {
    const std::byte* block = base + data_offset_;
    const auto de = fmt::Load<fmt::CompactDirent>(
        block + sizeof(fmt::CompactDirHeader) + uint64_t{i} * sizeof(fmt::CompactDirent));
    if (de.name_offset > bytes_ || de.name_len > bytes_ - de.name_offset) return false;
    *out = std::string_view(reinterpret_cast<const char*>(block + de.name_offset), de.name_len);
    return true;
  }
  const uint64_t base_size = image_->base_size_;
  const uint64_t off = data_offset_ + uint64_t{i} * fmt::kDirentStride;
  if (off > base_size || base_size - off < offsetof(fmt::Dirent, name)) return false;
  const uint16_t len = fmt::Load<uint16_t>(base + off + offsetof(fmt::Dirent, name_len));
  if (len > fmt::kNameMax || base_size - off - offsetof(fmt::Dirent, name) < len) return false;
  *out = std::string_view(reinterpret_cast<const char*>(base + off + offsetof(fmt::Dirent, name)), len);
  return true;
}

Result<DirEntry> Directory::find(std::string_view name) const {
  if (fmt::InvalidNameReason(name) != nullptr)
    return Status::NotFound("'" + std::string(name) + "' is not a valid name");
  // Probes compare raw names only (bounds-checked); the entry found is fully
  // validated by entry(). A corrupt order can make a lookup miss, nothing more.
  std::string_view probe;
  if (sorted_) {
    size_t lo = 0, hi = count_;
    while (lo < hi) {
      const size_t mid = lo + (hi - lo) / 2;
      if (!raw_name(mid, &probe)) return entry(mid).status();
      const int c = probe.compare(name);
      if (c == 0) return entry(mid);
      if (c < 0) lo = mid + 1;
      else hi = mid;
    }
  } else {
    for (size_t i = 0; i < count_; ++i) {
      if (!raw_name(i, &probe)) return entry(i).status();
      if (probe == name) return entry(i);
    }
  }
  return Status::NotFound("'" + std::string(name) + "' not found in directory inode " + std::to_string(ino_));
}

}  // namespace daxfs
