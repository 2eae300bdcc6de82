// Reading EROFS: the EROFS view of a daxfs image (mkdaxfs --erofs), or an
// uncompressed EROFS image made by mkfs.erofs, as an FsView. Used by
// `daxfs check` to verify that an image's two views describe the same tree
// (CompareViews), and by the tools to list or extract an EROFS image.
//
// Safe on untrusted bytes: every offset is bounds-checked and a bad image
// gives a Corruption status naming the nid and offset. Supported: 4 KiB
// blocks, compact and extended inodes, flat plain and flat inline data,
// inline and shared xattrs. Compressed, chunk-based and multi-device
// images are refused (NotSupported).
#pragma once

#include <memory>
#include <span>

#include "daxfs/export.h"
#include "daxfs/fs_view.h"
#include "daxfs/status.h"

namespace daxfs {

// Whether `bytes` start with an EROFS superblock (magic at byte 1024).
DAXFS_EXPORT bool HasErofsSuperblock(std::span<const std::byte> bytes);

// The EROFS tree in `bytes` (kept alive by `owner`). FsView inode numbers
// are nid + 1.
DAXFS_EXPORT Result<std::shared_ptr<const FsView>> OpenErofsView(std::span<const std::byte> bytes,
                                                                 std::shared_ptr<const void> owner,
                                                                 std::string name);

}  // namespace daxfs
