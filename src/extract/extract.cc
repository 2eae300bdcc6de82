// Extraction works relative to directory descriptors (openat, mkdirat, ...),
// never with full paths, so trees deeper than PATH_MAX come out whole. A
// new destination is filled under a hidden name and renamed into place; on
// any failure or interrupt everything created is removed again.
#include "daxfs/extract.h"

#include <dirent.h>
#include <fcntl.h>
#include <limits.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <sys/xattr.h>
#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <cstring>
#include <unordered_map>
#include <unordered_set>
#include <vector>

#include "daxfs/format.h"
#include "daxfs/fs_view.h"
#include "format/file_type.h"
#include "format/names.h"
#include "output/interrupt.h"

namespace daxfs {
namespace {

constexpr size_t kChunk = 16u << 20;  // bytes written between interrupt checks

class Fd {
 public:
  explicit Fd(int fd = -1) : fd_(fd) {}
  ~Fd() { reset(); }
  Fd(Fd&& o) noexcept : fd_(o.fd_) { o.fd_ = -1; }
  Fd& operator=(Fd&& o) noexcept {
    if (this != &o) { reset(); fd_ = o.fd_; o.fd_ = -1; }
    return *this;
  }
  int get() const { return fd_; }
  void reset() {
    if (fd_ >= 0) close(fd_);
    fd_ = -1;
  }

 private:
  int fd_;
};

bool AllZero(std::span<const std::byte> s) {
  return std::all_of(s.begin(), s.end(), [](std::byte b) { return b == std::byte{0}; });
}

// "/proc/self/fd/N/NAME": a short path to `name` in a directory descriptor,
// for the calls that have no *at() form (lsetxattr).
std::string ProcPath(int dir_fd, const std::string& name) {
  return "/proc/self/fd/" + std::to_string(dir_fd) + "/" + name;
}

// Removes `name` in `dir_fd` and everything below it, without following
// symlinks; makes directories writable first (we created them).
void RemoveTree(int dir_fd, const std::string& name) {
  if (unlinkat(dir_fd, name.c_str(), 0) == 0 || (errno != EISDIR && errno != EPERM)) return;
  Fd fd(openat(dir_fd, name.c_str(), O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC));
  if (fd.get() < 0) return;
  fchmod(fd.get(), 0700);
  std::vector<std::string> names;
  if (DIR* d = fdopendir(dup(fd.get()))) {
    while (dirent* de = readdir(d))
      if (std::strcmp(de->d_name, ".") != 0 && std::strcmp(de->d_name, "..") != 0) names.emplace_back(de->d_name);
    closedir(d);
  }
  for (const auto& n : names) RemoveTree(fd.get(), n);
  fd.reset();
  unlinkat(dir_fd, name.c_str(), AT_REMOVEDIR);
}

class Extractor {
 public:
  // `health`: the state of the memory behind `view` (after a bus error it
  // reads as zeros; stop with the real cause).
  Extractor(const FsView& view, std::function<Status()> health, const ExtractOptions& options)
      : view_(view), health_(std::move(health)), options_(options) {}

  Status Run(Ino top, const std::string& dest) {
    DAXFS_ASSIGN_OR_RETURN(FsAttr top_attr, view_.stat(top));
    if (!S_ISDIR(top_attr.mode))
      return Status::NotDirectory("extracting a single non-directory is not supported; give its directory");
    DAXFS_RETURN_IF_ERROR(OpenDestination(dest));
    Status st = Tree(top, top_attr, dest);
    if (st.ok()) st = Publish(dest);
    if (!st.ok()) Undo();
    return st;
  }

 private:
  struct Frame {
    Ino ino;
    FsAttr attr;
    Fd fd;
    std::unique_ptr<DirCursor> dir;
    std::string name;  // in the parent
    std::string path;  // for messages
  };

  // An existing directory is filled in place (what we create in it is
  // tracked for undoing); a missing one is built under a hidden name next
  // to it and renamed into place at the end.
  Status OpenDestination(const std::string& dest) {
    struct stat st;
    if (stat(dest.c_str(), &st) == 0) {
      if (!S_ISDIR(st.st_mode))
        return Status::NotDirectory(dest + ": exists and is " + DescribeFileType(st.st_mode) +
                                    ", not a directory");
      root_ = Fd(open(dest.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
      if (root_.get() < 0) return Status::FromErrno(errno, dest + ": cannot open: " + std::strerror(errno));
      return Status::OK();
    }
    if (errno != ENOENT) return Status::FromErrno(errno, dest + ": " + std::strerror(errno));
    if (lstat(dest.c_str(), &st) == 0)
      return Status::InvalidArgument(dest + ": is a symbolic link to a missing directory: refusing to follow it");
    std::string d = dest;
    while (d.size() > 1 && d.back() == '/') d.pop_back();
    const auto slash = d.rfind('/');
    const std::string parent = slash == std::string::npos ? "." : slash == 0 ? "/" : d.substr(0, slash);
    final_name_ = slash == std::string::npos ? d : d.substr(slash + 1);
    parent_ = Fd(open(parent.c_str(), O_PATH | O_DIRECTORY | O_CLOEXEC));
    if (parent_.get() < 0) {
      if (errno == ENOENT) return Status::NotFound(dest + ": parent directory " + parent + " does not exist");
      return Status::FromErrno(errno, dest + ": cannot open " + parent + ": " + std::strerror(errno));
    }
    for (int attempt = 0; attempt < 100; ++attempt) {
      unsigned char rnd[6];
      if (getrandom(rnd, sizeof rnd, 0) != sizeof rnd) std::memset(rnd, attempt, sizeof rnd);
      char suffix[32];
      std::snprintf(suffix, sizeof suffix, ".tmp.%02x%02x%02x%02x%02x%02x", rnd[0], rnd[1], rnd[2],
                    rnd[3], rnd[4], rnd[5]);
      std::string tmp = "." + final_name_.substr(0, NAME_MAX - 1 - std::strlen(suffix)) + suffix;
      if (mkdirat(parent_.get(), tmp.c_str(), 0700) == 0) {
        temp_name_ = std::move(tmp);
        break;
      }
      if (errno != EEXIST) return Status::FromErrno(errno, dest + ": cannot create a directory in " + parent + ": " + std::strerror(errno));
    }
    if (temp_name_.empty()) return Status::Exists(dest + ": no free temporary name in " + parent);
    root_ = Fd(openat(parent_.get(), temp_name_.c_str(), O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC));
    if (root_.get() < 0) return Status::FromErrno(errno, dest + ": cannot open " + temp_name_ + ": " + std::strerror(errno));
    return Status::OK();
  }

  Status Publish(const std::string& dest) {
    if (temp_name_.empty()) return Status::OK();
    int rc = renameat2(parent_.get(), temp_name_.c_str(), parent_.get(), final_name_.c_str(), RENAME_NOREPLACE);
    if (rc != 0 && (errno == EINVAL || errno == ENOSYS))  // no RENAME_NOREPLACE here
      rc = renameat(parent_.get(), temp_name_.c_str(), parent_.get(), final_name_.c_str());
    if (rc != 0) return Status::FromErrno(errno, dest + ": cannot move the extracted tree into place: " + std::strerror(errno));
    temp_name_.clear();
    return Status::OK();
  }

  void Undo() {
    if (!temp_name_.empty()) {
      root_.reset();
      RemoveTree(parent_.get(), temp_name_);
      return;
    }
    for (auto it = created_top_.rbegin(); it != created_top_.rend(); ++it) RemoveTree(root_.get(), *it);
  }

  Status Interrupted(const std::string& path) const {
    return Status::IOError(path + ": extraction interrupted by a signal", EINTR);
  }

  // After a bus error the image reads as zeros: stop with the real cause.
  Status RegionHealth() const { return health_ ? health_() : Status::OK(); }

  Status Tree(Ino top, const FsAttr& top_attr, const std::string& dest) {
    std::unordered_set<Ino> seen_dirs{top};
    std::vector<Frame> stack;
    {
      DAXFS_ASSIGN_OR_RETURN(auto d, view_.opendir(top));
      Fd root_copy(fcntl(root_.get(), F_DUPFD_CLOEXEC, 0));
      if (root_copy.get() < 0) return Status::IOError(dest + ": dup", errno);
      stack.push_back(Frame{top, top_attr, std::move(root_copy), std::move(d), "", dest});
    }
    while (!stack.empty()) {
      if (output::DeferInterrupts::Requested()) return Interrupted(stack.back().path);
      Frame& f = stack.back();
      DAXFS_ASSIGN_OR_RETURN(std::optional<FsDirEntry> next, f.dir->next());
      if (!next) {
        // Directory metadata after its children, so creating them neither
        // changes its mtime nor is blocked by a read-only mode.
        DAXFS_RETURN_IF_ERROR(RegionHealth());
        const int parent_fd = stack.size() > 1 ? stack[stack.size() - 2].fd.get() : -1;
        DAXFS_RETURN_IF_ERROR(ApplyMetadata(f.ino, f.attr, f.path, f.fd.get(), parent_fd, f.name));
        stack.pop_back();
        continue;
      }
      const FsDirEntry& e = *next;
      const std::string name(e.name);
      if (const char* why = format::InvalidNameReason(name))
        return Status::Corruption("directory inode " + std::to_string(f.ino) + ": entry name: " + why);
      const std::string path = f.path + "/" + name;
      DAXFS_ASSIGN_OR_RETURN(FsAttr a, view_.stat(e.ino));
      const int dir_fd = f.fd.get();
      const bool top_level = stack.size() == 1;
      if (S_ISDIR(a.mode)) {
        if (!seen_dirs.insert(e.ino).second)
          return Status::Corruption(path + ": directory inode " + std::to_string(e.ino) +
                                    " appears twice in the tree (a loop)");
        if (mkdirat(dir_fd, name.c_str(), 0700) != 0)
          return Status::FromErrno(errno, path + ": mkdir: " + std::strerror(errno));
        if (top_level) created_top_.push_back(name);
        Fd child(openat(dir_fd, name.c_str(), O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC));
        if (child.get() < 0) {
          const int err = errno;
          return Status::FromErrno(err, path + ": cannot open: " + std::strerror(err) +
                                            (err == EMFILE ? " (one descriptor per directory level: raise the open-file limit, ulimit -n)" : ""));
        }
        DAXFS_ASSIGN_OR_RETURN(auto d, view_.opendir(e.ino));
        stack.push_back(Frame{e.ino, a, std::move(child), std::move(d), name, path});
        continue;
      }
      if (a.nlink > 1) {
        auto it = first_path_.find(e.ino);
        if (it != first_path_.end()) {
          DAXFS_RETURN_IF_ERROR(Link(it->second, dir_fd, name, path));
          if (top_level) created_top_.push_back(name);
          continue;
        }
      }
      DAXFS_RETURN_IF_ERROR(Create(e.ino, a, dir_fd, name, path, top_level));
      DAXFS_RETURN_IF_ERROR(RegionHealth());
      if (a.nlink > 1) {
        std::vector<std::string> where;
        for (size_t i = 1; i < stack.size(); ++i) where.push_back(stack[i].name);
        where.push_back(name);
        first_path_.emplace(e.ino, std::move(where));
      }
    }
    return Status::OK();
  }

  // A hard link to the first name of the inode, found by walking from the
  // root one component at a time (no full path, whatever the depth).
  Status Link(const std::vector<std::string>& first, int dir_fd, const std::string& name,
              const std::string& path) {
    Fd cur(fcntl(root_.get(), F_DUPFD_CLOEXEC, 0));
    for (size_t i = 0; i + 1 < first.size() && cur.get() >= 0; ++i)
      cur = Fd(openat(cur.get(), first[i].c_str(), O_PATH | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC));
    if (cur.get() < 0 || linkat(cur.get(), first.back().c_str(), dir_fd, name.c_str(), 0) != 0)
      return Status::FromErrno(errno, path + ": hard link: " + std::strerror(errno));
    return Status::OK();
  }

  Status Create(Ino ino, const FsAttr& a, int dir_fd, const std::string& name, const std::string& path,
                bool top_level) {
    switch (a.mode & S_IFMT) {
      case S_IFREG: {
        Fd fd(openat(dir_fd, name.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600));
        if (fd.get() < 0) return Status::FromErrno(errno, path + ": create: " + std::strerror(errno));
        if (top_level) created_top_.push_back(name);
        DAXFS_RETURN_IF_ERROR(WriteData(ino, a.size, fd.get(), path));
        return ApplyMetadata(ino, a, path, fd.get(), dir_fd, name);
      }
      case S_IFLNK: {
        DAXFS_ASSIGN_OR_RETURN(std::string target, view_.readlink(ino));
        if (symlinkat(target.c_str(), dir_fd, name.c_str()) != 0)
          return Status::FromErrno(errno, path + ": symlink: " + std::strerror(errno));
        break;
      }
      case S_IFCHR: case S_IFBLK: case S_IFIFO: case S_IFSOCK: {
        if ((S_ISCHR(a.mode) || S_ISBLK(a.mode)) && !options_.devices) {
          if (options_.warn) options_.warn(path + ": device node skipped");
          return Status::OK();
        }
        if (mknodat(dir_fd, name.c_str(), (a.mode & S_IFMT) | 0600, makedev(a.rdev_major, a.rdev_minor)) != 0)
          return Status::FromErrno(errno, path + ": mknod: " + std::strerror(errno));
        break;
      }
      default:
        return Status::Corruption("inode " + std::to_string(ino) + ": unknown file type");
    }
    if (top_level) created_top_.push_back(name);
    return ApplyMetadata(ino, a, path, -1, dir_fd, name);
  }

  // Writes the non-zero 4 KiB blocks and leaves zero blocks as holes. The
  // view hands out the data as spans (the whole file for an image; pieces
  // that end at block boundaries for a branch), each written in place.
  Status WriteData(Ino ino, uint64_t size, int fd, const std::string& path) {
    size_t since_check = 0;
    uint64_t at = 0;
    while (at < size) {
      auto piece = view_.read(ino, at, static_cast<size_t>(std::min<uint64_t>(size - at, SIZE_MAX)));
      if (!piece.ok()) return piece.status().WithContext(path);  // names the file, e.g. a missing object
      if (piece->empty()) break;
      DAXFS_RETURN_IF_ERROR(WritePiece(fd, *piece, at, path, &since_check));
      at += piece->size();
    }
    if (ftruncate(fd, static_cast<off_t>(at)) != 0)
      return Status::FromErrno(errno, path + ": truncate: " + std::strerror(errno));
    return Status::OK();
  }

  // `data` is the file's bytes at offset `base` (a multiple of 4 KiB or the
  // rest of the file after a piece that ended on a block boundary).
  Status WritePiece(int fd, std::span<const std::byte> data, uint64_t base, const std::string& path,
                    size_t* since_check) {
    constexpr size_t kBlock = format::kBlockSize;
    size_t pos = 0;
    auto block = [&](size_t at) { return data.subspan(at, std::min(kBlock, data.size() - at)); };
    while (pos < data.size()) {
      size_t end = pos;
      while (end < data.size() && !AllZero(block(end))) end += block(end).size();
      for (size_t w = pos; w < end;) {
        const uint64_t off = base + w;
        ssize_t n = pwrite(fd, data.data() + w, std::min(end - w, kChunk), static_cast<off_t>(off));
        if (n < 0) {
          if (errno == EINTR) continue;
          if (errno == EFAULT && !RegionHealth().ok()) return RegionHealth();
          return Status::FromErrno(errno, path + ": write at offset " + std::to_string(off) + ": " +
                                              std::strerror(errno));
        }
        w += static_cast<size_t>(n);
        *since_check += static_cast<size_t>(n);
        if (*since_check >= kChunk) {
          *since_check = 0;
          if (output::DeferInterrupts::Requested()) return Interrupted(path);
        }
      }
      pos = end;
      while (pos < data.size() && AllZero(block(pos))) pos += block(pos).size();
    }
    return Status::OK();
  }

  // Through `fd` when there is one, else by name in `dir_fd` (links, nodes).
  // Order matters: chown clears setuid bits and file capabilities, so the
  // owner goes first, then the mode, then xattrs, then the times.
  Status ApplyMetadata(Ino ino, const FsAttr& a, const std::string& path, int fd, int dir_fd,
                       const std::string& name) {
    auto fail = [&](const char* what) {
      return Status::FromErrno(errno, path + ": " + what + ": " + std::strerror(errno));
    };
    if (options_.owners) {
      const int rc = fd >= 0 ? fchown(fd, a.uid, a.gid)
                             : fchownat(dir_fd, name.c_str(), a.uid, a.gid, AT_SYMLINK_NOFOLLOW);
      if (rc != 0) {
        if (errno != EPERM) return fail("chown");
        if (options_.warn) options_.warn(path + ": owner not restored (not permitted)");
      }
    }
    if (!S_ISLNK(a.mode)) {
      const int rc = fd >= 0 ? fchmod(fd, a.mode & 07777) : fchmodat(dir_fd, name.c_str(), a.mode & 07777, 0);
      if (rc != 0) return fail("chmod");
    }
    if (options_.xattrs) {
      Status st;
      const std::string by_name = fd >= 0 ? "" : ProcPath(dir_fd, name);
      DAXFS_RETURN_IF_ERROR(view_.list_xattrs(ino, [&](std::string_view xname, std::span<const std::byte> v) {
        if (!st.ok()) return;
        const std::string n(xname);
        const int rc = fd >= 0 ? fsetxattr(fd, n.c_str(), v.data(), v.size(), 0)
                               : lsetxattr(by_name.c_str(), n.c_str(), v.data(), v.size(), 0);
        if (rc == 0) return;
        if (errno == ENOTSUP || errno == EPERM) {
          if (options_.warn) options_.warn(path + ": xattr " + n + " not restored: " + std::strerror(errno));
        } else {
          st = Status::FromErrno(errno, path + ": setxattr " + n + ": " + std::strerror(errno));
        }
      }));
      DAXFS_RETURN_IF_ERROR(st);
    }
    timespec times[2];
    times[0].tv_sec = a.atime_sec;  // an image stores only mtime: atime equals it
    times[0].tv_nsec = a.atime_nsec;
    times[1].tv_sec = a.mtime_sec;
    times[1].tv_nsec = a.mtime_nsec;
    const int rc = fd >= 0 ? futimens(fd, times) : utimensat(dir_fd, name.c_str(), times, AT_SYMLINK_NOFOLLOW);
    if (rc != 0) return fail("set times");
    return Status::OK();
  }

  const FsView& view_;
  std::function<Status()> health_;
  const ExtractOptions& options_;
  Fd root_;                 // the directory being filled
  Fd parent_;               // its parent, when it is built under temp_name_
  std::string temp_name_;   // set while a new destination is hidden
  std::string final_name_;
  std::vector<std::string> created_top_;  // names created in an existing destination
  std::unordered_map<Ino, std::vector<std::string>> first_path_;  // components from the root
};

Status ExtractTop(const FsView& view, Ino top, const std::string& dest_dir, const ExtractOptions& options,
                  std::function<Status()> health) {
  // A terminating signal stops the extraction, which then removes what it
  // created before the process ends by that signal.
  output::DeferInterrupts defer;
  return Extractor(view, std::move(health), options).Run(top, dest_dir);
}

}  // namespace

Status Extract(const FsView& view, const std::string& subtree, const std::string& dest_dir,
               const ExtractOptions& options, std::function<Status()> health) {
  DAXFS_ASSIGN_OR_RETURN(Ino top, view.resolve(subtree));
  return ExtractTop(view, top, dest_dir, options, std::move(health));
}

Status Extract(const Image& image, const std::string& subtree, const std::string& dest_dir,
               const ExtractOptions& options) {
  DAXFS_ASSIGN_OR_RETURN(Ino top, image.resolve(subtree));
  // The caller keeps `image` alive for the call: a non-owning view.
  auto view = MakeImageView(std::shared_ptr<const Image>(&image, [](const Image*) {}));
  const Region& region = image.region();
  return ExtractTop(*view, top, dest_dir, options, [&region] { return region.status(); });
}

}  // namespace daxfs
