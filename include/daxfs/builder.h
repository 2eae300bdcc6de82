// Building daxfs images (the library behind mkdaxfs).
#pragma once

#include <cstdint>
#include <functional>
#include <optional>
#include <string>

#include "daxfs/status.h"

namespace daxfs {

struct BuildProgress {
  const char* phase = "";    // "scanning", "writing"
  uint64_t items_done = 0;
  uint64_t items_total = 0;  // 0 when unknown
  uint64_t bytes_done = 0;
  uint64_t bytes_total = 0;
};

struct BuildOptions {
  // Every inode gets this mtime (mkfs.erofs -T, mksquashfs -all-time).
  std::optional<int64_t> all_time;
  // Times later than this are clamped to it (SOURCE_DATE_EPOCH semantics).
  std::optional<int64_t> clamp_time;
  std::optional<uint32_t> force_uid;
  std::optional<uint32_t> force_gid;
  bool xattrs = true;
  // Write a plain upstream v5 image without any daxfs extension.
  bool upstream_only = false;
  std::string label;
  // Called now and then from the building thread.
  std::function<void(const BuildProgress&)> progress;
};

struct BuildStats {
  uint64_t regular_files = 0;
  uint64_t directories = 0;
  uint64_t symlinks = 0;
  uint64_t special_files = 0;  // devices, fifos, sockets
  uint64_t hardlinks = 0;      // extra names of an already counted inode
  uint64_t inodes = 0;
  uint64_t file_bytes = 0;     // sum of regular file sizes
  uint64_t image_size = 0;
  uint64_t metadata_size = 0;
};

// Builds `output` from the directory tree at `source_dir`. On failure no
// file is left at `output` (the image is written to a temporary and renamed).
Result<BuildStats> BuildFromDirectory(const std::string& source_dir, const std::string& output,
                                      const BuildOptions& options);
// Builds from a tar archive (any format and compression libarchive reads).
Result<BuildStats> BuildFromTar(const std::string& tar_path, const std::string& output,
                                const BuildOptions& options);

}  // namespace daxfs
