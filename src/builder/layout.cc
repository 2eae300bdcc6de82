#include "builder/layout.h"

#include <sys/stat.h>

#include <algorithm>
#include <cstring>
#include <map>

#include "daxfs/format.h"

namespace daxfs::build {

namespace fmt = daxfs::format;

namespace {

// Serializes each distinct xattr set once; inodes share identical records.
void LayoutXattrs(Tree* tree, Layout* out) {
  std::map<std::vector<std::pair<std::string, std::string>>, uint32_t> seen;
  std::vector<std::byte>& area = out->xattr_area;
  for (uint32_t idx : out->by_ino) {
    InodeRec& inode = tree->inodes[idx];
    if (inode.xattrs.empty()) continue;
    if (area.empty()) {
      area.resize(sizeof(fmt::XattrAreaHeader));
      fmt::Store(area.data(), fmt::XattrAreaHeader{fmt::kXattrMagic, 0});
    }
    auto [it, inserted] = seen.emplace(inode.xattrs, static_cast<uint32_t>(area.size()));
    inode.xattr_ref = it->second;
    if (!inserted) continue;
    const size_t start = area.size();
    area.resize(start + sizeof(fmt::XattrRecordHeader));
    for (const auto& [name, value] : inode.xattrs) {
      const size_t at = area.size();
      area.resize(at + sizeof(fmt::XattrEntryHeader) + name.size() + value.size());
      fmt::Store(area.data() + at, fmt::XattrEntryHeader{static_cast<uint16_t>(name.size()), 0,
                                                         static_cast<uint32_t>(value.size())});
      std::memcpy(area.data() + at + sizeof(fmt::XattrEntryHeader), name.data(), name.size());
      std::memcpy(area.data() + at + sizeof(fmt::XattrEntryHeader) + name.size(), value.data(),
                  value.size());
    }
    fmt::Store(area.data() + start,
               fmt::XattrRecordHeader{static_cast<uint16_t>(inode.xattrs.size()), 0,
                                      static_cast<uint32_t>(area.size() - start)});
    area.resize(fmt::AlignUp(area.size(), 8));
  }
}

}  // namespace

Result<Layout> ComputeLayout(Tree* tree, const BuildOptions& options,
                             const std::vector<uint64_t>& data_key) {
  Layout out;
  out.compact_dirs = options.compact_dirs && !options.upstream_only;
  out.objects = !options.object_dir.empty();
  if (out.objects && options.upstream_only)
    return Status::InvalidArgument("an object-store image cannot be a plain upstream image");
  if (options.container_config.size() > fmt::kContainerConfigMax)
    return Status::InvalidArgument("the container image's config is larger than " +
                                   std::to_string(fmt::kContainerConfigMax) + " bytes");
  if (options.object_dir.size() > fmt::kObjectDirPathMax)
    return Status::InvalidArgument(options.object_dir + ": object directory path longer than " +
                                   std::to_string(fmt::kObjectDirPathMax) + " bytes");
  for (Node& node : tree->nodes) {
    std::sort(node.children.begin(), node.children.end(), [&](uint32_t a, uint32_t b) {
      return tree->nodes[a].name < tree->nodes[b].name;
    });
  }
  for (InodeRec& inode : tree->inodes) {
    inode.ino = 0;
    inode.nlink = 0;
  }
  out.dir_node.assign(tree->inodes.size(), UINT32_MAX);
  // Depth-first pre-order with an explicit stack: deep trees must not
  // overflow the call stack.
  std::vector<uint32_t> stack{0};
  while (!stack.empty()) {
    const uint32_t n = stack.back();
    stack.pop_back();
    const Node& node = tree->nodes[n];
    InodeRec& inode = tree->inodes[node.inode];
    if (n != 0) ++out.dirent_count;
    if (inode.ino == 0) {
      if (out.by_ino.size() >= UINT32_MAX - 1)
        return Status::NoSpace("too many inodes (the format allows 2^32-2)");
      out.by_ino.push_back(node.inode);
      inode.ino = static_cast<uint32_t>(out.by_ino.size());
    } else {
      ++out.stats.hardlinks;
    }
    if (S_ISDIR(inode.mode)) {
      out.dir_node[node.inode] = n;
      inode.nlink = 2;
      for (uint32_t c : node.children)
        if (S_ISDIR(tree->inodes[tree->nodes[c].inode].mode)) ++inode.nlink;
    } else {
      ++inode.nlink;
    }
    for (auto it = node.children.rbegin(); it != node.children.rend(); ++it) stack.push_back(*it);
  }

  const uint64_t n_inodes = out.by_ino.size();
  uint64_t cursor = fmt::AlignUp(out.inode_table + n_inodes * fmt::kInodeSize, fmt::kBlockSize);
  out.meta_start = cursor;
  for (uint32_t idx : out.by_ino) {
    InodeRec& inode = tree->inodes[idx];
    switch (inode.mode & S_IFMT) {
      case S_IFDIR: {
        const Node& node = tree->nodes[out.dir_node[idx]];
        const size_t count = node.children.size();
        ++out.stats.directories;
        if (count == 0) {
          inode.size = 0;
          inode.data_offset = 0;
        } else if (out.compact_dirs) {
          cursor = fmt::AlignUp(cursor, fmt::kCompactDirAlign);
          uint64_t bytes = sizeof(fmt::CompactDirHeader) + count * sizeof(fmt::CompactDirent);
          for (uint32_t c : node.children) bytes += tree->nodes[c].name.size();
          // Name offsets are 32-bit: 16 million 255-byte names would overflow.
          if (bytes > UINT32_MAX)
            return Status::NoSpace(tree->PathOf(out.dir_node[idx]) + ": directory of " +
                                   std::to_string(count) + " entries exceeds the compact "
                                   "layout's 4 GiB; use --upstream-readable");
          inode.size = bytes;
          inode.data_offset = cursor;
          cursor += bytes;
        } else {
          inode.size = count * fmt::kDirentSizeUnit;
          inode.data_offset = cursor;
          cursor += count * fmt::kDirentStride;
        }
        break;
      }
      case S_IFLNK:
        inode.size = inode.target.size();
        inode.data_offset = cursor;
        cursor += inode.target.size() + 1;
        ++out.stats.symlinks;
        break;
      case S_IFREG:
        ++out.stats.regular_files;
        out.stats.file_bytes += inode.size;
        if (inode.size > 0) out.data_order.push_back(idx);
        if (out.objects && inode.size > 0) {
          // The digest that names the file's object.
          inode.data_offset = cursor;
          cursor += fmt::kObjectDigestSize;
        }
        break;
      default:
        inode.size = 0;
        ++out.stats.special_files;
        break;
    }
  }
  if (out.objects) {
    out.object_dir_offset = cursor;
    cursor += options.object_dir.size();
  }
  if (!options.container_config.empty() && !options.upstream_only) {
    out.container_config_offset = cursor;
    cursor += options.container_config.size();
  }
  cursor = fmt::AlignUp(cursor, 8);
  if (!options.upstream_only) {
    LayoutXattrs(tree, &out);
    if (!out.xattr_area.empty()) {
      out.xattr_offset = cursor;
      cursor += out.xattr_area.size();
    }
  }
  out.meta_size = fmt::AlignUp(cursor, fmt::kBlockSize);
  if (out.meta_size > UINT64_MAX / 4) return Status::NoSpace("metadata larger than 2^62 bytes");
  // File data follows the metadata; the data writer places each file (packing
  // and deduplication decide offsets as the contents stream by).
  std::stable_sort(out.data_order.begin(), out.data_order.end(), [&](uint32_t a, uint32_t b) {
    return data_key[a] < data_key[b];
  });
  out.stats.inodes = n_inodes;
  out.stats.metadata_size = fmt::kBlockSize + out.meta_size;
  return out;
}

}  // namespace daxfs::build
