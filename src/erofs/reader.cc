// An FsView over EROFS bytes (include/daxfs/erofs.h).
#include <sys/stat.h>

#include <algorithm>
#include <cstring>
#include <string>
#include <vector>

#include "daxfs/erofs.h"
#include "daxfs/erofs_format.h"

namespace daxfs {

namespace {

namespace ef = daxfs::erofs;

constexpr uint64_t kBlk = ef::kBlockSize;

template <typename T>
T LoadAt(std::span<const std::byte> b, uint64_t off) {
  T v;
  std::memcpy(&v, b.data() + off, sizeof v);
  return v;
}

// One inode, decoded.
struct Inode {
  uint64_t nid = 0;
  uint16_t layout = 0;
  uint32_t mode = 0;
  uint32_t uid = 0, gid = 0, nlink = 0;
  uint64_t size = 0;
  uint32_t i_u = 0;
  int64_t mtime_sec = 0;
  uint32_t mtime_nsec = 0;
  uint64_t pos = 0;           // absolute offset of the inode
  uint64_t inode_size = 0;    // 32 or 64
  uint64_t xattr_size = 0;    // inline xattr body
};

class ErofsFs final : public FsView {
 public:
  ErofsFs(std::span<const std::byte> b, std::shared_ptr<const void> owner, std::string name)
      : b_(b), owner_(std::move(owner)), name_(std::move(name)) {}

  Status Init() {
    if (!HasErofsSuperblock(b_)) return Status::Corruption(name_ + ": no EROFS superblock at byte 1024");
    sb_ = LoadAt<ef::SuperBlock>(b_, ef::kSuperOffset);
    if (sb_.blkszbits != ef::kBlockBits)
      return Status::NotSupported(name_ + ": EROFS block size 2^" + std::to_string(sb_.blkszbits) +
                                  " (only 4 KiB blocks are read)");
    if ((sb_.feature_incompat & ~ef::kIncompatChunkedFile) != 0)
      return Status::NotSupported(name_ + ": EROFS incompatible features 0x" + Hex(sb_.feature_incompat) +
                                  " (compressed or multi-device images are not read)");
    meta_ = uint64_t{sb_.meta_blkaddr} * kBlk;
    if (meta_ >= b_.size()) return Status::Corruption(name_ + ": EROFS meta_blkaddr beyond the image");
    return Status::OK();
  }

  Ino root() const override { return uint64_t{sb_.root_nid} + 1; }

  Result<FsAttr> stat(Ino ino) const override {
    DAXFS_ASSIGN_OR_RETURN(Inode in, Load(ino));
    FsAttr a;
    a.ino = ino;
    a.mode = in.mode;
    a.uid = in.uid;
    a.gid = in.gid;
    a.nlink = in.nlink;
    a.size = in.size;
    a.blocks = (in.size + 511) / 512;
    a.mtime_sec = a.atime_sec = a.ctime_sec = in.mtime_sec;
    a.mtime_nsec = a.atime_nsec = a.ctime_nsec = in.mtime_nsec;
    if (S_ISCHR(in.mode) || S_ISBLK(in.mode)) {
      a.rdev_major = (in.i_u & 0xfff00) >> 8;
      a.rdev_minor = (in.i_u & 0xff) | ((in.i_u >> 12) & 0xfff00);
    }
    return a;
  }

  Result<Ino> lookup(Ino dir, std::string_view name) const override {
    DAXFS_ASSIGN_OR_RETURN(auto entries, Entries(dir, true));
    for (const auto& e : entries)
      if (e.name == name) return e.ino;
    return Status::NotFound(name_ + ": EROFS nid " + std::to_string(dir - 1) + ": no entry '" + std::string(name) + "'");
  }

  Result<std::unique_ptr<DirCursor>> opendir(Ino dir) const override {
    DAXFS_ASSIGN_OR_RETURN(auto entries, Entries(dir, false));
    class Cursor final : public DirCursor {
     public:
      explicit Cursor(std::vector<FsDirEntry> e) : e_(std::move(e)) {}
      Result<std::optional<FsDirEntry>> next() override {
        if (i_ >= e_.size()) return std::optional<FsDirEntry>{};
        return std::optional<FsDirEntry>{e_[i_++]};
      }

     private:
      std::vector<FsDirEntry> e_;
      size_t i_ = 0;
    };
    return std::unique_ptr<DirCursor>(new Cursor(std::move(entries)));
  }

  Result<std::string> readlink(Ino ino) const override {
    DAXFS_ASSIGN_OR_RETURN(Inode in, Load(ino));
    if (!S_ISLNK(in.mode)) return Status::InvalidArgument(name_ + ": EROFS nid " + std::to_string(in.nid) + " is not a symlink");
    if (in.size > 4095) return Corrupt(in, "symlink target longer than 4095 bytes");
    std::string out;
    for (uint64_t at = 0; at < in.size;) {
      DAXFS_ASSIGN_OR_RETURN(auto s, Data(in, at, in.size - at));
      out.append(reinterpret_cast<const char*>(s.data()), s.size());
      at += s.size();
    }
    return out;
  }

  Result<std::span<const std::byte>> read(Ino ino, uint64_t offset, size_t len) const override {
    DAXFS_ASSIGN_OR_RETURN(Inode in, Load(ino));
    if (S_ISDIR(in.mode)) return Status::FromErrno(EISDIR, name_ + ": EROFS nid " + std::to_string(in.nid) + " is a directory");
    if (offset >= in.size || len == 0) return std::span<const std::byte>{};
    return Data(in, offset, std::min<uint64_t>(len, in.size - offset));
  }

  Status list_xattrs(Ino ino,
                     const std::function<void(std::string_view, std::span<const std::byte>)>& fn) const override {
    DAXFS_ASSIGN_OR_RETURN(Inode in, Load(ino));
    std::vector<std::pair<std::string, std::span<const std::byte>>> all;
    DAXFS_RETURN_IF_ERROR(Xattrs(in, &all));
    std::sort(all.begin(), all.end(), [](const auto& a, const auto& b) { return a.first < b.first; });
    for (const auto& [n, v] : all) fn(n, v);
    return Status::OK();
  }

  Result<std::span<const std::byte>> getxattr(Ino ino, std::string_view name) const override {
    DAXFS_ASSIGN_OR_RETURN(Inode in, Load(ino));
    std::vector<std::pair<std::string, std::span<const std::byte>>> all;
    DAXFS_RETURN_IF_ERROR(Xattrs(in, &all));
    for (const auto& [n, v] : all)
      if (n == name) return v;
    return Status::FromErrno(ENODATA, name_ + ": EROFS nid " + std::to_string(in.nid) + ": no xattr " + std::string(name));
  }

 private:
  static std::string Hex(uint64_t v) {
    char buf[24];
    std::snprintf(buf, sizeof buf, "%llx", static_cast<unsigned long long>(v));
    return buf;
  }
  Status Corrupt(const Inode& in, const std::string& what) const {
    return Status::Corruption(name_ + ": EROFS nid " + std::to_string(in.nid) + " (offset " +
                              std::to_string(in.pos) + "): " + what);
  }

  Result<Inode> Load(Ino ino) const {
    Inode in;
    if (ino == 0) return Status::InvalidArgument(name_ + ": EROFS inode number 0");
    in.nid = ino - 1;
    if (in.nid > (b_.size() - meta_) >> ef::kSlotBits)
      return Status::Corruption(name_ + ": EROFS nid " + std::to_string(in.nid) + " beyond the image");
    in.pos = meta_ + (in.nid << ef::kSlotBits);
    if (in.pos + 32 > b_.size()) return Corrupt(in, "inode beyond the image");
    const uint16_t format = LoadAt<uint16_t>(b_, in.pos);
    const uint16_t icount = LoadAt<uint16_t>(b_, in.pos + 2);
    in.layout = ef::LayoutOf(format);
    if (format & ef::kInodeExtended) {
      if (in.pos + 64 > b_.size()) return Corrupt(in, "inode beyond the image");
      const auto x = LoadAt<ef::InodeExtended>(b_, in.pos);
      in.inode_size = 64;
      in.mode = x.i_mode;
      in.size = x.i_size;
      in.i_u = x.i_u;
      in.uid = x.i_uid;
      in.gid = x.i_gid;
      in.mtime_sec = static_cast<int64_t>(x.i_mtime);
      in.mtime_nsec = x.i_mtime_nsec;
      in.nlink = x.i_nlink;
    } else {
      // Compact inode: 16-bit ids and link count, 32-bit size, the
      // superblock's build time as mtime.
      in.inode_size = 32;
      in.mode = LoadAt<uint16_t>(b_, in.pos + 4);
      in.nlink = LoadAt<uint16_t>(b_, in.pos + 6);
      in.size = LoadAt<uint32_t>(b_, in.pos + 8);
      in.i_u = LoadAt<uint32_t>(b_, in.pos + 16);
      in.uid = LoadAt<uint16_t>(b_, in.pos + 24);
      in.gid = LoadAt<uint16_t>(b_, in.pos + 26);
      in.mtime_sec = static_cast<int64_t>(sb_.build_time);
      in.mtime_nsec = sb_.build_time_nsec;
    }
    in.xattr_size = icount == 0 ? 0 : sizeof(ef::XattrBodyHeader) + uint64_t{icount - 1u} * 4;
    if (in.layout != ef::kLayoutFlatPlain && in.layout != ef::kLayoutFlatInline &&
        in.layout != ef::kLayoutChunkBased)
      return Status::NotSupported(name_ + ": EROFS nid " + std::to_string(in.nid) + ": data layout " +
                                  std::to_string(in.layout) + " (compressed) is not read");
    if (in.layout == ef::kLayoutChunkBased &&
        (!S_ISREG(in.mode) || !(sb_.feature_incompat & ef::kIncompatChunkedFile)))
      return Corrupt(in, "chunk-based data layout on a non-file or without the chunked-file feature");
    if (in.pos + in.inode_size + in.xattr_size > b_.size()) return Corrupt(in, "xattrs beyond the image");
    switch (in.mode & S_IFMT) {
      case S_IFREG: case S_IFDIR: case S_IFLNK: case S_IFCHR: case S_IFBLK: case S_IFIFO: case S_IFSOCK: break;
      default: return Corrupt(in, "bad file type in mode " + std::to_string(in.mode));
    }
    return in;
  }

  // Bytes [at, at + len) of an inode's data, or fewer (one contiguous run).
  Result<std::span<const std::byte>> Data(const Inode& in, uint64_t at, uint64_t len) const {
    if (at >= in.size) return std::span<const std::byte>{};
    len = std::min(len, in.size - at);
    if (in.layout == ef::kLayoutChunkBased) return ChunkData(in, at, len);
    // Flat inline: whole blocks from raw_blkaddr, the tail after the inode.
    const uint64_t tail = in.layout == ef::kLayoutFlatInline ? in.size % kBlk : 0;
    const uint64_t in_blocks = in.size - tail;
    if (at < in_blocks) {
      const uint64_t start = uint64_t{in.i_u} * kBlk;
      if (start > b_.size() || in_blocks > b_.size() - start) return Corrupt(in, "data blocks beyond the image");
      return b_.subspan(start + at, std::min(len, in_blocks - at));
    }
    const uint64_t tail_at = in.pos + in.inode_size + in.xattr_size;
    if (tail_at % kBlk + tail > kBlk) return Corrupt(in, "inline data crosses a block boundary");
    if (tail_at + tail > b_.size()) return Corrupt(in, "inline data beyond the image");
    return b_.subspan(tail_at + (at - in_blocks), len);
  }

  // Chunk-based files: each chunk's blocks, or zeros for a hole.
  Result<std::span<const std::byte>> ChunkData(const Inode& in, uint64_t at, uint64_t len) const {
    const uint32_t bits = ef::kBlockBits + (in.i_u & ef::kChunkBlkbitsMask);
    const uint64_t unit = in.i_u & ef::kChunkIndexes ? 8 : 4;
    const uint64_t chunk = at >> bits;
    const uint64_t entry = ((in.pos + in.inode_size + in.xattr_size + unit - 1) & ~(unit - 1)) + chunk * unit;
    if (entry + unit > b_.size()) return Corrupt(in, "chunk map beyond the image");
    // An 8-byte index keeps its block address in the last 4 bytes.
    const uint32_t blkaddr = LoadAt<uint32_t>(b_, entry + (unit == 8 ? 4 : 0));
    if (unit == 8 && LoadAt<uint16_t>(b_, entry + 2) != 0)
      return Status::NotSupported(name_ + ": EROFS nid " + std::to_string(in.nid) + ": chunks on other devices are not read");
    const uint64_t chunk_end = (chunk + 1) << bits;
    len = std::min(len, chunk_end - at);
    if (blkaddr == ef::kNullAddr) return ZeroPage().first(std::min<uint64_t>(len, ZeroPage().size()));
    const uint64_t start = (uint64_t{blkaddr} << ef::kBlockBits) + (at - (chunk << bits));
    if (start > b_.size() || len > b_.size() - start) return Corrupt(in, "chunk data beyond the image");
    return b_.subspan(start, len);
  }

  Result<std::vector<FsDirEntry>> Entries(Ino dir, bool with_dots) const {
    DAXFS_ASSIGN_OR_RETURN(Inode in, Load(dir));
    if (!S_ISDIR(in.mode)) return Status::FromErrno(ENOTDIR, name_ + ": EROFS nid " + std::to_string(in.nid) + " is not a directory");
    std::vector<FsDirEntry> out;
    for (uint64_t at = 0; at < in.size; at += kBlk) {
      const uint64_t max = std::min<uint64_t>(kBlk, in.size - at);
      DAXFS_ASSIGN_OR_RETURN(auto blk, Data(in, at, max));
      if (blk.size() != max) return Corrupt(in, "directory block at " + std::to_string(at) + " is split");
      if (max < sizeof(ef::Dirent)) return Corrupt(in, "directory block at " + std::to_string(at) + " too short");
      const uint16_t first = LoadAt<uint16_t>(blk, 8);
      if (first < sizeof(ef::Dirent) || first >= max || first % sizeof(ef::Dirent) != 0)
        return Corrupt(in, "directory block at " + std::to_string(at) + ": bad first name offset " + std::to_string(first));
      const size_t count = first / sizeof(ef::Dirent);
      for (size_t i = 0; i < count; ++i) {
        const auto d = LoadAt<ef::Dirent>(blk, i * sizeof(ef::Dirent));
        uint64_t end = i + 1 < count ? LoadAt<uint16_t>(blk, (i + 1) * sizeof(ef::Dirent) + 8) : max;
        if (d.nameoff < first || end > max || d.nameoff >= end)
          return Corrupt(in, "directory block at " + std::to_string(at) + ": bad name offsets of entry " + std::to_string(i));
        std::string_view name(reinterpret_cast<const char*>(blk.data()) + d.nameoff, end - d.nameoff);
        if (i + 1 == count) name = name.substr(0, name.find('\0'));  // the last name may be NUL padded
        if (name.empty() || name.size() > 255 || name.find('/') != std::string_view::npos)
          return Corrupt(in, "directory block at " + std::to_string(at) + ": bad name of entry " + std::to_string(i));
        if (!with_dots && (name == "." || name == "..")) continue;
        FsDirEntry e;
        e.name = std::string(name);
        e.ino = d.nid + 1;
        static constexpr uint32_t kTypes[] = {0, S_IFREG, S_IFDIR, S_IFCHR, S_IFBLK, S_IFIFO, S_IFSOCK, S_IFLNK};
        e.mode = d.file_type < 8 ? kTypes[d.file_type] : 0;
        out.push_back(std::move(e));
      }
    }
    return out;
  }

  Status Xattrs(const Inode& in, std::vector<std::pair<std::string, std::span<const std::byte>>>* out) const {
    if (in.xattr_size == 0) return Status::OK();
    const uint64_t body = in.pos + in.inode_size;
    const uint64_t end = body + in.xattr_size;
    const uint8_t shared = LoadAt<uint8_t>(b_, body + 4);
    uint64_t at = body + sizeof(ef::XattrBodyHeader) + uint64_t{shared} * 4;
    if (at > end) return Corrupt(in, "shared xattr ids beyond the xattr body");
    auto entry = [&](uint64_t off, uint64_t limit, uint64_t* next) -> Status {
      if (off + sizeof(ef::XattrEntry) > limit) return Corrupt(in, "xattr entry at " + std::to_string(off) + " truncated");
      const auto e = LoadAt<ef::XattrEntry>(b_, off);
      const uint64_t total = sizeof e + e.e_name_len + e.e_value_size;
      if (off + total > limit) return Corrupt(in, "xattr entry at " + std::to_string(off) + " beyond its area");
      static const char* const kPrefix[] = {nullptr, "user.", "system.posix_acl_access", "system.posix_acl_default",
                                            "trusted.", nullptr, "security."};
      if (e.e_name_index >= 7 || kPrefix[e.e_name_index] == nullptr)
        return Status::NotSupported(name_ + ": EROFS nid " + std::to_string(in.nid) + ": xattr name index " +
                                    std::to_string(e.e_name_index) + " is not read");
      std::string name = kPrefix[e.e_name_index];
      name.append(reinterpret_cast<const char*>(b_.data() + off + sizeof e), e.e_name_len);
      out->emplace_back(std::move(name), b_.subspan(off + sizeof e + e.e_name_len, e.e_value_size));
      *next = off + ((total + 3) & ~uint64_t{3});
      return Status::OK();
    };
    for (uint8_t i = 0; i < shared; ++i) {
      const uint32_t id = LoadAt<uint32_t>(b_, body + sizeof(ef::XattrBodyHeader) + uint64_t{i} * 4);
      const uint64_t off = uint64_t{sb_.xattr_blkaddr} * kBlk + uint64_t{id} * 4;
      uint64_t ignored;
      DAXFS_RETURN_IF_ERROR(entry(off, b_.size(), &ignored));
    }
    while (at + sizeof(ef::XattrEntry) <= end) DAXFS_RETURN_IF_ERROR(entry(at, end, &at));
    return Status::OK();
  }

  std::span<const std::byte> b_;
  std::shared_ptr<const void> owner_;
  std::string name_;
  ef::SuperBlock sb_{};
  uint64_t meta_ = 0;
};

}  // namespace

bool HasErofsSuperblock(std::span<const std::byte> bytes) {
  if (bytes.size() < ef::kSuperOffset + sizeof(ef::SuperBlock)) return false;
  return LoadAt<uint32_t>(bytes, ef::kSuperOffset) == ef::kMagic;
}

Result<std::shared_ptr<const FsView>> OpenErofsView(std::span<const std::byte> bytes,
                                                    std::shared_ptr<const void> owner, std::string name) {
  auto fs = std::make_shared<ErofsFs>(bytes, std::move(owner), std::move(name));
  DAXFS_RETURN_IF_ERROR(fs->Init());
  return std::shared_ptr<const FsView>(std::move(fs));
}

}  // namespace daxfs
