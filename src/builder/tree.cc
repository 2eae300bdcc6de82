// Helpers shared by the sources.
#include "builder/source.h"

namespace daxfs::build {

void ApplyMetadataOptions(InodeRec* inode, const BuildOptions& options) {
  if (options.all_time) {
    inode->mtime_sec = *options.all_time;
    inode->mtime_nsec = 0;
  } else if (options.clamp_time && inode->mtime_sec > *options.clamp_time) {
    inode->mtime_sec = *options.clamp_time;
    inode->mtime_nsec = 0;
  }
  if (options.force_uid) inode->uid = *options.force_uid;
  if (options.force_gid) inode->gid = *options.force_gid;
}

std::string Tree::PathOf(uint32_t node) const {
  std::vector<const std::string*> parts;
  for (uint32_t n = node; n != 0; n = nodes[n].parent) parts.push_back(&nodes[n].name);
  std::string out;
  for (auto it = parts.rbegin(); it != parts.rend(); ++it) {
    out += '/';
    out += **it;
  }
  return out.empty() ? "/" : out;
}

}  // namespace daxfs::build
