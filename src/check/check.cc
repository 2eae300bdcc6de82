#include "daxfs/check.h"

#include "daxfs/format.h"
#include "format/names.h"

#include <sys/stat.h>

#include <algorithm>
#include <unordered_map>
#include <unordered_set>
#include <vector>

namespace daxfs {
namespace {

class Checker {
 public:
  Checker(const Image& image, const CheckOptions& options) : image_(image), options_(options) {}

  CheckResult Run() {
    const ImageInfo& info = image_.info();
    Note(image_.VerifyMetadataChecksum());
    if (options_.verify_data) Note(image_.VerifyDataChecksum());
    refs_.assign(size_t{info.inode_count} + 1, 0);
    subdirs_.assign(size_t{info.inode_count} + 1, 0);
    Walk();
    CheckInodes();
    CheckExtents();
    return result_;
  }

 private:
  void Problem(const std::string& msg) {
    ++result_.problems;
    if (options_.report) options_.report(msg);
  }
  void Warn(const std::string& msg) {
    ++result_.warnings;
    if (options_.warn) options_.warn(msg);
  }
  bool Note(const Status& s) {
    if (!s.ok()) Problem(s.message());
    return s.ok();
  }

  // Breadth-first over directories; each directory is entered only once, so
  // a corrupt image with cycles cannot loop.
  void Walk() {
    std::vector<Ino> queue{image_.root()};
    std::vector<bool> entered(refs_.size(), false);
    entered[image_.root()] = true;
    for (size_t qi = 0; qi < queue.size(); ++qi) {
      const Ino dir = queue[qi];
      auto d = image_.opendir(dir);
      if (!Note(d.status())) continue;
      std::string_view prev;
      std::unordered_set<std::string_view> names;
      for (size_t i = 0; i < d->size(); ++i) {
        auto e = d->entry(i);
        if (!Note(e.status())) continue;
        ++result_.entries;
        const std::string where = "directory inode " + std::to_string(dir) + ", entry '" +
                                  std::string(e->name) + "'";
        if (d->sorted() && i > 0 && !(prev < e->name))
          Problem(where + ": not in sorted order (lookups may miss it)");
        if (!names.insert(e->name).second) Problem(where + ": duplicate name");
        prev = e->name;
        ++refs_[e->ino];
        if (S_ISDIR(e->mode)) {
          ++subdirs_[dir];
          if (entered[e->ino]) {
            Problem(where + ": directory inode " + std::to_string(e->ino) +
                    " is linked more than once (cycle or hard-linked directory)");
            continue;
          }
          entered[e->ino] = true;
          queue.push_back(e->ino);
        }
      }
    }
  }

  void CheckInodes() {
    const ImageInfo& info = image_.info();
    for (Ino ino = 1; ino <= info.inode_count; ++ino) {
      const bool reached = ino == image_.root() || refs_[ino] > 0;
      if (!reached) {
        Problem("inode " + std::to_string(ino) + " is not reachable from the root");
        continue;
      }
      ++result_.inodes_reached;
      auto a = image_.stat(ino);
      if (!Note(a.status())) continue;
      const std::string who = "inode " + std::to_string(ino);
      if (info.daxfs_extensions) {
        const uint64_t want = S_ISDIR(a->mode) ? 2 + subdirs_[ino] : refs_[ino];
        if (a->nlink != want)
          Problem(who + ": link count " + std::to_string(a->nlink) + ", expected " +
                  std::to_string(want));
      }
      if (S_ISDIR(a->mode)) {
        auto p = image_.parent(ino);
        Note(p.status());
      }
      if (S_ISLNK(a->mode)) Note(image_.readlink(ino).status());
      Note(image_.list_xattrs(ino, [](std::string_view, std::span<const std::byte>) {}));
      // Object-store images: each file's object must exist and match its
      // name (the data checksum covers only in-image data).
      if (info.objects && S_ISREG(a->mode) && options_.verify_data) Note(image_.VerifyObject(ino));
      auto ext = image_.extent(ino);
      if (!Note(ext.status()) || ext->length == 0) continue;
      // Files smaller than a block are packed by design; larger ones are
      // block-aligned by mkdaxfs so that they can be mapped in place.
      if (S_ISREG(a->mode) && !info.objects && a->size > format::kPackedFileMax &&
          ext->offset % format::kBlockSize != 0)
        Warn(who + ": file data at offset " + std::to_string(ext->offset) +
             " is not page aligned (cannot be mapped in place)");
      if (ext->offset < info.inode_table_end)
        Problem(who + ": data at offset " + std::to_string(ext->offset) +
                " overlaps the superblocks or the inode table");
      extents_.push_back({ext->offset, ext->length, ino, S_ISREG(a->mode)});
    }
  }

  void CheckExtents() {
    // Regular files with identical contents may share one extent
    // (deduplicated data); any other overlap is damage.
    std::sort(extents_.begin(), extents_.end(), [](const Span& a, const Span& b) {
      return a.offset != b.offset ? a.offset < b.offset : a.length < b.length;
    });
    for (size_t i = 1; i < extents_.size(); ++i) {
      const Span& a = extents_[i - 1];
      const Span& b = extents_[i];
      if (a.regular && b.regular && a.offset == b.offset && a.length == b.length) {
        ++result_.shared_extents;
        continue;
      }
      if (a.offset + a.length > b.offset)
        Problem("inode " + std::to_string(a.ino) + " [" + std::to_string(a.offset) + ", +" +
                std::to_string(a.length) + ") overlaps inode " + std::to_string(b.ino) +
                " at offset " + std::to_string(b.offset));
    }
  }

  struct Span {
    uint64_t offset, length;
    Ino ino;
    bool regular;
  };
  const Image& image_;
  const CheckOptions& options_;
  CheckResult result_;
  std::vector<uint32_t> refs_;
  std::vector<uint32_t> subdirs_;
  std::vector<Span> extents_;
};

class ViewChecker {
 public:
  ViewChecker(const FsView& view, const CheckOptions& options) : view_(view), options_(options) {}

  CheckResult Run() {
    Walk();
    CheckInodes();
    return result_;
  }

 private:
  struct Seen {
    uint64_t refs = 0;     // directory entries naming it
    uint64_t subdirs = 0;  // directories: child directories
  };

  void Problem(const std::string& msg) {
    ++result_.problems;
    if (options_.report) options_.report(msg);
  }
  bool Note(const Status& s, const std::string& where) {
    if (!s.ok()) Problem(where + ": " + s.message());
    return s.ok();
  }

  void Walk() {
    const Ino root = view_.root();
    std::vector<Ino> queue{root};
    seen_[root];
    std::unordered_set<Ino> entered{root};
    for (size_t qi = 0; qi < queue.size(); ++qi) {
      const Ino dir = queue[qi];
      const std::string dwho = "directory inode " + std::to_string(dir);
      auto cur = view_.opendir(dir);
      if (!Note(cur.status(), dwho)) continue;
      std::string prev;
      bool first = true;
      for (;;) {
        auto n = (*cur)->next();
        if (!Note(n.status(), dwho)) break;
        if (!*n) break;
        const FsDirEntry& e = **n;
        ++result_.entries;
        const std::string where = dwho + ", entry '" + e.name + "'";
        if (const char* why = format::InvalidNameReason(e.name)) Problem(where + ": " + why);
        if (!first && !(prev < e.name)) Problem(where + ": not in strict name order (duplicate or unsorted)");
        first = false;
        prev = e.name;
        auto found = view_.lookup(dir, e.name);
        if (Note(found.status(), where + ": lookup") && *found != e.ino)
          Problem(where + ": lookup finds inode " + std::to_string(*found) + ", the listing inode " +
                  std::to_string(e.ino));
        auto a = view_.stat(e.ino);
        if (!Note(a.status(), where + ": inode " + std::to_string(e.ino))) continue;
        if ((a->mode & S_IFMT) != (e.mode & S_IFMT))
          Problem(where + ": entry type " + std::to_string(e.mode >> 12) + " differs from inode " +
                  std::to_string(e.ino) + "'s type " + std::to_string(a->mode >> 12));
        ++seen_[e.ino].refs;
        if (S_ISDIR(a->mode)) {
          ++seen_[dir].subdirs;
          if (!entered.insert(e.ino).second) {
            Problem(where + ": directory inode " + std::to_string(e.ino) +
                    " is linked more than once (cycle or hard-linked directory)");
            continue;
          }
          queue.push_back(e.ino);
        }
      }
    }
  }

  void CheckInodes() {
    std::vector<Ino> inos;
    inos.reserve(seen_.size());
    for (const auto& [ino, s] : seen_) inos.push_back(ino);
    std::sort(inos.begin(), inos.end());
    std::vector<std::byte> buf;
    for (Ino ino : inos) {
      ++result_.inodes_reached;
      const Seen& s = seen_[ino];
      const std::string who = "inode " + std::to_string(ino);
      auto a = view_.stat(ino);
      if (!Note(a.status(), who)) continue;
      const uint64_t want = S_ISDIR(a->mode) ? 2 + s.subdirs : s.refs;
      if (a->nlink != want)
        Problem(who + ": link count " + std::to_string(a->nlink) + ", expected " + std::to_string(want));
      if (S_ISLNK(a->mode)) {
        auto t = view_.readlink(ino);
        if (Note(t.status(), who) && t->size() != a->size)
          Problem(who + ": symlink target is " + std::to_string(t->size()) + " bytes, size says " +
                  std::to_string(a->size));
      }
      Note(view_.list_xattrs(ino, [](std::string_view, std::span<const std::byte>) {}), who + ": xattrs");
      if (options_.verify_data && S_ISREG(a->mode)) {
        uint64_t at = 0;
        for (;;) {
          auto piece = view_.read(ino, at, a->size - std::min(at, a->size) + 1);
          if (!Note(piece.status(), who + ": read at offset " + std::to_string(at))) break;
          if (piece->empty()) break;
          at += piece->size();
        }
        if (at != a->size)
          Problem(who + ": reads " + std::to_string(at) + " bytes, size is " + std::to_string(a->size));
      }
    }
  }

  const FsView& view_;
  const CheckOptions& options_;
  CheckResult result_;
  std::unordered_map<Ino, Seen> seen_;
};

}  // namespace

CheckResult CheckView(const FsView& view, const CheckOptions& options) {
  return ViewChecker(view, options).Run();
}

CheckResult CheckImage(const Image& image, const CheckOptions& options) {
  return Checker(image, options).Run();
}

}  // namespace daxfs
