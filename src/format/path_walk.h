// Resolving a slash-separated path one name at a time, shared by the image
// reader and every FsView (branches).
#pragma once

#include <cerrno>
#include <string>
#include <string_view>

#include "daxfs/status.h"

namespace daxfs {

// Walks `path` from `root` with lookup(dir, name) -> Result<Ino>, without
// following symlinks; empty components ("a//b", a leading or trailing
// slash) are skipped. Errors name the whole path.
template <typename Lookup>
Result<uint64_t> WalkPath(uint64_t root, std::string_view path, const Lookup& lookup) {
  uint64_t cur = root;
  size_t pos = 0;
  while (pos < path.size()) {
    const size_t slash = path.find('/', pos);
    const size_t end = slash == std::string_view::npos ? path.size() : slash;
    const std::string_view comp = path.substr(pos, end - pos);
    pos = end + 1;
    if (comp.empty()) continue;
    auto next = lookup(cur, comp);
    if (!next.ok()) {
      if (next.status().IsNotFound())
        return Status::NotFound(std::string(path) + ": no such file or directory");
      if (next.status().errno_value() == ENOTDIR)
        return Status::NotDirectory(std::string(path) + ": a path component is not a directory");
      return next.status();
    }
    cur = *next;
  }
  return cur;
}

}  // namespace daxfs
