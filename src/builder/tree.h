// The in-memory model of a tree to be written: names and inodes.
#pragma once

#include <cstdint>
#include <string>
#include <utility>
#include <vector>

namespace daxfs::build {

// One inode; several names (hard links) may share it.
struct InodeRec {
  uint32_t mode = 0;
  uint32_t uid = 0, gid = 0;
  int64_t mtime_sec = 0;
  uint32_t mtime_nsec = 0;
  uint32_t rdev = 0;            // format::EncodeDev
  uint64_t size = 0;            // regular files
  std::string target;           // symlinks
  std::vector<std::pair<std::string, std::string>> xattrs;  // sorted by name
  // Where the source finds the data: a path relative to the source root, or
  // an archive entry number.
  std::string source_path;
  uint64_t source_index = 0;
  // Filled in by the layout.
  uint32_t ino = 0;
  uint32_t nlink = 0;
  uint64_t data_offset = 0;     // base-relative
  uint32_t xattr_ref = 0;
};

struct Node {
  std::string name;              // empty for the root
  uint32_t parent = 0;           // node index
  uint32_t inode = 0;            // index into Tree::inodes
  std::vector<uint32_t> children;
};

struct Tree {
  std::vector<Node> nodes;       // nodes[0] is the root
  std::vector<InodeRec> inodes;
  uint32_t AddInode(InodeRec rec) {
    inodes.push_back(std::move(rec));
    return static_cast<uint32_t>(inodes.size() - 1);
  }
  uint32_t AddNode(uint32_t parent, std::string name, uint32_t inode) {
    nodes.push_back(Node{std::move(name), parent, inode, {}});
    const auto idx = static_cast<uint32_t>(nodes.size() - 1);
    if (idx != 0) nodes[parent].children.push_back(idx);
    return idx;
  }
  std::string PathOf(uint32_t node) const;
};

}  // namespace daxfs::build
