// Writing an image's tree back out to a directory (`daxfs extract`).
#pragma once

#include <functional>
#include <string>

#include "daxfs/export.h"
#include "daxfs/fs_view.h"
#include "daxfs/image.h"

namespace daxfs {

struct ExtractOptions {
  bool owners = true;   // chown to the stored uid/gid (needs privilege)
  bool xattrs = true;
  bool devices = true;  // create device nodes (needs privilege)
  std::function<void(const std::string&)> warn;
};

// Recreates `subtree` (a path inside the image, "/" for all) under
// `dest_dir`, which is created if missing. Regular files keep holes where
// whole 4 KiB blocks are zero. Hard links are recreated as hard links.
DAXFS_EXPORT Status Extract(const Image& image, const std::string& subtree, const std::string& dest_dir,
                            const ExtractOptions& options);

// The same for any FsView (a branch, main, an image). `health`, if given,
// reports the state of the memory behind the view: after a bus error the
// view reads as zeros, and extraction stops with that error instead.
DAXFS_EXPORT Status Extract(const FsView& view, const std::string& subtree, const std::string& dest_dir,
                            const ExtractOptions& options, std::function<Status()> health = {});

}  // namespace daxfs
