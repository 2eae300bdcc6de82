#include "daxfs/extract.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <sys/xattr.h>
#include <unistd.h>

#include <algorithm>
#include <cstring>
#include <unordered_map>
#include <vector>

namespace daxfs {
namespace {

bool AllZero(std::span<const std::byte> s) {
  return std::all_of(s.begin(), s.end(), [](std::byte b) { return b == std::byte{0}; });
}

Status WriteFile(const std::string& path, std::span<const std::byte> data, uint32_t mode) {
  int fd = open(path.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, mode & 07777);
  if (fd < 0) return Status::IOError(path + ": create", errno);
  Status st;
  constexpr size_t kBlock = 4096;
  size_t pos = 0;
  while (pos < data.size() && st.ok()) {
    // Find the next run of non-zero blocks and write it; skip zero blocks.
    size_t end = pos;
    while (end < data.size() && !AllZero(data.subspan(end, std::min(kBlock, data.size() - end))))
      end += std::min(kBlock, data.size() - end);
    for (size_t w = pos; w < end;) {
      ssize_t n = pwrite(fd, data.data() + w, end - w, static_cast<off_t>(w));
      if (n < 0) {
        if (errno == EINTR) continue;
        st = Status::IOError(path + ": write", errno);
        break;
      }
      w += static_cast<size_t>(n);
    }
    pos = end;
    while (pos < data.size() && AllZero(data.subspan(pos, std::min(kBlock, data.size() - pos))))
      pos += std::min(kBlock, data.size() - pos);
  }
  if (st.ok() && ftruncate(fd, static_cast<off_t>(data.size())) != 0)
    st = Status::IOError(path + ": truncate", errno);
  close(fd);
  return st;
}

class Extractor {
 public:
  Extractor(const Image& image, const ExtractOptions& options) : image_(image), options_(options) {}

  Status Run(Ino top, const std::string& dest) {
    DAXFS_ASSIGN_OR_RETURN(Attr top_attr, image_.stat(top));
    if (!S_ISDIR(top_attr.mode)) {
      return Status::NotDirectory("extracting a single non-directory is not supported; give its directory");
    }
    if (mkdir(dest.c_str(), 0700) != 0 && errno != EEXIST)
      return Status::IOError(dest + ": mkdir", errno);
    struct stat st;
    if (stat(dest.c_str(), &st) != 0 || !S_ISDIR(st.st_mode))
      return Status::NotDirectory(dest + ": exists and is not a directory");
    std::vector<std::pair<Ino, std::string>> dirs{{top, dest}};
    for (size_t i = 0; i < dirs.size(); ++i) {
      const auto [dir, path] = dirs[i];
      DAXFS_ASSIGN_OR_RETURN(Directory d, image_.opendir(dir));
      for (size_t k = 0; k < d.size(); ++k) {
        DAXFS_ASSIGN_OR_RETURN(DirEntry e, d.entry(k));
        const std::string child = path + "/" + std::string(e.name);
        DAXFS_ASSIGN_OR_RETURN(Attr a, image_.stat(e.ino));
        if (S_ISDIR(a.mode)) {
          if (mkdir(child.c_str(), 0700) != 0) return Status::IOError(child + ": mkdir", errno);
          dirs.emplace_back(e.ino, child);
          continue;
        }
        if (a.nlink > 1) {
          auto [it, fresh] = first_path_.emplace(e.ino, child);
          if (!fresh) {
            if (link(it->second.c_str(), child.c_str()) != 0)
              return Status::IOError(child + ": link to " + it->second, errno);
            continue;
          }
        }
        DAXFS_RETURN_IF_ERROR(Create(e.ino, a, child));
        DAXFS_RETURN_IF_ERROR(ApplyMetadata(e.ino, a, child));
      }
    }
    // Directory metadata last, deepest first, so creating children does not
    // disturb the parents' mtimes and read-only modes do not block creation.
    for (auto it = dirs.rbegin(); it != dirs.rend(); ++it) {
      DAXFS_ASSIGN_OR_RETURN(Attr a, image_.stat(it->first));
      DAXFS_RETURN_IF_ERROR(ApplyMetadata(it->first, a, it->second));
    }
    return Status::OK();
  }

 private:
  Status Create(Ino ino, const Attr& a, const std::string& path) {
    switch (a.mode & S_IFMT) {
      case S_IFREG: {
        DAXFS_ASSIGN_OR_RETURN(auto data, image_.contents(ino));
        return WriteFile(path, data, 0600);
      }
      case S_IFLNK: {
        DAXFS_ASSIGN_OR_RETURN(std::string_view target, image_.readlink(ino));
        if (symlink(std::string(target).c_str(), path.c_str()) != 0)
          return Status::IOError(path + ": symlink", errno);
        return Status::OK();
      }
      case S_IFCHR: case S_IFBLK: case S_IFIFO: case S_IFSOCK: {
        if ((S_ISCHR(a.mode) || S_ISBLK(a.mode)) && !options_.devices) {
          if (options_.warn) options_.warn(path + ": device node skipped");
          return Status::OK();
        }
        if (mknod(path.c_str(), (a.mode & S_IFMT) | 0600, makedev(a.rdev_major, a.rdev_minor)) != 0)
          return Status::IOError(path + ": mknod", errno);
        return Status::OK();
      }
      default:
        return Status::Corruption("inode " + std::to_string(ino) + ": unknown file type");
    }
  }

  // Order matters: chown clears setuid bits and file capabilities, so the
  // owner goes first, then the mode, then xattrs, then the times.
  Status ApplyMetadata(Ino ino, const Attr& a, const std::string& path) {
    if (options_.owners && lchown(path.c_str(), a.uid, a.gid) != 0) {
      if (errno != EPERM) return Status::IOError(path + ": chown", errno);
      if (options_.warn) options_.warn(path + ": owner not restored (not permitted)");
    }
    if (!S_ISLNK(a.mode) && chmod(path.c_str(), a.mode & 07777) != 0)
      return Status::IOError(path + ": chmod", errno);
    if (options_.xattrs) {
      Status st;
      DAXFS_RETURN_IF_ERROR(image_.list_xattrs(ino, [&](std::string_view name, std::span<const std::byte> v) {
        if (!st.ok()) return;
        if (lsetxattr(path.c_str(), std::string(name).c_str(), v.data(), v.size(), 0) != 0) {
          if (errno == ENOTSUP || errno == EPERM) {
            if (options_.warn) options_.warn(path + ": xattr " + std::string(name) + " not restored: " + std::strerror(errno));
          } else {
            st = Status::IOError(path + ": setxattr " + std::string(name), errno);
          }
        }
      }));
      DAXFS_RETURN_IF_ERROR(st);
    }
    timespec times[2];
    times[0].tv_sec = a.mtime_sec;
    times[0].tv_nsec = a.mtime_nsec;
    times[1] = times[0];
    if (utimensat(AT_FDCWD, path.c_str(), times, AT_SYMLINK_NOFOLLOW) != 0)
      return Status::IOError(path + ": set times", errno);
    return Status::OK();
  }

  const Image& image_;
  const ExtractOptions& options_;
  std::unordered_map<Ino, std::string> first_path_;
};

}  // namespace

Status Extract(const Image& image, const std::string& subtree, const std::string& dest_dir,
               const ExtractOptions& options) {
  DAXFS_ASSIGN_OR_RETURN(Ino top, image.resolve(subtree));
  return Extractor(image, options).Run(top, dest_dir);
}

}  // namespace daxfs
