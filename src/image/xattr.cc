// Extended attributes: records in the xattr area, referenced from inodes.
#include <algorithm>
#include <cerrno>
#include <set>

#include "daxfs/format.h"
#include "daxfs/image.h"

namespace daxfs {

namespace fmt = daxfs::format;

Status Image::list_xattrs(
    Ino ino,
    const std::function<void(std::string_view, std::span<const std::byte>)>& fn) const {
  DAXFS_ASSIGN_OR_RETURN(format::Inode r, inode(ino));
  if (r.xattr_ref == 0) return Status::OK();
  auto bad = [&](const std::string& what) {
    return Status::Corruption(region_->name() + ": inode " + std::to_string(ino) +
                              ": xattr record at area offset " + std::to_string(r.xattr_ref) +
                              ": " + what);
  };
  if (xattr_size_ == 0) return bad("image has no xattr area");
  if (r.xattr_ref < sizeof(fmt::XattrAreaHeader) ||
      r.xattr_ref > xattr_size_ - sizeof(fmt::XattrRecordHeader))
    return bad("outside the xattr area");
  const std::byte* area = base_ + xattr_offset_;
  const auto rec = fmt::Load<fmt::XattrRecordHeader>(area + r.xattr_ref);
  if (rec.size < sizeof rec || rec.size > xattr_size_ - r.xattr_ref)
    return bad("record size " + std::to_string(rec.size) + " out of bounds");
  const std::byte* p = area + r.xattr_ref + sizeof rec;
  const std::byte* end = area + r.xattr_ref + rec.size;
  std::string_view prev;
  for (uint32_t i = 0; i < rec.count; ++i) {
    if (end - p < static_cast<ptrdiff_t>(sizeof(fmt::XattrEntryHeader)))
      return bad("entry " + std::to_string(i) + " runs past the record");
    const auto h = fmt::Load<fmt::XattrEntryHeader>(p);
    p += sizeof h;
    if (h.name_len == 0 || h.name_len > fmt::kXattrNameMax || h.value_len > fmt::kXattrValueMax ||
        static_cast<uint64_t>(end - p) < uint64_t{h.name_len} + h.value_len)
      return bad("entry " + std::to_string(i) + " has bad lengths");
    std::string_view name(reinterpret_cast<const char*>(p), h.name_len);
    if (name.find('\0') != std::string_view::npos) return bad("name contains NUL");
    if (i > 0 && !(prev < name)) return bad("names not sorted or duplicated");
    prev = name;
    fn(name, std::span<const std::byte>(p + h.name_len, h.value_len));
    p += h.name_len + h.value_len;
  }
  return Status::OK();
}

Result<std::span<const std::byte>> Image::getxattr(Ino ino, std::string_view name) const {
  std::span<const std::byte> value;
  bool found = false;
  DAXFS_RETURN_IF_ERROR(list_xattrs(ino, [&](std::string_view n, std::span<const std::byte> v) {
    if (!found && n == name) {
      value = v;
      found = true;
    }
  }));
  if (!found)
    return Status::FromErrno(ENODATA, "inode " + std::to_string(ino) + " has no xattr '" +
                                          std::string(name) + "'");
  return value;
}

Result<std::vector<std::string>> Image::xattr_names() const {
  std::set<std::string, std::less<>> names;
  if (xattr_size_ == 0) return std::vector<std::string>{};
  const std::byte* area = base_ + xattr_offset_;
  auto bad = [&](uint64_t at, const std::string& what) {
    return Status::Corruption(region_->name() + ": xattr area offset " + std::to_string(at) + ": " + what);
  };
  const auto head = fmt::Load<fmt::XattrAreaHeader>(area);
  if (head.magic != fmt::kXattrMagic) return bad(0, "bad magic");
  uint64_t at = sizeof head;
  while (at < xattr_size_) {
    if (xattr_size_ - at < sizeof(fmt::XattrRecordHeader)) return bad(at, "record header runs past the area");
    const auto rec = fmt::Load<fmt::XattrRecordHeader>(area + at);
    if (rec.size < sizeof rec || rec.size > xattr_size_ - at)
      return bad(at, "record size " + std::to_string(rec.size) + " out of bounds");
    const std::byte* p = area + at + sizeof rec;
    const std::byte* end = area + at + rec.size;
    for (uint32_t i = 0; i < rec.count; ++i) {
      if (end - p < static_cast<ptrdiff_t>(sizeof(fmt::XattrEntryHeader)))
        return bad(at, "entry " + std::to_string(i) + " runs past the record");
      const auto h = fmt::Load<fmt::XattrEntryHeader>(p);
      p += sizeof h;
      if (h.name_len == 0 || h.name_len > fmt::kXattrNameMax ||
          static_cast<uint64_t>(end - p) < uint64_t{h.name_len} + h.value_len)
        return bad(at, "entry " + std::to_string(i) + " has bad lengths");
      std::string_view name(reinterpret_cast<const char*>(p), h.name_len);
      if (names.find(name) == names.end()) names.emplace(name);
      p += h.name_len + h.value_len;
    }
    at = fmt::AlignUp(at + rec.size, 8);
  }
  return std::vector<std::string>(names.begin(), names.end());
}

}  // namespace daxfs
