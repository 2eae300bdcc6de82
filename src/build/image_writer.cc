#include "build/image_writer.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>
#define XXH_STATIC_LINKING_ONLY
#include <xxhash.h>

#include <algorithm>
#include <cstring>
#include <ctime>

#include "daxfs/format.h"
#include "format/checksum.h"
#include "output/new_file.h"

namespace daxfs::build {

namespace fmt = daxfs::format;

namespace {

const std::byte kZeros[64 * 1024] = {};

Status PwriteAll(int fd, const std::byte* p, size_t n, uint64_t off, const std::string& name) {
  while (n > 0) {
    ssize_t w = pwrite(fd, p, n, static_cast<off_t>(off));
    if (w < 0) {
      if (errno == EINTR) continue;
      return Status::IOError(name + ": write at offset " + std::to_string(off), errno);
    }
    p += w;
    n -= static_cast<size_t>(w);
    off += static_cast<uint64_t>(w);
  }
  return Status::OK();
}

// Streams file data into the image through a large buffer, hashing every
// byte of the data area and leaving long zero runs as holes.
class StreamWriter final : public DataSink {
 public:
  StreamWriter(int fd, std::string name, uint64_t start, uint64_t base_offset,
               const BuildOptions& options, uint64_t files_total, uint64_t bytes_total)
      : fd_(fd), name_(std::move(name)), pos_(start), base_offset_(base_offset),
        options_(options), buf_(kBufferSize) {
    XXH3_64bits_reset(&hash_);
    progress_.phase = "writing";
    progress_.items_total = files_total;
    progress_.bytes_total = bytes_total;
  }

  Status BeginFile(const InodeRec& inode) override {
    const uint64_t want = base_offset_ + inode.data_offset;
    if (want != pos_ + fill_)
      return Status::InvalidArgument(name_ + ": internal error: data for inode " +
                                     std::to_string(inode.ino) + " arrives out of order");
    remaining_ = inode.size;
    return Status::OK();
  }

  Status Append(std::span<const std::byte> bytes) override {
    while (!bytes.empty()) {
      auto space = Reserve(bytes.size());
      std::memcpy(space.data(), bytes.data(), space.size());
      DAXFS_RETURN_IF_ERROR(Commit(space.size()));
      bytes = bytes.subspan(space.size());
    }
    return Status::OK();
  }

  Status AppendZeros(uint64_t n) override {
    if (n > remaining_) n = remaining_;
    remaining_ -= n;
    progress_.bytes_done += n;
    // Whole blocks of the run stay holes (the file was pre-sized with
    // zeros); only the partial blocks at its ends are written.
    const uint64_t start = position();
    const uint64_t hole_start = fmt::AlignUp(start, fmt::kBlockSize);
    const uint64_t hole_end = (start + n) / fmt::kBlockSize * fmt::kBlockSize;
    if (hole_end > hole_start) {
      BufferZeros(hole_start - start);
      DAXFS_RETURN_IF_ERROR(Flush());
      HashZeros(hole_end - hole_start);
      pos_ = hole_end;
      BufferZeros(start + n - hole_end);
      return write_error_;
    }
    BufferZeros(n);
    return write_error_;
  }

  std::span<std::byte> Reserve(size_t want) override {
    return ReserveRaw(static_cast<size_t>(std::min<uint64_t>(want, remaining_ ? remaining_ : 1)));
  }

  Status Commit(size_t n) override {
    if (!write_error_.ok()) return write_error_;
    if (n > remaining_) n = static_cast<size_t>(remaining_);
    fill_ += n;
    remaining_ -= n;
    progress_.bytes_done += n;
    return Status::OK();
  }

  Status EndFile() override {
    if (!write_error_.ok()) return write_error_;
    if (remaining_ != 0)
      return Status::IOError(name_ + ": internal error: file data incomplete", EIO);
    const uint64_t end = pos_ + fill_;
    uint64_t pad = fmt::AlignUp(end, fmt::kBlockSize) - end;
    while (pad > 0) {
      auto space = ReserveRaw(static_cast<size_t>(pad));
      std::memset(space.data(), 0, space.size());
      fill_ += space.size();
      pad -= space.size();
    }
    ++progress_.items_done;
    if (options_.progress && (progress_.items_done % 256 == 0 || fill_ == 0)) options_.progress(progress_);
    return Status::OK();
  }

  Status Flush() {
    if (fill_ == 0) return Status::OK();
    XXH3_64bits_update(&hash_, buf_.data(), fill_);
    DAXFS_RETURN_IF_ERROR(PwriteAll(fd_, buf_.data(), fill_, pos_, name_));
    pos_ += fill_;
    fill_ = 0;
    return Status::OK();
  }

  uint64_t position() const { return pos_ + fill_; }
  const Status& write_error() const { return write_error_; }
  uint64_t digest() { return XXH3_64bits_digest(&hash_); }

 private:
  static constexpr size_t kBufferSize = 8u << 20;

  std::span<std::byte> ReserveRaw(size_t want) {
    if (fill_ == buf_.size()) {
      // Reserve cannot return a Status: a write error is remembered and
      // reported by the next Commit, EndFile or Flush.
      write_error_ = Flush();
      if (!write_error_.ok()) fill_ = 0;
    }
    const size_t n = std::min(want, buf_.size() - fill_);
    return {buf_.data() + fill_, n};
  }

  void BufferZeros(uint64_t n) {
    while (n > 0) {
      auto space = ReserveRaw(static_cast<size_t>(n));
      std::memset(space.data(), 0, space.size());
      fill_ += space.size();
      n -= space.size();
    }
  }

  void HashZeros(uint64_t n) {
    while (n > 0) {
      const size_t k = static_cast<size_t>(std::min<uint64_t>(n, sizeof kZeros));
      XXH3_64bits_update(&hash_, kZeros, k);
      n -= k;
    }
  }

  int fd_;
  std::string name_;
  uint64_t pos_;           // file offset of buf_[0]
  uint64_t base_offset_;
  const BuildOptions& options_;
  std::vector<std::byte> buf_;
  size_t fill_ = 0;
  uint64_t remaining_ = 0;
  XXH3_state_t hash_;
  Status write_error_;
  BuildProgress progress_;
};

void SerializeMetadata(const Tree& tree, const Layout& layout, const BuildOptions& options,
                       std::vector<std::byte>* meta) {
  const uint64_t base = fmt::kBlockSize;
  meta->assign(base + layout.meta_size, std::byte{0});
  std::byte* b = meta->data() + base;

  fmt::BaseSuper bs{};
  bs.magic = fmt::kBaseMagic;
  bs.version = fmt::kVersion;
  bs.block_size = fmt::kBlockSize;
  bs.total_size = layout.base_size;
  bs.inode_offset = layout.inode_table;
  bs.inode_count = static_cast<uint32_t>(layout.by_ino.size());
  bs.root_inode = fmt::kRootIno;
  bs.data_offset = layout.meta_start;
  fmt::Store(b, bs);

  const bool ext = !options.upstream_only;
  for (uint32_t idx : layout.by_ino) {
    const InodeRec& r = tree.inodes[idx];
    fmt::Inode in{};
    in.ino = r.ino;
    in.mode = r.mode;
    in.uid = r.uid;
    in.gid = r.gid;
    in.size = r.size;
    in.data_offset = r.data_offset;
    in.nlink = r.nlink;
    if (ext) {
      in.mtime_sec = r.mtime_sec;
      in.mtime_nsec = r.mtime_nsec;
      in.rdev = r.rdev;
      in.xattr_ref = r.xattr_ref;
      if (S_ISDIR(r.mode)) {
        const Node& node = tree.nodes[layout.dir_node[idx]];
        in.parent = tree.inodes[tree.nodes[node.parent].inode].ino;
      }
    }
    fmt::Store(b + layout.inode_table + uint64_t{r.ino - 1} * fmt::kInodeSize, in);
    if (S_ISDIR(r.mode)) {
      const Node& node = tree.nodes[layout.dir_node[idx]];
      std::byte* d = b + r.data_offset;
      for (uint32_t c : node.children) {
        const Node& child = tree.nodes[c];
        const InodeRec& ci = tree.inodes[child.inode];
        fmt::Dirent de{};
        de.ino = ci.ino;
        de.mode = ci.mode;
        de.name_len = static_cast<uint16_t>(child.name.size());
        std::memcpy(de.name, child.name.data(), child.name.size());
        fmt::Store(d, de);
        d += fmt::kDirentStride;
      }
    } else if (S_ISLNK(r.mode)) {
      std::memcpy(b + r.data_offset, r.target.data(), r.target.size());
    }
  }
  if (!layout.xattr_area.empty())
    std::memcpy(b + layout.xattr_offset, layout.xattr_area.data(), layout.xattr_area.size());
}

void FillSuperblock(const Layout& layout, const BuildOptions& options, uint64_t meta_csum,
                    uint64_t data_csum, std::byte* out) {
  fmt::Superblock sb{};
  sb.magic = fmt::kSuperMagic;
  sb.version = fmt::kVersion;
  sb.block_size = fmt::kBlockSize;
  sb.total_size = layout.total_size;
  sb.base_offset = fmt::kBlockSize;
  sb.base_size = layout.base_size;
  sb.next_inode_id = layout.by_ino.size() + 1;  // as upstream mkdaxfs writes
  if (!options.upstream_only) {
    auto& e = sb.ext;
    e.magic = fmt::kExtMagic;
    e.version = fmt::kExtVersion;
    e.features_compat = fmt::kFeatureSortedDirs | fmt::kFeatureInodeExt | fmt::kFeatureMetaCsum |
                        fmt::kFeatureDataCsum;
    if (!layout.xattr_area.empty()) {
      e.features_compat |= fmt::kFeatureXattrs;
      e.xattr_offset = layout.xattr_offset;
      e.xattr_size = layout.xattr_area.size();
    }
    e.meta_size = layout.meta_size;
    e.meta_csum = meta_csum;
    e.data_csum = data_csum;
    e.build_time = options.all_time ? *options.all_time
                   : options.clamp_time ? *options.clamp_time
                                        : static_cast<int64_t>(std::time(nullptr));
    e.file_count = layout.dirent_count;
    std::memcpy(e.label, options.label.data(), std::min(options.label.size(), sizeof e.label));
  }
  fmt::Store(out, sb);
  if (!options.upstream_only) {
    const uint64_t csum = fmt::SuperChecksum(out);
    std::memcpy(out + offsetof(fmt::Superblock, ext.super_csum), &csum, sizeof csum);
  }
}

}  // namespace

Status WriteImage(const Tree& tree, const Layout& layout, Source* source,
                  const std::string& output, const BuildOptions& options) {
  // Nothing has a name until the image is complete (see output/new_file.h).
  DAXFS_ASSIGN_OR_RETURN(auto out, output::NewFile::Create(output, 0644));
  const int fd = out->fd();
  if (ftruncate(fd, static_cast<off_t>(layout.total_size)) != 0)
    return Status::IOError(output + ": cannot size image to " + std::to_string(layout.total_size) +
                               " bytes", errno);
  std::vector<std::byte> meta;
  SerializeMetadata(tree, layout, options, &meta);

  StreamWriter writer(fd, output, fmt::kBlockSize + layout.meta_size, fmt::kBlockSize, options,
                      layout.data_order.size(), layout.stats.file_bytes);
  DAXFS_RETURN_IF_ERROR(source->EmitData(tree, layout.data_order, &writer));
  DAXFS_RETURN_IF_ERROR(writer.write_error());
  DAXFS_RETURN_IF_ERROR(writer.Flush());
  if (writer.position() != layout.total_size)
    return Status::IOError(output + ": internal error: data ends at " +
                               std::to_string(writer.position()) + ", expected " +
                               std::to_string(layout.total_size), EIO);

  const uint64_t meta_csum = XXH3_64bits(meta.data() + fmt::kBlockSize, layout.meta_size);
  FillSuperblock(layout, options, meta_csum, writer.digest(), meta.data());
  DAXFS_RETURN_IF_ERROR(PwriteAll(fd, meta.data(), meta.size(), 0, output));
  // Images are shared read-only: make the file read-only for group/other.
  if (fchmod(fd, 0644) != 0) return Status::IOError(output + ": chmod", errno);
  return out->Publish();
}

}  // namespace daxfs::build
