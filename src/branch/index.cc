#include "branch/index.h"

#include <linux/fs.h>
#include <sys/stat.h>
#include <sys/xattr.h>

#include <algorithm>

#include "daxfs/branch_format.h"
#include "daxfs/format.h"
#include "format/file_type.h"

namespace daxfs::branch {

namespace bf = daxfs::format::branch;
namespace fmt = daxfs::format;

namespace {

std::string InoStr(Ino ino) { return "inode " + std::to_string(ino); }

Status NoEnt(Ino ino) { return Status::NotFound(InoStr(ino) + ": no such file or directory"); }

}  // namespace

bool Index::Exists(Ino ino) const {
  if (nodes_.count(ino)) return true;
  return ino >= 1 && ino <= g_.base_inodes && !deleted_.count(ino);
}

Result<FsAttr> Index::Stat(Ino ino) const {
  if (const Node* n = FindNode(ino)) {
    FsAttr a = n->attr;
    a.ino = ino;
    if (S_ISREG(a.mode)) a.blocks = fmt::AlignUp(a.size, bf::kPage) / 512;
    return a;
  }
  if (!Exists(ino)) return NoEnt(ino);
  DAXFS_ASSIGN_OR_RETURN(Attr b, base_->stat(ino));
  FsAttr a;
  static_cast<Attr&>(a) = b;
  a.atime_sec = a.ctime_sec = b.mtime_sec;
  a.atime_nsec = a.ctime_nsec = b.mtime_nsec;
  return a;
}

Result<uint32_t> Index::Type(Ino ino) const {
  if (const Node* n = FindNode(ino)) return n->attr.mode & S_IFMT;
  DAXFS_ASSIGN_OR_RETURN(FsAttr a, Stat(ino));
  return a.mode & S_IFMT;
}

Status Index::RequireDir(Ino dir) const {
  DAXFS_ASSIGN_OR_RETURN(uint32_t t, Type(dir));
  if (t != S_IFDIR) return Status::NotDirectory(InoStr(dir) + " is not a directory");
  return Status::OK();
}

Status Index::RequireLiveDir(Ino dir) const {
  DAXFS_RETURN_IF_ERROR(RequireDir(dir));
  // Removed while open: no new entry may appear in it (Linux: ENOENT).
  if (orphans_.count(dir)) return Status::NotFound(InoStr(dir) + ": the directory was removed");
  return Status::OK();
}

bool Index::IsBaseDir(Ino dir) const {
  const Node* n = FindNode(dir);
  return n == nullptr || !n->entries_loaded;
}

Result<DEnt> Index::Find(Ino dir, std::string_view name) const {
  DAXFS_RETURN_IF_ERROR(RequireDir(dir));
  const Node* n = FindNode(dir);
  if (n && n->entries_loaded) {
    auto it = n->entries.find(name);
    return it == n->entries.end() ? DEnt{} : it->second;
  }
  DAXFS_ASSIGN_OR_RETURN(Directory d, base_->opendir(dir));
  auto e = d.find(name);
  if (!e.ok()) {
    if (e.status().IsNotFound()) return DEnt{};
    return e.status();
  }
  return DEnt{e->ino, e->mode & S_IFMT};
}

Result<Ino> Index::Parent(Ino dir) const {
  DAXFS_RETURN_IF_ERROR(RequireDir(dir));
  if (const Node* n = FindNode(dir)) return n->parent;
  return base_->parent(dir);
}

Result<Ino> Index::Lookup(Ino dir, std::string_view name) const {
  if (name == ".") {
    DAXFS_RETURN_IF_ERROR(RequireDir(dir));
    return dir;
  }
  if (name == "..") return Parent(dir);
  if (name.size() > fmt::kNameMax) {
    DAXFS_RETURN_IF_ERROR(RequireDir(dir));
    return Status::FromErrno(ENAMETOOLONG, std::string(name.substr(0, 32)) + "...: name longer than " +
                                               std::to_string(fmt::kNameMax) + " bytes");
  }
  DAXFS_ASSIGN_OR_RETURN(DEnt e, Find(dir, name));
  if (e.ino == 0) return Status::NotFound(std::string(name) + ": no such file or directory");
  return e.ino;
}

Result<std::vector<FsDirEntry>> Index::List(Ino dir) const {
  DAXFS_RETURN_IF_ERROR(RequireDir(dir));
  std::vector<FsDirEntry> out;
  const Node* n = FindNode(dir);
  if (n && n->entries_loaded) {
    out.reserve(n->entries.size());
    for (const auto& [name, e] : n->entries) out.push_back(FsDirEntry{name, e.ino, e.type});
    return out;
  }
  DAXFS_ASSIGN_OR_RETURN(Directory d, base_->opendir(dir));
  for (size_t i = 0; i < d.size(); ++i) {
    DAXFS_ASSIGN_OR_RETURN(DirEntry e, d.entry(i));
    out.push_back(FsDirEntry{std::string(e.name), e.ino, e.mode & S_IFMT});
  }
  if (!d.sorted())
    std::sort(out.begin(), out.end(), [](const auto& a, const auto& b) { return a.name < b.name; });
  return out;
}

Result<std::string> Index::Readlink(Ino ino) const {
  if (const Node* n = FindNode(ino)) {
    if (!S_ISLNK(n->attr.mode)) return Status::InvalidArgument(InoStr(ino) + " is not a symlink");
    if (!n->from_base) return n->target;
  } else if (!Exists(ino)) {
    return NoEnt(ino);
  }
  DAXFS_ASSIGN_OR_RETURN(std::string_view t, base_->readlink(ino));
  return std::string(t);
}

Result<std::span<const std::byte>> Index::Read(Ino ino, uint64_t offset, size_t len) const {
  const Node* n = FindNode(ino);
  if (n == nullptr) {
    if (!Exists(ino)) return NoEnt(ino);
    return base_->read(ino, offset, len);
  }
  if (!S_ISREG(n->attr.mode)) {
    if (S_ISDIR(n->attr.mode)) return Status::IsDirectory(InoStr(ino) + " is a directory");
    return Status::InvalidArgument(InoStr(ino) + " is not a regular file");
  }
  const uint64_t size = n->attr.size;
  if (offset >= size || len == 0) return std::span<const std::byte>();
  const uint64_t end = offset + std::min<uint64_t>(len, size - offset);
  const uint64_t page = offset / bf::kPage, in_page = offset % bf::kPage;
  const uint64_t page_end = std::min(end, (page + 1) * bf::kPage);
  auto zeros = [&](uint64_t upto) {
    return ZeroPage().first(static_cast<size_t>(std::min(upto, (page + 1) * bf::kPage) - offset));
  };
  auto it = n->pages.find(page);
  if (it != n->pages.end()) {
    if (in_page >= it->second.valid) return zeros(end);
    const uint64_t stop = std::min(page_end, page * bf::kPage + it->second.valid);
    return std::span<const std::byte>(g_.region + it->second.block + in_page,
                                      static_cast<size_t>(stop - offset));
  }
  auto next = n->pages.upper_bound(page);
  const uint64_t limit = next == n->pages.end() ? end : std::min(end, next->first * bf::kPage);
  if (n->from_base && offset < n->base_valid) {
    const uint64_t want = std::min(limit, n->base_valid) - offset;
    DAXFS_ASSIGN_OR_RETURN(auto s, base_->read(ino, offset, static_cast<size_t>(want)));
    if (!s.empty()) return s;
  }
  return zeros(limit);
}

Status Index::ListXattrs(
    Ino ino, const std::function<void(std::string_view, std::span<const std::byte>)>& fn) const {
  const Node* n = FindNode(ino);
  if (n && n->xattrs_loaded) {
    for (const auto& [name, v] : n->xattrs) fn(name, v);
    return Status::OK();
  }
  if (!Exists(ino)) return NoEnt(ino);
  return base_->list_xattrs(ino, fn);
}

Result<std::span<const std::byte>> Index::GetXattr(Ino ino, std::string_view name) const {
  const Node* n = FindNode(ino);
  if (n && n->xattrs_loaded) {
    auto it = n->xattrs.find(name);
    if (it == n->xattrs.end())
      return Status::FromErrno(ENODATA, InoStr(ino) + ": no attribute " + std::string(name));
    return it->second;
  }
  if (!Exists(ino)) return NoEnt(ino);
  return base_->getxattr(ino, name);
}

std::string Index::PathOf(Ino ino) const {
  // Breadth-first from the root over at most a bounded number of entries.
  if (ino == root()) return "/";
  std::vector<std::pair<Ino, std::string>> queue{{root(), ""}};
  size_t budget = 200000;
  for (size_t i = 0; i < queue.size() && budget > 0; ++i) {
    auto list = List(queue[i].first);
    if (!list.ok()) continue;
    for (auto& e : *list) {
      if (budget-- == 0) break;
      std::string p = queue[i].second + "/" + e.name;
      if (e.ino == ino) return p;
      if ((e.mode & S_IFMT) == S_IFDIR) queue.emplace_back(e.ino, std::move(p));
    }
  }
  return InoStr(ino);
}

// ---- mutation ----

Result<Node*> Index::Mut(Ino ino) {
  auto it = nodes_.find(ino);
  if (it != nodes_.end()) return &it->second;
  if (!Exists(ino)) return NoEnt(ino);
  DAXFS_ASSIGN_OR_RETURN(FsAttr a, Stat(ino));
  Node n;
  n.attr = a;
  n.from_base = true;
  n.base_valid = S_ISREG(a.mode) ? a.size : 0;
  if (S_ISCHR(a.mode) || S_ISBLK(a.mode)) n.rdev = fmt::EncodeDev(a.rdev_major, a.rdev_minor);
  if (S_ISDIR(a.mode)) {
    DAXFS_ASSIGN_OR_RETURN(n.parent, base_->parent(ino));
  }
  return &nodes_.emplace(ino, std::move(n)).first->second;
}

Status Index::LoadEntries(Ino ino, Node* n) {
  if (n->entries_loaded) return Status::OK();
  DAXFS_ASSIGN_OR_RETURN(Directory d, base_->opendir(ino));
  for (size_t i = 0; i < d.size(); ++i) {
    DAXFS_ASSIGN_OR_RETURN(DirEntry e, d.entry(i));
    n->entries.emplace(std::string(e.name), DEnt{e.ino, e.mode & S_IFMT});
  }
  n->entries_loaded = true;
  return Status::OK();
}

Status Index::LoadXattrs(Ino ino, Node* n) {
  if (n->xattrs_loaded) return Status::OK();
  if (n->from_base) {
    DAXFS_RETURN_IF_ERROR(base_->list_xattrs(ino, [&](std::string_view k, std::span<const std::byte> v) {
      n->xattrs.emplace(std::string(k), v);
    }));
  }
  n->xattrs_loaded = true;
  return Status::OK();
}

Result<bool> Index::DirEmpty(Ino dir) const {
  const Node* n = FindNode(dir);
  if (n && n->entries_loaded) return n->entries.empty();
  DAXFS_ASSIGN_OR_RETURN(Directory d, base_->opendir(dir));
  return d.size() == 0;
}

void Index::Touch(Node* n, const Time& t, bool data) {
  n->attr.ctime_sec = t.sec;
  n->attr.ctime_nsec = t.nsec;
  if (data) {
    n->attr.mtime_sec = t.sec;
    n->attr.mtime_nsec = t.nsec;
  }
}

void Index::Drop(Ino ino) {
  nodes_.erase(ino);
  orphans_.erase(ino);
  if (ino <= g_.base_inodes) deleted_.insert(ino);
}

Status Index::KeepOrphan(Ino ino, bool is_dir, const Time& t) {
  DAXFS_ASSIGN_OR_RETURN(Node * n, Mut(ino));
  n->attr.nlink = 0;
  if (is_dir) {  // removed while open: empty, and stays so (no name leads into it)
    n->entries.clear();
    n->entries_loaded = true;
  }
  Touch(n, t, false);
  orphans_.insert(ino);
  return Status::OK();
}

void Index::DropOrphansExcept(const std::unordered_set<Ino>& keep) {
  std::vector<Ino> gone;
  for (Ino i : orphans_)
    if (!keep.count(i)) gone.push_back(i);
  for (Ino i : gone) Drop(i);
}

Status Index::Do(const Record& r, bool mutate) {
  switch (r.type) {
    case bf::kRecCreate: return DoCreate(r, mutate);
    case bf::kRecLink: return DoLink(r, mutate);
    case bf::kRecUnlink: return DoUnlink(r, mutate);
    case bf::kRecRename: return DoRename(r, mutate);
    case bf::kRecSetattr: return DoSetattr(r, mutate);
    case bf::kRecWrite: return DoWrite(r, mutate);
    case bf::kRecSetxattr:
    case bf::kRecRemovexattr: return DoXattr(r, mutate);
    case bf::kRecForget: return DoForget(r, mutate);
    case bf::kRecPad: return Status::OK();
    default:
      return Status::Corruption(std::string("record type ") + RecordTypeName(r.type) +
                                " cannot be applied here");
  }
}

Status Index::DoCreate(const Record& r, bool mutate) {
  const bool orphan = r.dir == 0;  // O_TMPFILE: no directory, no name
  if (orphan) {
    if (!S_ISREG(r.mode)) return Status::InvalidArgument("only regular files can be made without a name");
  } else {
    DAXFS_RETURN_IF_ERROR(RequireLiveDir(r.dir));
    DAXFS_ASSIGN_OR_RETURN(DEnt e, Find(r.dir, r.name));
    if (e.ino != 0) return Status::Exists(std::string(r.name) + ": file exists");
  }
  if (!ValidFileType(r.mode)) return Status::InvalidArgument("invalid file type in mode");
  if (r.ino <= g_.base_inodes || Exists(r.ino))
    return Status::Corruption("create: new " + InoStr(r.ino) + " is already in use");
  if (!mutate) return Status::OK();
  if (orphan) {
    Node n;
    n.attr.ino = r.ino;
    n.attr.mode = r.mode;
    n.attr.uid = r.uid;
    n.attr.gid = r.gid;
    n.attr.nlink = 0;
    n.attr.mtime_sec = n.attr.atime_sec = n.attr.ctime_sec = r.time.sec;
    n.attr.mtime_nsec = n.attr.atime_nsec = n.attr.ctime_nsec = r.time.nsec;
    n.xattrs_loaded = true;
    n.linkable = true;
    nodes_.emplace(r.ino, std::move(n));
    orphans_.insert(r.ino);
    return Status::OK();
  }
  DAXFS_ASSIGN_OR_RETURN(Node * dir, Mut(r.dir));
  DAXFS_RETURN_IF_ERROR(LoadEntries(r.dir, dir));
  Node n;
  n.attr.ino = r.ino;
  n.attr.mode = r.mode;
  n.attr.uid = r.uid;
  n.attr.gid = r.gid;
  n.attr.nlink = S_ISDIR(r.mode) ? 2 : 1;
  n.attr.mtime_sec = n.attr.atime_sec = n.attr.ctime_sec = r.time.sec;
  n.attr.mtime_nsec = n.attr.atime_nsec = n.attr.ctime_nsec = r.time.nsec;
  if (S_ISCHR(r.mode) || S_ISBLK(r.mode)) {
    n.rdev = r.rdev;
    n.attr.rdev_major = fmt::DevMajor(r.rdev);
    n.attr.rdev_minor = fmt::DevMinor(r.rdev);
  }
  if (S_ISLNK(r.mode)) {
    n.target = std::string(r.target);
    n.attr.size = r.target.size();
  }
  if (S_ISDIR(r.mode)) {
    n.parent = r.dir;
    n.entries_loaded = true;
    ++dir->attr.nlink;
  }
  n.xattrs_loaded = true;
  dir->entries.emplace(std::string(r.name), DEnt{r.ino, r.mode & S_IFMT});
  Touch(dir, r.time, true);
  nodes_.emplace(r.ino, std::move(n));
  return Status::OK();
}

Status Index::DoLink(const Record& r, bool mutate) {
  DAXFS_ASSIGN_OR_RETURN(uint32_t t, Type(r.ino));
  if (t == S_IFDIR) return Status::FromErrno(EPERM, InoStr(r.ino) + ": cannot hard-link a directory");
  DAXFS_RETURN_IF_ERROR(RequireLiveDir(r.dir));
  DAXFS_ASSIGN_OR_RETURN(DEnt e, Find(r.dir, r.name));
  if (e.ino != 0) return Status::Exists(std::string(r.name) + ": file exists");
  // An orphan gets a name again only if it was made nameless (O_TMPFILE),
  // as on Linux (I_LINKABLE); one whose names were removed stays gone.
  if (orphans_.count(r.ino) && !FindNode(r.ino)->linkable)
    return Status::NotFound(InoStr(r.ino) + ": was removed; it cannot be linked again");
  if (!mutate) return Status::OK();
  DAXFS_ASSIGN_OR_RETURN(Node * dir, Mut(r.dir));
  DAXFS_RETURN_IF_ERROR(LoadEntries(r.dir, dir));
  DAXFS_ASSIGN_OR_RETURN(Node * n, Mut(r.ino));
  if (orphans_.erase(r.ino)) n->linkable = false;
  ++n->attr.nlink;
  Touch(n, r.time, false);
  dir->entries.emplace(std::string(r.name), DEnt{r.ino, t});
  Touch(dir, r.time, true);
  return Status::OK();
}

Status Index::DoUnlink(const Record& r, bool mutate) {
  DAXFS_ASSIGN_OR_RETURN(DEnt e, Find(r.dir, r.name));
  if (e.ino == 0) return Status::NotFound(std::string(r.name) + ": no such file or directory");
  if (e.ino != r.ino)
    return Status::Stale(std::string(r.name) + ": names " + InoStr(e.ino) + ", the record says " +
                         InoStr(r.ino));
  const bool is_dir = e.type == S_IFDIR;
  if (r.flags && !is_dir) return Status::NotDirectory(std::string(r.name) + ": not a directory");
  if (!r.flags && is_dir) return Status::IsDirectory(std::string(r.name) + ": is a directory");
  if (is_dir) {
    DAXFS_ASSIGN_OR_RETURN(bool empty, DirEmpty(e.ino));
    if (!empty)
      return Status::FromErrno(ENOTEMPTY, std::string(r.name) + ": directory not empty");
  }
  if (!mutate) return Status::OK();
  DAXFS_ASSIGN_OR_RETURN(Node * dir, Mut(r.dir));
  DAXFS_RETURN_IF_ERROR(LoadEntries(r.dir, dir));
  dir->entries.erase(dir->entries.find(r.name));
  Touch(dir, r.time, true);
  if (is_dir) {
    --dir->attr.nlink;
    if (r.keep) return KeepOrphan(e.ino, true, r.time);
    Drop(e.ino);
    return Status::OK();
  }
  DAXFS_ASSIGN_OR_RETURN(Node * n, Mut(e.ino));
  if (n->attr.nlink <= 1) {
    if (r.keep) return KeepOrphan(e.ino, false, r.time);
    Drop(e.ino);
  } else {
    --n->attr.nlink;
    Touch(n, r.time, false);
  }
  return Status::OK();
}

Status Index::DoRename(const Record& r, bool mutate) {
  const bool exchange = r.flags & RENAME_EXCHANGE;
  const bool noreplace = r.flags & RENAME_NOREPLACE;
  DAXFS_ASSIGN_OR_RETURN(DEnt src, Find(r.dir, r.name));
  if (src.ino == 0) return Status::NotFound(std::string(r.name) + ": no such file or directory");
  if (src.ino != r.ino)
    return Status::Stale(std::string(r.name) + ": names " + InoStr(src.ino) +
                         ", the record says " + InoStr(r.ino));
  DAXFS_RETURN_IF_ERROR(RequireLiveDir(r.ddir));
  DAXFS_ASSIGN_OR_RETURN(DEnt dst, Find(r.ddir, r.name2));
  if (dst.ino != r.dino)
    return Status::Stale(std::string(r.name2) + ": names " + InoStr(dst.ino) +
                         ", the record says " + InoStr(r.dino));
  if (noreplace && dst.ino != 0) return Status::Exists(std::string(r.name2) + ": file exists");
  if (exchange && dst.ino == 0)
    return Status::NotFound(std::string(r.name2) + ": no such file or directory");
  if (dst.ino == src.ino) return Status::OK();  // same file: nothing to do (POSIX)
  // Neither directory may move into its own subtree.
  auto inside = [&](Ino moved, Ino target_dir) -> Result<bool> {
    Ino cur = target_dir;
    for (size_t steps = 0; steps < (1u << 20); ++steps) {
      if (cur == moved) return true;
      if (cur == root()) return false;
      DAXFS_ASSIGN_OR_RETURN(cur, Parent(cur));
    }
    return Status::Corruption("directory parents form a cycle");
  };
  if (src.type == S_IFDIR) {
    DAXFS_ASSIGN_OR_RETURN(bool in, inside(src.ino, r.ddir));
    if (in) return Status::InvalidArgument(std::string(r.name) + ": cannot move a directory into itself");
  }
  // A destination that contains the source (Linux checks this first).
  if (dst.type == S_IFDIR) {
    DAXFS_ASSIGN_OR_RETURN(bool in, inside(dst.ino, r.dir));
    if (in && exchange)
      return Status::InvalidArgument(std::string(r.name2) + ": cannot move a directory into itself");
    if (in)
      return Status::FromErrno(ENOTEMPTY, std::string(r.name2) + ": directory not empty (it contains the source)");
  }
  if (!exchange && dst.ino != 0) {
    if (src.type == S_IFDIR && dst.type != S_IFDIR)
      return Status::NotDirectory(std::string(r.name2) + ": not a directory");
    if (src.type != S_IFDIR && dst.type == S_IFDIR)
      return Status::IsDirectory(std::string(r.name2) + ": is a directory");
    if (dst.type == S_IFDIR) {
      DAXFS_ASSIGN_OR_RETURN(bool empty, DirEmpty(dst.ino));
      if (!empty) return Status::FromErrno(ENOTEMPTY, std::string(r.name2) + ": directory not empty");
    }
  }
  if (!mutate) return Status::OK();
  DAXFS_ASSIGN_OR_RETURN(Node * sd, Mut(r.dir));
  DAXFS_RETURN_IF_ERROR(LoadEntries(r.dir, sd));
  DAXFS_ASSIGN_OR_RETURN(Node * dd, Mut(r.ddir));
  DAXFS_RETURN_IF_ERROR(LoadEntries(r.ddir, dd));
  sd = &nodes_.at(r.dir);  // Mut may have rehashed
  DAXFS_ASSIGN_OR_RETURN(Node * moved, Mut(src.ino));
  sd = &nodes_.at(r.dir);
  dd = &nodes_.at(r.ddir);
  Touch(moved, r.time, false);
  if (exchange) {
    DAXFS_ASSIGN_OR_RETURN(Node * other, Mut(dst.ino));
    sd = &nodes_.at(r.dir);
    dd = &nodes_.at(r.ddir);
    moved = &nodes_.at(src.ino);
    Touch(other, r.time, false);
    sd->entries.find(r.name)->second = dst;
    dd->entries.find(r.name2)->second = src;
    if (r.dir != r.ddir) {
      if (src.type == S_IFDIR) {
        moved->parent = r.ddir;
        --sd->attr.nlink;
        ++dd->attr.nlink;
      }
      if (dst.type == S_IFDIR) {
        other->parent = r.dir;
        ++sd->attr.nlink;
        --dd->attr.nlink;
      }
    }
  } else {
    if (dst.ino != 0) {
      if (dst.type == S_IFDIR) {
        --dd->attr.nlink;
        if (r.keep) {
          DAXFS_RETURN_IF_ERROR(KeepOrphan(dst.ino, true, r.time));
        } else {
          Drop(dst.ino);
        }
      } else {
        DAXFS_ASSIGN_OR_RETURN(Node * victim, Mut(dst.ino));
        sd = &nodes_.at(r.dir);
        dd = &nodes_.at(r.ddir);
        moved = &nodes_.at(src.ino);
        if (victim->attr.nlink <= 1) {
          if (r.keep) {
            DAXFS_RETURN_IF_ERROR(KeepOrphan(dst.ino, false, r.time));
          } else {
            Drop(dst.ino);
          }
        } else {
          --victim->attr.nlink;
          Touch(victim, r.time, false);
        }
      }
    }
    sd = &nodes_.at(r.dir);
    dd = &nodes_.at(r.ddir);
    moved = &nodes_.at(src.ino);
    sd->entries.erase(sd->entries.find(r.name));
    dd->entries[std::string(r.name2)] = src;
    if (src.type == S_IFDIR && r.dir != r.ddir) {
      moved->parent = r.ddir;
      --sd->attr.nlink;
      ++dd->attr.nlink;
    }
  }
  Touch(sd, r.time, true);
  Touch(dd, r.time, true);
  return Status::OK();
}

Status Index::DoSetattr(const Record& r, bool mutate) {
  DAXFS_ASSIGN_OR_RETURN(uint32_t t, Type(r.ino));
  if (r.mask & bf::kSetSize) {
    if (t == S_IFDIR) return Status::IsDirectory(InoStr(r.ino) + " is a directory");
    if (t != S_IFREG) return Status::InvalidArgument(InoStr(r.ino) + " is not a regular file");
    if (r.size > (1ull << 50)) return Status::FromErrno(EFBIG, "file size too large");
  }
  if (!mutate) return Status::OK();
  DAXFS_ASSIGN_OR_RETURN(Node * n, Mut(r.ino));
  if (r.mask & bf::kSetMode) n->attr.mode = (n->attr.mode & S_IFMT) | (r.mode & 07777);
  if (r.mask & bf::kSetUid) n->attr.uid = r.uid;
  if (r.mask & bf::kSetGid) n->attr.gid = r.gid;
  if (r.mask & bf::kSetSize) {
    const uint64_t s = r.size;
    if (s < n->attr.size) {
      n->pages.erase(n->pages.lower_bound((s + bf::kPage - 1) / bf::kPage), n->pages.end());
      if (s % bf::kPage) {
        auto it = n->pages.find(s / bf::kPage);
        if (it != n->pages.end())
          it->second.valid = std::min<uint32_t>(it->second.valid, static_cast<uint32_t>(s % bf::kPage));
      }
      n->base_valid = std::min(n->base_valid, s);
    }
    n->attr.size = s;
  }
  if (r.mask & bf::kSetAtime) {
    n->attr.atime_sec = r.atime.sec;
    n->attr.atime_nsec = r.atime.nsec;
  }
  if (r.mask & bf::kSetMtime) {
    n->attr.mtime_sec = r.mtime.sec;
    n->attr.mtime_nsec = r.mtime.nsec;
  }
  Touch(n, r.time, false);
  return Status::OK();
}

Status Index::DoWrite(const Record& r, bool mutate) {
  DAXFS_ASSIGN_OR_RETURN(uint32_t t, Type(r.ino));
  if (t == S_IFDIR) return Status::IsDirectory(InoStr(r.ino) + " is a directory");
  if (t != S_IFREG) return Status::InvalidArgument(InoStr(r.ino) + " is not a regular file");
  for (uint64_t b : r.blocks)
    if (b < bf::kDeltaReserved || b % bf::kPage != 0 || b > g_.delta_size - bf::kPage)
      return Status::Corruption("write record: block offset " + std::to_string(b) +
                                " outside the delta area");
  if (!mutate) return Status::OK();
  DAXFS_ASSIGN_OR_RETURN(Node * n, Mut(r.ino));
  for (size_t i = 0; i < r.blocks.size(); ++i)
    n->pages[r.first_page + i] =
        PageRef{g_.delta_offset + r.blocks[i], static_cast<uint32_t>(bf::kPage)};
  n->attr.size = std::max(n->attr.size, r.end);
  Touch(n, r.time, true);
  return Status::OK();
}

Status Index::DoXattr(const Record& r, bool mutate) {
  if (!Exists(r.ino)) return NoEnt(r.ino);
  auto cur = GetXattr(r.ino, r.name);
  if (!cur.ok() && cur.status().errno_value() != ENODATA) return cur.status();
  const bool present = cur.ok();
  if (r.type == bf::kRecRemovexattr) {
    if (!present) return Status::FromErrno(ENODATA, std::string(r.name) + ": no such attribute");
  } else {
    if ((r.flags & XATTR_CREATE) && present)
      return Status::Exists(std::string(r.name) + ": attribute exists");
    if ((r.flags & XATTR_REPLACE) && !present)
      return Status::FromErrno(ENODATA, std::string(r.name) + ": no such attribute");
  }
  if (!mutate) return Status::OK();
  DAXFS_ASSIGN_OR_RETURN(Node * n, Mut(r.ino));
  DAXFS_RETURN_IF_ERROR(LoadXattrs(r.ino, n));
  if (r.type == bf::kRecRemovexattr) {
    n->xattrs.erase(n->xattrs.find(r.name));
  } else {
    auto it = n->xattrs.find(r.name);
    if (it != n->xattrs.end()) it->second = r.value;
    else n->xattrs.emplace(std::string(r.name), r.value);
  }
  Touch(n, r.time, false);
  return Status::OK();
}

Status Index::DoForget(const Record& r, bool mutate) {
  // Idempotent: an orphan that got a name again, or is gone, stays as it is.
  if (!mutate || !orphans_.count(r.ino)) return Status::OK();
  Drop(r.ino);
  return Status::OK();
}

}  // namespace daxfs::branch
