// Where a container image's files (index, manifests, configs, layers) are
// read from: a directory (oci:DIR) or a tar archive holding one
// (oci-archive:, docker-archive:), read in place, never unpacked.
#pragma once

#include <cstddef>
#include <memory>
#include <span>
#include <string>

#include "daxfs/status.h"

namespace daxfs::container {

// One file's bytes, read front to back.
class BlobStream {
 public:
  virtual ~BlobStream() = default;
  // Up to out.size() bytes; 0 at the end.
  virtual Result<size_t> Read(std::span<std::byte> out) = 0;
};

class BlobStore {
 public:
  virtual ~BlobStore() = default;
  // `name` is a slash-separated path inside the directory or archive.
  virtual Result<std::unique_ptr<BlobStream>> Open(const std::string& name) const = 0;
  virtual bool Exists(const std::string& name) const = 0;
  // "DIR/name" or "ARCHIVE:name", for messages.
  virtual std::string Where(const std::string& name) const = 0;
};

Result<std::unique_ptr<BlobStore>> OpenDirectoryStore(const std::string& dir);
Result<std::unique_ptr<BlobStore>> OpenArchiveStore(const std::string& archive);

// A small file whole (manifests, configs): at most `max` bytes.
Result<std::string> ReadSmallBlob(const BlobStore& store, const std::string& name, size_t max = 4 << 20);

}  // namespace daxfs::container
