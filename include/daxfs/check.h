// Full verification of an image (the library behind `daxfs check` / fsck).
#pragma once

#include <cstdint>
#include <functional>
#include <string>

#include "daxfs/export.h"
#include "daxfs/fs_view.h"
#include "daxfs/image.h"

namespace daxfs {

struct CheckOptions {
  bool verify_data = true;  // also checksum the file data area
  // Called once per problem found, with a message naming inode and offset.
  std::function<void(const std::string&)> report;
  // Called for non-fatal observations (e.g. unaligned upstream file data).
  std::function<void(const std::string&)> warn;
};

struct CheckResult {
  uint64_t problems = 0;
  uint64_t warnings = 0;
  uint64_t inodes_reached = 0;
  uint64_t entries = 0;
  uint64_t shared_extents = 0;  // files sharing another file's data (dedup)
};

// Walks the whole image: checksums, every directory entry, every inode, link
// counts, reachability, name order, overlapping extents, xattrs. Never fails
// on a bad image; the problems are counted and reported.
DAXFS_EXPORT CheckResult CheckImage(const Image& image, const CheckOptions& options);

// The tree-level checks for any FsView (a branch, main, an image): every
// directory entry (valid name, strict name order, found again by lookup,
// type matching its inode), no directory linked twice, link counts,
// symlink targets, xattrs, and with verify_data every regular file read to
// its end. A branch has no checksums or extents to check; its log is
// verified by BranchStore::Check. inodes_reached counts distinct inodes.
DAXFS_EXPORT CheckResult CheckView(const FsView& view, const CheckOptions& options);

// Whether two views describe the same tree (an image's daxfs view and its
// EROFS view): the same names, file types, modes, owners, link counts,
// mtimes (ns), device numbers, symlink targets, xattrs, hard-link
// structure, and with verify_data the same file contents. Directory sizes
// are not compared (each format has its own). `a_name`/`b_name` label the
// views in reports.
// An image's EROFS view (mkdaxfs --erofs), when it has one: the EROFS
// superblock and root inode against their checksum (kExtErofsChecksum),
// then CompareViews of the daxfs and EROFS views. No EROFS superblock: an
// empty result.
DAXFS_EXPORT CheckResult CheckErofsView(const std::shared_ptr<const Image>& image,
                                        const CheckOptions& options);

DAXFS_EXPORT CheckResult CompareViews(const FsView& a, const FsView& b, const CheckOptions& options,
                                      const std::string& a_name, const std::string& b_name);

}  // namespace daxfs
