// The EROFS view of an image (mkdaxfs --erofs, docs/FORMAT.md §7): EROFS
// inodes, xattrs and directories for the same tree, in an area after the
// file data, so that the stock kernel EROFS driver mounts the image bytes
// daxfs reads. Files of a block or more are flat plain EROFS files at the
// blocks the daxfs inodes point at; smaller files (and symlink targets)
// are stored inline after their EROFS inode, and the daxfs inodes point at
// those bytes. Nothing is stored twice except small files with identical
// contents, which daxfs stores once and EROFS (which has no shared inline
// data) once per inode. In object-store images a file with an object is a
// chunk-based EROFS file of holes carrying the OverlayFS metacopy and
// redirect xattrs: the metadata layer of a data-only lower stack over the
// object directory (composefs's arrangement), with no daxfs process.
#pragma once

#include <cstdint>
#include <vector>

#include "builder/data_writer.h"
#include "builder/layout.h"
#include "builder/tree.h"
#include "daxfs/builder.h"
#include "daxfs/erofs_format.h"
#include "daxfs/status.h"
#include "objects/sha256.h"

namespace daxfs::build {

struct ErofsView {
  std::vector<std::byte> area;        // written at absolute `area_start` (block aligned)
  // Inodes (with their xattrs and inline data) placed outside the area:
  // in the unused ends of large files' last blocks (DataPlacement::tail_gaps)
  // and the root's at byte 2048 of the first block. Absolute offsets.
  struct Piece {
    uint64_t at;
    std::vector<std::byte> bytes;
  };
  std::vector<Piece> pieces;
  erofs::SuperBlock super{};          // written at byte 1024
  // Base-relative data offsets of the files DataWriter held (inline copies).
  std::vector<uint64_t> inline_offset_by_ino;
  uint64_t inline_bytes = 0;          // small-file bytes stored inline
};

// Whether the tree can have an EROFS view (xattr namespaces and sizes),
// checked before any data is written.
Status ErofsRepresentable(const Tree& tree, const Layout& layout);

// The EROFS metadata the view adds whatever the layout (inodes, xattrs,
// directories, symlink targets; not the small files' bytes, which it
// holds instead of daxfs's data area): an upper bound of its cost before
// large files' unused block ends absorb part of it.
uint64_t ErofsMetadataEstimate(const Tree& tree, const Layout& layout);

// Lays out and serializes the view. `area_start` is absolute (4096 + the
// base-relative end of the data area); `data` gives every other file's
// base-relative, block-aligned data offset.
// `digests` (object-store images, by ino) name each file's object: such
// files are chunk-based holes with OverlayFS metacopy and redirect xattrs.
Result<ErofsView> BuildErofsView(const Tree& tree, const Layout& layout, const DataPlacement& data,
                                 const std::vector<objects::Digest>& digests, uint64_t area_start,
                                 int64_t build_time, const BuildOptions& options);

}  // namespace daxfs::build
