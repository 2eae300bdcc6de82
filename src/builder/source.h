// Where a tree comes from: a directory or an archive.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <span>
#include <string>
#include <vector>

#include "builder/tree.h"
#include "daxfs/builder.h"
#include "daxfs/status.h"

namespace daxfs::container {
struct ContainerImage;
}

namespace daxfs::build {

// Receives file data in layout order.
class DataSink {
 public:
  virtual ~DataSink() = default;
  // Called once per inode in the order given to EmitData, before its bytes.
  virtual Status BeginFile(const InodeRec& inode) = 0;
  // Bytes of the current file, in order; `n` bytes of zeros for a hole.
  virtual Status Append(std::span<const std::byte> bytes) = 0;
  virtual Status AppendZeros(uint64_t n) = 0;
  // Zero-copy alternative to Append: space for up to `want` bytes (at least
  // one) that the caller fills and then hands over with Commit(n).
  virtual std::span<std::byte> Reserve(size_t want) = 0;
  virtual Status Commit(size_t n) = 0;
  virtual Status EndFile() = 0;
};

class Source {
 public:
  virtual ~Source() = default;
  // Builds the tree (names, inodes, metadata). Sizes are final afterwards.
  virtual Status Scan(Tree* tree, const BuildOptions& options) = 0;
  // The order in which EmitData can deliver file contents cheaply, as a key
  // per inode (ties broken by inode number).
  virtual uint64_t DataOrderKey(const InodeRec& inode) const = 0;
  // Streams the contents of `order` (regular files with size > 0) to `sink`.
  virtual Status EmitData(const Tree& tree, const std::vector<uint32_t>& order,
                          DataSink* sink) = 0;
  // A container image's config (OCI image config JSON), recorded in the
  // image; empty for other sources.
  virtual std::string ContainerConfig() const { return {}; }
};

std::unique_ptr<Source> NewDirectorySource(std::string root);
std::unique_ptr<Source> NewTarSource(std::string path);
// A container image's layers, applied in order (whiteouts, opaque dirs);
// or (only_layer >= 0) that one layer, whiteouts kept as OverlayFS's.
std::unique_ptr<Source> NewLayersSource(container::ContainerImage image, int only_layer = -1);

// Applies --all-time / SOURCE_DATE_EPOCH clamping and forced owners.
void ApplyMetadataOptions(InodeRec* inode, const BuildOptions& options);

}  // namespace daxfs::build
