// Building daxfs images (the library behind mkdaxfs).
#pragma once

#include <cstdint>
#include <functional>
#include <optional>
#include <string>

#include "daxfs/export.h"
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
  // Directory layout. Compact directories store each name once (about 12
  // bytes + the name per entry); the upstream v5 layout spends 272 bytes per
  // entry but keeps the image readable by the upstream daxfs kernel module.
  bool compact_dirs = true;
  // Write a plain upstream v5 image without any daxfs extension (implies
  // !compact_dirs).
  bool upstream_only = false;
  // Store files smaller than a block next to each other (and, with compact
  // directories, in the unused end of larger files' last blocks) instead of
  // giving each its own block. Larger files always start block-aligned.
  bool pack_small_files = true;
  // Store identical file contents once (verified byte for byte).
  bool dedup = true;
  std::string label;
  // The EROFS view of the tree (docs/FORMAT.md §11): the kernel's EROFS
  // driver then mounts the same image, sharing every file's bytes (with
  // object_dir: the metadata layer of an OverlayFS stack over the objects).
  // kAuto (the default) writes it where it is cheap (at most 5% of the
  // image) and possible: not with plain upstream_only, nor for a tree with
  // xattrs EROFS cannot store (BuildStats::erofs_skipped says why);
  // kAlways fails where it is not possible.
  enum class Erofs { kAuto, kAlways, kNever };
  Erofs erofs = Erofs::kAuto;
  // Object-store form (docs/FORMAT.md §6.2): every regular file's contents
  // go to this directory as an object named by its SHA-256, and the image
  // holds only metadata and the digests. Created if missing; the image
  // records its absolute path.
  std::string object_dir;
  // A container image's config (the OCI image config JSON: entrypoint,
  // env, working directory, user...), recorded in the image (docs/FORMAT.md
  // §12). BuildFromContainerImage sets it from the image.
  std::string container_config;
  // BuildFromContainerImage: the platform ("os/arch[/variant]") whose
  // manifest to take from a multi-platform image; empty: this machine's.
  std::string platform;
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
  uint64_t packed_files = 0;   // files stored in shared blocks
  uint64_t erofs_bytes = 0;    // the EROFS view's area (inodes, directories, inline files)
  uint64_t inline_bytes = 0;   // small-file bytes stored inline in it
  std::string erofs_skipped;   // BuildOptions::Erofs::kAuto: why there is no EROFS view
  std::string container_image; // BuildFromContainerImage: which image (name, platform)
  uint64_t layers = 0;         // ... and how many layers it applied
  uint64_t duplicate_files = 0;  // files whose contents were already stored
  uint64_t duplicate_bytes = 0;  // bytes not stored again thanks to that
  uint64_t image_size = 0;
  uint64_t metadata_size = 0;
  // Object-store images: objects written now, and files whose object was
  // already in the directory (from this image or an earlier one).
  uint64_t objects_written = 0;
  uint64_t objects_reused = 0;
  uint64_t object_bytes_written = 0;
  uint64_t object_bytes_reused = 0;
};

// Builds `output` from the directory tree at `source_dir`. On failure no
// file is left at `output` (the image is written to a temporary and renamed).
DAXFS_EXPORT Result<BuildStats> BuildFromDirectory(const std::string& source_dir, const std::string& output,
                                                   const BuildOptions& options);
// Builds from a tar archive (any format and compression libarchive reads).
DAXFS_EXPORT Result<BuildStats> BuildFromTar(const std::string& tar_path, const std::string& output,
                                             const BuildOptions& options);
// Builds the root filesystem of a container image: `ref` is
// oci:DIR[:REF], oci-archive:FILE[:REF] or docker-archive:FILE[:REPO:TAG].
// Every blob is checked against its digest before anything is written;
// layers are applied in order with their whiteouts; the image's config is
// recorded (ImageInfo::container_config).
DAXFS_EXPORT Result<BuildStats> BuildFromContainerImage(const std::string& ref, const std::string& output,
                                                        const BuildOptions& options);
// One image per layer instead (containerd's EROFS snapshotter model): layer
// i of `ref` as DIR/<its digest's hex>.img, whiteouts stored as OverlayFS
// whiteouts, so that OverlayFS stacks the layer images (lowerdir=top:...:
// bottom) into the container's tree, and images built on one base layer
// share its image. A layer image already in DIR is reused. Lowest first.
struct LayerImage {
  std::string path;
  std::string digest;   // the layer's ("sha256:...")
  bool reused = false;  // it was in DIR already
  BuildStats stats;     // when built now
};
DAXFS_EXPORT Result<std::vector<LayerImage>> BuildLayerImages(const std::string& ref, const std::string& dir,
                                                              const BuildOptions& options);
// Whether `source` is a container image reference (oci:, oci-archive:,
// docker-archive:).
DAXFS_EXPORT bool IsContainerImageRef(const std::string& source);

}  // namespace daxfs
