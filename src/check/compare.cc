// CompareViews: two views of one tree, walked side by side.
#include <sys/stat.h>

#include <algorithm>
#include <cstring>
#include <unordered_map>
#include <vector>

#include "daxfs/check.h"

namespace daxfs {

namespace {

class Comparer {
 public:
  Comparer(const FsView& a, const FsView& b, const CheckOptions& o, std::string an, std::string bn)
      : a_(a), b_(b), o_(o), an_(std::move(an)), bn_(std::move(bn)) {}

  CheckResult Run() {
    todo_.push_back({a_.root(), b_.root(), "/"});
    while (!todo_.empty()) {
      Item it = std::move(todo_.back());
      todo_.pop_back();
      Visit(it);
    }
    return r_;
  }

 private:
  struct Item {
    Ino a, b;
    std::string path;
  };

  void Problem(const std::string& path, const std::string& what) {
    ++r_.problems;
    if (o_.report) o_.report(path + ": " + what);
  }
  template <typename T>
  void Same(const std::string& path, const char* field, T x, T y) {
    if (x != y) Problem(path, std::string(field) + " differs: " + std::to_string(x) + " in the " + an_ + " view, " +
                                  std::to_string(y) + " in the " + bn_ + " view");
  }

  void Visit(const Item& it) {
    auto fa = a_.stat(it.a);
    auto fb = b_.stat(it.b);
    if (!fa.ok() || !fb.ok()) {
      Problem(it.path, fa.ok() ? fb.status().message() : fa.status().message());
      return;
    }
    // Hard links: an inode met again must be the same inode in both views.
    auto [ia, fresh_a] = a2b_.emplace(it.a, it.b);
    auto [ib, fresh_b] = b2a_.emplace(it.b, it.a);
    if (ia->second != it.b || ib->second != it.a) {
      Problem(it.path, "hard links differ between the " + an_ + " and " + bn_ + " views");
      return;
    }
    if (!fresh_a) return;
    ++r_.inodes_reached;
    const FsAttr& x = *fa;
    const FsAttr& y = *fb;
    Same(it.path, "mode", x.mode, y.mode);
    Same(it.path, "uid", x.uid, y.uid);
    Same(it.path, "gid", x.gid, y.gid);
    Same(it.path, "link count", x.nlink, y.nlink);
    Same(it.path, "mtime", x.mtime_sec, y.mtime_sec);
    Same(it.path, "mtime ns", x.mtime_nsec, y.mtime_nsec);
    if ((x.mode & S_IFMT) != (y.mode & S_IFMT)) return;
    if (S_ISCHR(x.mode) || S_ISBLK(x.mode)) {
      Same(it.path, "device major", x.rdev_major, y.rdev_major);
      Same(it.path, "device minor", x.rdev_minor, y.rdev_minor);
    }
    if (!S_ISDIR(x.mode)) Same(it.path, "size", x.size, y.size);
    CompareXattrs(it);
    if (S_ISLNK(x.mode)) {
      auto ta = a_.readlink(it.a);
      auto tb = b_.readlink(it.b);
      if (!ta.ok() || !tb.ok()) Problem(it.path, ta.ok() ? tb.status().message() : ta.status().message());
      else if (*ta != *tb) Problem(it.path, "symlink targets differ");
    } else if (S_ISREG(x.mode) && o_.verify_data && x.size == y.size) {
      CompareData(it, x.size);
    } else if (S_ISDIR(x.mode)) {
      CompareDirectory(it);
    }
  }

  void CompareXattrs(const Item& it) {
    using List = std::vector<std::pair<std::string, std::vector<std::byte>>>;
    auto collect = [](const FsView& v, Ino ino, List* out) {
      return v.list_xattrs(ino, [&](std::string_view n, std::span<const std::byte> val) {
        out->emplace_back(std::string(n), std::vector<std::byte>(val.begin(), val.end()));
      });
    };
    List xa, xb;
    Status sa = collect(a_, it.a, &xa), sb = collect(b_, it.b, &xb);
    if (!sa.ok() || !sb.ok()) return Problem(it.path, sa.ok() ? sb.message() : sa.message());
    std::sort(xa.begin(), xa.end());
    std::sort(xb.begin(), xb.end());
    if (xa != xb) Problem(it.path, "xattrs differ");
  }

  void CompareData(const Item& it, uint64_t size) {
    std::vector<std::byte> ba(1 << 20), bb(1 << 20);
    for (uint64_t at = 0; at < size;) {
      const size_t n = static_cast<size_t>(std::min<uint64_t>(ba.size(), size - at));
      auto ra = a_.read_into(it.a, at, {ba.data(), n});
      auto rb = b_.read_into(it.b, at, {bb.data(), n});
      if (!ra.ok() || !rb.ok()) return Problem(it.path, ra.ok() ? rb.status().message() : ra.status().message());
      if (*ra != n || *rb != n) return Problem(it.path, "short read at offset " + std::to_string(at));
      if (std::memcmp(ba.data(), bb.data(), n) != 0)
        return Problem(it.path, "contents differ in [" + std::to_string(at) + ", " + std::to_string(at + n) + ")");
      at += n;
    }
  }

  void CompareDirectory(const Item& it) {
    auto list = [](const FsView& v, Ino dir, std::vector<FsDirEntry>* out) -> Status {
      DAXFS_ASSIGN_OR_RETURN(auto c, v.opendir(dir));
      for (;;) {
        DAXFS_ASSIGN_OR_RETURN(auto e, c->next());
        if (!e) return Status::OK();
        out->push_back(std::move(*e));
      }
    };
    std::vector<FsDirEntry> ea, eb;
    Status sa = list(a_, it.a, &ea), sb = list(b_, it.b, &eb);
    if (!sa.ok() || !sb.ok()) return Problem(it.path, sa.ok() ? sb.message() : sa.message());
    auto by_name = [](const FsDirEntry& p, const FsDirEntry& q) { return p.name < q.name; };
    std::sort(ea.begin(), ea.end(), by_name);
    std::sort(eb.begin(), eb.end(), by_name);
    r_.entries += ea.size();
    size_t i = 0, j = 0;
    const std::string prefix = it.path == "/" ? "/" : it.path + "/";
    while (i < ea.size() || j < eb.size()) {
      if (j == eb.size() || (i < ea.size() && ea[i].name < eb[j].name)) {
        Problem(prefix + ea[i++].name, "only in the " + an_ + " view");
      } else if (i == ea.size() || eb[j].name < ea[i].name) {
        Problem(prefix + eb[j++].name, "only in the " + bn_ + " view");
      } else {
        // The type in the entry (what readdir's d_type reports) too.
        const uint32_t ta = ea[i].mode & S_IFMT, tb = eb[j].mode & S_IFMT;
        if (ta != 0 && tb != 0 && ta != tb) Problem(prefix + ea[i].name, "the directory entries give different file types");
        todo_.push_back({ea[i].ino, eb[j].ino, prefix + ea[i].name});
        ++i;
        ++j;
      }
    }
  }

  const FsView& a_;
  const FsView& b_;
  const CheckOptions& o_;
  std::string an_, bn_;
  CheckResult r_;
  std::vector<Item> todo_;
  std::unordered_map<Ino, Ino> a2b_, b2a_;
};

}  // namespace

CheckResult CompareViews(const FsView& a, const FsView& b, const CheckOptions& options, const std::string& a_name,
                         const std::string& b_name) {
  return Comparer(a, b, options, a_name, b_name).Run();
}

}  // namespace daxfs
