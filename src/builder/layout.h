// Layout: where every inode, directory, symlink, xattr and file goes.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "builder/tree.h"
#include "daxfs/builder.h"
#include "daxfs/format.h"
#include "daxfs/status.h"

namespace daxfs::build {

struct Layout {
  std::vector<uint32_t> by_ino;      // inode index for ino 1..n (by_ino[ino-1])
  std::vector<uint32_t> dir_node;    // directory inode index -> its node
  std::vector<uint32_t> data_order;  // regular files with data, in data order
  std::vector<std::byte> xattr_area; // serialized xattr area (empty if none)
  uint64_t inode_table = sizeof(format::BaseSuper);  // base-relative, right after the base superblock
  uint64_t meta_start = 0;           // base-relative start of dirents etc.
  uint64_t xattr_offset = 0;         // base-relative
  uint64_t meta_size = 0;            // base-relative, 4 KiB aligned: file data starts here
  uint64_t dirent_count = 0;
  bool compact_dirs = false;         // format::kFeatureCompactDirs
  bool objects = false;              // format::kFeatureObjects: digests, no data area
  uint64_t object_dir_offset = 0;    // base-relative recorded object directory path
  uint64_t container_config_offset = 0;  // base-relative container config (0: none)
  BuildStats stats;
};

// Assigns inode numbers (depth-first, names sorted), link counts and the
// offsets of all metadata. File data offsets are left to the data writer.
// `data_key` gives each inode's position in the source's data order.
Result<Layout> ComputeLayout(Tree* tree, const BuildOptions& options,
                             const std::vector<uint64_t>& data_key);

}  // namespace daxfs::build
