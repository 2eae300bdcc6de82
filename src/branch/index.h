// Index: one process's in-memory picture of a branch, built by replaying
// records over the base image. Only inodes a record touched are held; the
// rest are read from the base Image directly.
#pragma once

#include <map>
#include <memory>
#include <string>
#include <unordered_map>
#include <unordered_set>
#include <vector>

#include "branch/record.h"
#include "daxfs/fs_view.h"
#include "daxfs/image.h"

namespace daxfs::branch {

struct Geometry {
  const std::byte* region = nullptr;  // start of the mapping
  uint64_t delta_offset = 0;          // absolute
  uint64_t delta_size = 0;
  uint64_t base_inodes = 0;
};

struct PageRef {
  uint64_t block = 0;   // absolute region offset of the 4 KiB block
  uint32_t valid = 0;   // bytes of the block that hold data; the rest reads as zero
};

struct DEnt {
  Ino ino = 0;
  uint32_t type = 0;    // S_IFMT bits
};

struct Node {
  FsAttr attr;
  uint32_t rdev = 0;          // encoded
  Ino parent = 0;             // directories
  bool from_base = false;     // a base inode: unchanged data comes from the image
  uint64_t base_valid = 0;    // base bytes still visible (lowest truncation)
  std::map<uint64_t, PageRef> pages;
  bool entries_loaded = false;
  std::map<std::string, DEnt, std::less<>> entries;
  bool xattrs_loaded = false;
  std::map<std::string, std::span<const std::byte>, std::less<>> xattrs;
  std::string target;         // symlinks made in a branch
  bool linkable = false;      // an O_TMPFILE orphan: a link record may name it
};

class Index {
 public:
  Index(std::shared_ptr<const Image> base, const Geometry& g) : base_(std::move(base)), g_(g) {}

  // Checks `r` against the current state (POSIX errors), then applies it.
  // Nothing changes when it fails.
  Status Apply(const Record& r) { return Do(r, true); }
  Status Validate(const Record& r) const { return const_cast<Index*>(this)->Do(r, false); }

  Ino root() const { return base_->root(); }
  bool Exists(Ino ino) const;
  Result<FsAttr> Stat(Ino ino) const;
  Result<Ino> Lookup(Ino dir, std::string_view name) const;
  // Entry `name` in `dir`, or ino 0 if absent (errors: dir missing / not a dir).
  Result<DEnt> Find(Ino dir, std::string_view name) const;
  Result<std::vector<FsDirEntry>> List(Ino dir) const;
  // True when `dir` is untouched here (list it from the base image).
  bool IsBaseDir(Ino dir) const;
  Result<std::string> Readlink(Ino ino) const;
  Result<std::span<const std::byte>> Read(Ino ino, uint64_t offset, size_t len) const;
  Status ListXattrs(Ino ino,
                    const std::function<void(std::string_view, std::span<const std::byte>)>& fn) const;
  Result<std::span<const std::byte>> GetXattr(Ino ino, std::string_view name) const;
  Result<Ino> Parent(Ino dir) const;
  // A path naming `ino` ("/a/b"), for messages; "inode N" if none is found quickly.
  std::string PathOf(Ino ino) const;

  const Geometry& geometry() const { return g_; }
  const std::shared_ptr<const Image>& base() const { return base_; }
  size_t changed_inodes() const { return nodes_.size(); }
  // Inodes that lost their last name while open (and O_TMPFILE files not
  // linked yet): they exist, with nlink 0, until a forget record.
  const std::unordered_set<Ino>& orphans() const { return orphans_; }
  // Drops every orphan not in `keep`: a merge's own orphans end with it
  // (the handles that held them were on the committed branch).
  void DropOrphansExcept(const std::unordered_set<Ino>& keep);

 private:
  Status Do(const Record& r, bool mutate);
  Status DoCreate(const Record& r, bool mutate);
  Status DoLink(const Record& r, bool mutate);
  Status DoUnlink(const Record& r, bool mutate);
  Status DoRename(const Record& r, bool mutate);
  Status DoSetattr(const Record& r, bool mutate);
  Status DoWrite(const Record& r, bool mutate);
  Status DoXattr(const Record& r, bool mutate);
  Status DoForget(const Record& r, bool mutate);
  // `ino` (a file whose last name went, or a directory removed) stays as an
  // orphan: nameless, nlink 0, readable and writable through its number.
  Status KeepOrphan(Ino ino, bool is_dir, const Time& t);

  const Node* FindNode(Ino ino) const {
    auto it = nodes_.find(ino);
    return it == nodes_.end() ? nullptr : &it->second;
  }
  Result<Node*> Mut(Ino ino);
  Status LoadEntries(Ino ino, Node* n);
  Status LoadXattrs(Ino ino, Node* n);
  Result<bool> DirEmpty(Ino dir) const;
  Result<uint32_t> Type(Ino ino) const;
  Status RequireDir(Ino dir) const;
  Status RequireLiveDir(Ino dir) const;  // a directory that is not an orphan
  void Touch(Node* n, const Time& t, bool data);
  void Drop(Ino ino);

  std::shared_ptr<const Image> base_;
  Geometry g_;
  std::unordered_map<Ino, Node> nodes_;
  std::unordered_set<Ino> deleted_;  // base inodes removed here
  std::unordered_set<Ino> orphans_;
};

}  // namespace daxfs::branch
