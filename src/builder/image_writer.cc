#include "builder/image_writer.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>
#define XXH_STATIC_LINKING_ONLY
#include <xxhash.h>

#include <algorithm>
#include <cstring>
#include <ctime>
#include <optional>

#include "builder/data_writer.h"
#include "builder/erofs_view.h"
#include "builder/object_sink.h"
#include "daxfs/format.h"
#include "format/checksum.h"
#include "output/new_file.h"
#include "util/file_io.h"

namespace daxfs::build {

namespace fmt = daxfs::format;

namespace {

// Writes one directory's entries (children already sorted by name).
void SerializeDirectory(const Tree& tree, const Node& node, bool compact, std::byte* d) {
  if (!compact) {
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
    return;
  }
  const auto count = static_cast<uint32_t>(node.children.size());
  fmt::Store(d, fmt::CompactDirHeader{count, 0});
  std::byte* entry = d + sizeof(fmt::CompactDirHeader);
  uint64_t name_at = sizeof(fmt::CompactDirHeader) + uint64_t{count} * sizeof(fmt::CompactDirent);
  for (uint32_t c : node.children) {
    const Node& child = tree.nodes[c];
    const InodeRec& ci = tree.inodes[child.inode];
    fmt::CompactDirent de{};
    de.ino = ci.ino;
    de.name_offset = static_cast<uint32_t>(name_at);
    de.name_len = static_cast<uint8_t>(child.name.size());
    de.type = static_cast<uint8_t>((ci.mode & S_IFMT) >> 12);
    fmt::Store(entry, de);
    entry += sizeof(fmt::CompactDirent);
    std::memcpy(d + name_at, child.name.data(), child.name.size());
    name_at += child.name.size();
  }
}

void SerializeMetadata(const Tree& tree, const Layout& layout, const BuildOptions& options,
                       const DataPlacement& data, const std::vector<objects::Digest>& digests,
                       std::vector<std::byte>* meta) {
  const uint64_t base = fmt::kBlockSize;
  meta->assign(base + layout.meta_size, std::byte{0});
  std::byte* b = meta->data() + base;

  fmt::BaseSuper bs{};
  bs.magic = fmt::kBaseMagic;
  bs.version = fmt::kVersion;
  bs.block_size = fmt::kBlockSize;
  bs.total_size = data.data_end;
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
    in.data_offset = S_ISREG(r.mode) && !layout.objects ? data.offset_by_ino[r.ino] : r.data_offset;
    if (S_ISREG(r.mode) && layout.objects && r.size > 0)
      fmt::Store(b + r.data_offset, digests[r.ino]);
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
    if (S_ISDIR(r.mode) && r.size > 0) {
      SerializeDirectory(tree, tree.nodes[layout.dir_node[idx]], layout.compact_dirs,
                         b + r.data_offset);
    } else if (S_ISLNK(r.mode)) {
      std::memcpy(b + r.data_offset, r.target.data(), r.target.size());
    }
  }
  if (!layout.xattr_area.empty())
    std::memcpy(b + layout.xattr_offset, layout.xattr_area.data(), layout.xattr_area.size());
  if (layout.objects)
    std::memcpy(b + layout.object_dir_offset, options.object_dir.data(), options.object_dir.size());
  if (layout.container_config_offset != 0)
    std::memcpy(b + layout.container_config_offset, options.container_config.data(), options.container_config.size());
}

// XXH3-64 of the image file's bytes [begin, end).
Result<uint64_t> HashRange(int fd, const std::string& name, uint64_t begin, uint64_t end) {
  XXH3_state_t state;
  XXH3_64bits_reset(&state);
  std::vector<std::byte> buf(8u << 20);
  for (uint64_t at = begin; at < end;) {
    const size_t n = static_cast<size_t>(std::min<uint64_t>(buf.size(), end - at));
    const ssize_t got = pread(fd, buf.data(), n, static_cast<off_t>(at));
    if (got < 0 && errno == EINTR) continue;
    if (got <= 0) return Status::IOError(name + ": reading back offset " + std::to_string(at), got < 0 ? errno : EIO);
    XXH3_64bits_update(&state, buf.data(), static_cast<size_t>(got));
    at += static_cast<uint64_t>(got);
  }
  return XXH3_64bits_digest(&state);
}

constexpr uint64_t kErofsAutoPercent = 5;

int64_t BuildTime(const BuildOptions& options) {
  return options.all_time ? *options.all_time
         : options.clamp_time ? *options.clamp_time
                              : static_cast<int64_t>(std::time(nullptr));
}

void FillSuperblock(const Layout& layout, const BuildOptions& options, uint64_t meta_csum,
                    const DataPlacement& data, bool erofs_view, uint64_t erofs_csum, std::byte* out) {
  fmt::Superblock sb{};
  sb.magic = fmt::kSuperMagic;
  sb.version = layout.compact_dirs || layout.objects ? fmt::kVersionIncompat : fmt::kVersion;
  sb.block_size = fmt::kBlockSize;
  sb.total_size = fmt::kBlockSize + data.data_end;
  sb.base_offset = fmt::kBlockSize;
  sb.base_size = data.data_end;
  sb.next_inode_id = layout.by_ino.size() + 1;  // as upstream mkdaxfs writes
  if (!options.upstream_only) {
    auto& e = sb.ext;
    e.magic = fmt::kExtMagic;
    e.version = fmt::kExtVersion;
    e.features_compat = fmt::kFeatureSortedDirs | fmt::kFeatureInodeExt | fmt::kFeatureMetaCsum |
                        fmt::kFeatureDataCsum;
    if (layout.compact_dirs) e.features_incompat |= fmt::kFeatureCompactDirs;
    if (layout.objects) {
      e.features_incompat |= fmt::kFeatureObjects;
      const uint64_t off = layout.object_dir_offset, len = options.object_dir.size();
      std::memcpy(e.reserved + fmt::kExtObjectDirOffset, &off, 8);
      std::memcpy(e.reserved + fmt::kExtObjectDirLength, &len, 8);
    }
    if (layout.container_config_offset != 0) {
      e.features_compat |= fmt::kFeatureContainerConfig;
      const uint64_t off = layout.container_config_offset, len = options.container_config.size();
      std::memcpy(e.reserved + fmt::kExtContainerConfigOffset, &off, 8);
      std::memcpy(e.reserved + fmt::kExtContainerConfigLength, &len, 8);
    }
    if (!layout.xattr_area.empty()) {
      e.features_compat |= fmt::kFeatureXattrs;
      e.xattr_offset = layout.xattr_offset;
      e.xattr_size = layout.xattr_area.size();
    }
    e.meta_size = layout.meta_size;
    e.meta_csum = meta_csum;
    e.data_csum = data.checksum;
    e.build_time = BuildTime(options);
    if (erofs_view) {
      e.features_compat |= fmt::kFeatureErofsView;
      std::memcpy(e.reserved + fmt::kExtErofsChecksum, &erofs_csum, 8);
    }
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
                  const std::string& output, const BuildOptions& options, BuildStats* stats) {
  // Nothing has a name until the image is complete (see output/new_file.h).
  DAXFS_ASSIGN_OR_RETURN(auto out, output::NewFile::Create(output, 0644));
  const int fd = out->fd();
  const auto inode_count = static_cast<uint32_t>(layout.by_ino.size());
  DataPlacement data;
  std::vector<objects::Digest> digests;
  // The EROFS view, decided before any data is written (small files are
  // placed differently with one).
  bool with_erofs = options.erofs != BuildOptions::Erofs::kNever;
  if (with_erofs) {
    Status can = options.upstream_only ? Status::NotSupported("plain upstream images have no EROFS view")
                                       : ErofsRepresentable(tree, layout);
    // By default the view is written when it costs at most 5% of the image
    // (measured: 0.1-2% on system trees; up to 80% on trees of tiny files,
    // where each file's own 64-byte EROFS inode doubles the metadata).
    if (can.ok() && options.erofs == BuildOptions::Erofs::kAuto) {
      const uint64_t cost = ErofsMetadataEstimate(tree, layout);
      const uint64_t image = layout.meta_size + layout.stats.file_bytes;
      if (cost * 100 > image * kErofsAutoPercent)
        can = Status::NotSupported("it would add about " + std::to_string(cost * 100 / std::max<uint64_t>(image, 1)) +
                                   "% to this image (many small files: EROFS needs an inode of its own per file); "
                                   "--erofs writes it anyway");
    }
    if (!can.ok()) {
      if (options.erofs == BuildOptions::Erofs::kAlways)
        return Status::NotSupported(output + ": EROFS view: " + can.message());
      with_erofs = false;
      stats->erofs_skipped = can.message();
    }
  }
  if (layout.objects) {
    // File data goes to the object directory; the image ends with its metadata.
    ObjectSink sink(options.object_dir, inode_count, options, layout.data_order.size(),
                    layout.stats.file_bytes);
    DAXFS_RETURN_IF_ERROR(sink.Open());
    DAXFS_RETURN_IF_ERROR(source->EmitData(tree, layout.data_order, &sink));
    digests = sink.digests();
    // The EROFS view's area starts on a block boundary after the metadata.
    data.data_end = with_erofs ? fmt::AlignUp(layout.meta_size, fmt::kBlockSize) : layout.meta_size;
    data.checksum = XXH3_64bits(nullptr, 0);
    stats->objects_written = sink.objects_written();
    stats->objects_reused = sink.objects_reused();
    stats->object_bytes_written = sink.bytes_written();
    stats->object_bytes_reused = sink.bytes_reused();
  } else {
    DataPolicy policy;
    policy.pack = options.pack_small_files;
    policy.share_tails = layout.compact_dirs;
    policy.avoid_aligned_packed_start = !layout.compact_dirs;
    policy.dedup = options.dedup;
    policy.hold_small = with_erofs && options.pack_small_files;
    DataWriter writer(fd, output, fmt::kBlockSize, layout.meta_size, inode_count, policy, options,
                      layout.data_order.size(), layout.stats.file_bytes);
    DAXFS_RETURN_IF_ERROR(source->EmitData(tree, layout.data_order, &writer));
    DAXFS_ASSIGN_OR_RETURN(data, writer.Finish());
  }
  std::optional<ErofsView> erofs_view;
  if (with_erofs) {
    const uint64_t area_start = fmt::kBlockSize + data.data_end;
    DAXFS_ASSIGN_OR_RETURN(erofs_view, BuildErofsView(tree, layout, data, digests, area_start, BuildTime(options), options));
    DAXFS_RETURN_IF_ERROR(PwriteAll(fd, erofs_view->area, area_start, output));
    for (const auto& piece : erofs_view->pieces)
      if (piece.at >= fmt::kBlockSize) DAXFS_RETURN_IF_ERROR(PwriteAll(fd, piece.bytes, piece.at, output));
    for (size_t ino = 0; ino < data.held_by_ino.size(); ++ino)
      if (data.held_by_ino[ino] != UINT32_MAX) data.offset_by_ino[ino] = erofs_view->inline_offset_by_ino[ino];
    // The view's bytes are file data to daxfs (its inline files are read
    // through them, and its inodes sit in the ends of large files' blocks):
    // the data checksum covers them, read back once.
    data.data_end += erofs_view->area.size();
    DAXFS_ASSIGN_OR_RETURN(data.checksum, HashRange(fd, output, fmt::kBlockSize + layout.meta_size,
                                                    fmt::kBlockSize + data.data_end));
    stats->erofs_bytes = erofs_view->area.size();
    stats->inline_bytes = erofs_view->inline_bytes;
  }

  std::vector<std::byte> meta;
  SerializeMetadata(tree, layout, options, data, digests, &meta);
  const uint64_t meta_csum = XXH3_64bits(meta.data() + fmt::kBlockSize, layout.meta_size);
  uint64_t erofs_csum = 0;
  if (erofs_view) {
    // What block 0 holds past byte 1024: the EROFS superblock, the root inode.
    std::vector<std::byte> block0(fmt::kErofsBlock0End - fmt::kErofsBlock0Begin);
    std::memcpy(block0.data() + (erofs::kSuperOffset - fmt::kErofsBlock0Begin), &erofs_view->super,
                sizeof erofs_view->super);
    for (const auto& piece : erofs_view->pieces)
      if (piece.at < fmt::kBlockSize)
        std::memcpy(block0.data() + (piece.at - fmt::kErofsBlock0Begin), piece.bytes.data(), piece.bytes.size());
    erofs_csum = XXH3_64bits(block0.data(), block0.size());
  }
  FillSuperblock(layout, options, meta_csum, data, erofs_view.has_value(), erofs_csum, meta.data());
  if (erofs_view) std::memcpy(meta.data() + erofs::kSuperOffset, &erofs_view->super, sizeof erofs_view->super);
  DAXFS_RETURN_IF_ERROR(PwriteAll(fd, meta, 0, output));
  if (erofs_view) {
    for (const auto& piece : erofs_view->pieces)  // the root's, in block 0
      if (piece.at < fmt::kBlockSize) DAXFS_RETURN_IF_ERROR(PwriteAll(fd, piece.bytes, piece.at, output));
  }
  const uint64_t total_size = fmt::kBlockSize + data.data_end;
  // Exactly total_size: drops anything a rewound duplicate left past the end.
  if (ftruncate(fd, static_cast<off_t>(total_size)) != 0)
    return Status::IOError(output + ": cannot size image to " + std::to_string(total_size) +
                               " bytes", errno);
  stats->image_size = total_size;
  stats->packed_files = data.packed_files;
  stats->duplicate_files = data.duplicate_files;
  stats->duplicate_bytes = data.duplicate_bytes;
  // Images are shared read-only: make the file read-only for group/other.
  if (fchmod(fd, 0644) != 0) return Status::IOError(output + ": chmod", errno);
  return out->Publish();
}

}  // namespace daxfs::build
