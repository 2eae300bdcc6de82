// FsView: one read interface in front of a read-only Image and a branch.
//
// Everything that only reads a tree (export today; check, extract and the
// mount later) can take an FsView and work on the base image or on a live
// branch alike.
//
// Reads are zero-copy: read() returns a span into the shared mapping (base
// image or delta area), or into a static page of zeros for holes. A read may
// return fewer bytes than asked: it stops at a 4 KiB block boundary or where
// the bytes come from a different place (base, delta block, hole); call
// again for the rest. An empty span means end of file.
//
// Span lifetime: a span stays valid as long as the object that handed it out
// (Image or BranchStore) is alive, whatever commits or aborts happen: delta
// blocks are never reused while any process is attached (docs/BRANCHES.md).
#pragma once

#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>

#include "daxfs/export.h"
#include "daxfs/image.h"
#include "daxfs/status.h"

namespace daxfs {

// stat(2) with all three times (a base image stores only mtime; atime and
// ctime then equal it).
struct FsAttr : Attr {
  int64_t atime_sec = 0;
  uint32_t atime_nsec = 0;
  int64_t ctime_sec = 0;
  uint32_t ctime_nsec = 0;
};

struct FsDirEntry {
  std::string name;
  Ino ino = 0;
  uint32_t mode = 0;  // st_mode of the child (at least its type bits)
};

// Iterates one directory's entries in name order ("." and ".." excluded).
class DAXFS_EXPORT DirCursor {
 public:
  virtual ~DirCursor() = default;
  // The next entry, or nullopt at the end.
  virtual Result<std::optional<FsDirEntry>> next() = 0;
};

class DAXFS_EXPORT FsView {
 public:
  virtual ~FsView() = default;

  virtual Ino root() const = 0;
  virtual Result<FsAttr> stat(Ino ino) const = 0;
  // "." and ".." are understood. ENOENT if absent, ENOTDIR if `dir` is not one.
  virtual Result<Ino> lookup(Ino dir, std::string_view name) const = 0;
  virtual Result<std::unique_ptr<DirCursor>> opendir(Ino dir) const = 0;
  virtual Result<std::string> readlink(Ino ino) const = 0;
  // See the header comment: may return fewer bytes than asked; empty at EOF.
  virtual Result<std::span<const std::byte>> read(Ino ino, uint64_t offset, size_t len) const = 0;
  // fn(name, value) for each extended attribute, in name order.
  virtual Status list_xattrs(
      Ino ino, const std::function<void(std::string_view, std::span<const std::byte>)>& fn) const = 0;
  // ENODATA if absent.
  virtual Result<std::span<const std::byte>> getxattr(Ino ino, std::string_view name) const = 0;

  // Resolves a slash-separated path from the root, without following symlinks.
  Result<Ino> resolve(std::string_view path) const;
  // Reads [offset, offset + out.size()) into `out` (zeros past EOF are not
  // written); returns the bytes copied.
  Result<size_t> read_into(Ino ino, uint64_t offset, std::span<std::byte> out) const;
};

// A page of zeros that read() returns for holes (4 KiB, 4 KiB aligned).
DAXFS_EXPORT std::span<const std::byte> ZeroPage();

// The FsView of a read-only image (keeps the image alive).
DAXFS_EXPORT std::shared_ptr<const FsView> MakeImageView(std::shared_ptr<const Image> image);

}  // namespace daxfs
