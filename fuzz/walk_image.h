// Touches everything an image claims to hold: every directory entry, inode,
// symlink, xattr and the first and last byte of every file. Shared by the
// fuzz target and the corruption tests so both exercise the same paths.
#pragma once

#include <sys/stat.h>

#include <cstdint>
#include <vector>

#include "daxfs/check.h"
#include "daxfs/image.h"

namespace daxfs::testing {

// Returns a checksum of what was read (so the reads cannot be optimized
// away) after walking the tree breadth-first, each directory once.
inline uint64_t WalkImage(const Image& image) {
  uint64_t sum = 0;
  std::vector<Ino> queue{image.root()};
  std::vector<bool> seen(size_t{image.info().inode_count} + 1, false);
  for (size_t i = 0; i < queue.size(); ++i) {
    auto dir = image.opendir(queue[i]);
    if (!dir.ok()) continue;
    for (size_t k = 0; k < dir->size(); ++k) {
      auto e = dir->entry(k);
      if (!e.ok()) continue;
      sum += e->name.size();
      (void)image.lookup(queue[i], e->name);
      auto a = image.stat(e->ino);
      if (!a.ok()) continue;
      (void)image.list_xattrs(e->ino, [&](std::string_view n, std::span<const std::byte> v) {
        sum += n.size() + v.size();
        if (!v.empty()) sum += static_cast<uint8_t>(v.back());
      });
      if (S_ISREG(a->mode)) {
        auto data = image.contents(e->ino);
        if (data.ok() && !data->empty())
          sum += static_cast<uint8_t>(data->front()) + static_cast<uint8_t>(data->back());
      } else if (S_ISLNK(a->mode)) {
        auto t = image.readlink(e->ino);
        if (t.ok()) sum += t->size();
      } else if (S_ISDIR(a->mode) && e->ino < seen.size() && !seen[e->ino]) {
        seen[e->ino] = true;
        (void)image.parent(e->ino);
        queue.push_back(e->ino);
      }
    }
  }
  if (auto names = image.xattr_names(); names.ok()) sum += names->size();
  CheckOptions o;
  sum += CheckImage(image, o).problems;
  return sum;
}

}  // namespace daxfs::testing
