// Source: a directory tree on any filesystem.
#include <dirent.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <sys/xattr.h>
#include <unistd.h>

#include <algorithm>
#include <cstring>
#include <map>

#include "builder/source.h"
#include "daxfs/format.h"

namespace daxfs::build {
namespace {

class FdCloser {
 public:
  explicit FdCloser(int fd) : fd_(fd) {}
  ~FdCloser() { if (fd_ >= 0) close(fd_); }
  FdCloser(const FdCloser&) = delete;
  FdCloser& operator=(const FdCloser&) = delete;
  int get() const { return fd_; }
 private:
  int fd_;
};

Status ReadXattrs(const std::string& path, InodeRec* inode) {
  std::vector<char> names(4096);
  ssize_t n;
  for (;;) {
    n = llistxattr(path.c_str(), names.data(), names.size());
    if (n >= 0) break;
    if (errno == ENOTSUP) return Status::OK();
    if (errno != ERANGE) return Status::IOError(path + ": listxattr", errno);
    ssize_t need = llistxattr(path.c_str(), nullptr, 0);
    if (need < 0) return Status::IOError(path + ": listxattr", errno);
    names.resize(static_cast<size_t>(need) + 1);
  }
  std::vector<char> value(4096);
  for (ssize_t pos = 0; pos < n;) {
    std::string name(names.data() + pos);
    pos += static_cast<ssize_t>(name.size()) + 1;
    if (name.empty()) continue;
    ssize_t v;
    for (;;) {
      v = lgetxattr(path.c_str(), name.c_str(), value.data(), value.size());
      if (v >= 0) break;
      if (errno == ENODATA) break;
      if (errno != ERANGE) return Status::IOError(path + ": getxattr " + name, errno);
      value.resize(value.size() * 4);
    }
    if (v < 0) continue;
    if (name.size() > format::kXattrNameMax)
      return Status::InvalidArgument(path + ": xattr name '" + name + "' longer than 255 bytes");
    inode->xattrs.emplace_back(name, std::string(value.data(), static_cast<size_t>(v)));
  }
  std::sort(inode->xattrs.begin(), inode->xattrs.end());
  return Status::OK();
}

class DirectorySource final : public Source {
 public:
  explicit DirectorySource(std::string root) : root_(std::move(root)) {}

  Status Scan(Tree* tree, const BuildOptions& options) override {
    tree_ = tree;
    options_ = &options;
    struct stat st;
    if (stat(root_.c_str(), &st) != 0) return Status::IOError(root_, errno);
    if (!S_ISDIR(st.st_mode)) return Status::NotDirectory(root_ + ": not a directory");
    int fd = open(root_.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd < 0) return Status::IOError(root_ + ": cannot open", errno);
    InodeRec rec;
    DAXFS_RETURN_IF_ERROR(FillInode(st, root_, "", &rec));
    const uint32_t ino = tree->AddInode(std::move(rec));
    tree->AddNode(0, "", ino);
    return ScanDir(fd, 0, "");
  }

  uint64_t DataOrderKey(const InodeRec&) const override { return 0; }

  Status EmitData(const Tree& tree, const std::vector<uint32_t>& order,
                  DataSink* sink) override {
    int root_fd = open(root_.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (root_fd < 0) return Status::IOError(root_ + ": cannot open", errno);
    FdCloser root_closer(root_fd);
    for (uint32_t idx : order) {
      const InodeRec& inode = tree.inodes[idx];
      DAXFS_RETURN_IF_ERROR(sink->BeginFile(inode));
      DAXFS_RETURN_IF_ERROR(CopyFile(root_fd, inode, sink));
      DAXFS_RETURN_IF_ERROR(sink->EndFile());
    }
    return Status::OK();
  }

 private:
  std::string Full(const std::string& rel) const { return rel.empty() ? root_ : root_ + "/" + rel; }

  Status FillInode(const struct stat& st, const std::string& full, const std::string& rel,
                   InodeRec* rec) {
    rec->mode = st.st_mode;
    rec->uid = st.st_uid;
    rec->gid = st.st_gid;
    rec->mtime_sec = st.st_mtim.tv_sec;
    rec->mtime_nsec = static_cast<uint32_t>(st.st_mtim.tv_nsec);
    if (S_ISCHR(st.st_mode) || S_ISBLK(st.st_mode)) {
      if (major(st.st_rdev) > 0xfff || minor(st.st_rdev) > 0xfffff)
        return Status::NotSupported(full + ": device number does not fit 32-bit encoding");
      rec->rdev = format::EncodeDev(major(st.st_rdev), minor(st.st_rdev));
    }
    if (S_ISREG(st.st_mode)) rec->size = static_cast<uint64_t>(st.st_size);
    rec->source_path = rel;
    if (options_->xattrs && !options_->upstream_only) DAXFS_RETURN_IF_ERROR(ReadXattrs(full, rec));
    ApplyMetadataOptions(rec, *options_);
    return Status::OK();
  }

  // Takes ownership of dir_fd.
  Status ScanDir(int dir_fd, uint32_t node, const std::string& rel) {
    DIR* dir = fdopendir(dir_fd);
    if (dir == nullptr) {
      int err = errno;
      close(dir_fd);
      return Status::IOError(Full(rel) + ": cannot read directory", err);
    }
    struct DirGuard { DIR* d; ~DirGuard() { closedir(d); } } guard{dir};
    std::vector<std::pair<std::string, uint32_t>> subdirs;
    for (;;) {
      errno = 0;
      dirent* de = readdir(dir);
      if (de == nullptr) {
        if (errno != 0) return Status::IOError(Full(rel) + ": readdir", errno);
        break;
      }
      std::string name = de->d_name;
      if (name == "." || name == "..") continue;
      const std::string child_rel = rel.empty() ? name : rel + "/" + name;
      if (name.size() > format::kNameMax)
        return Status::InvalidArgument(Full(child_rel) + ": name longer than 255 bytes");
      struct stat st;
      if (fstatat(dirfd(dir), de->d_name, &st, AT_SYMLINK_NOFOLLOW) != 0)
        return Status::IOError(Full(child_rel) + ": stat", errno);
      uint32_t inode_idx;
      const bool linkable = !S_ISDIR(st.st_mode) && st.st_nlink > 1;
      auto found = linkable ? links_.find({st.st_dev, st.st_ino}) : links_.end();
      if (found != links_.end()) {
        inode_idx = found->second;
      } else {
        InodeRec rec;
        DAXFS_RETURN_IF_ERROR(FillInode(st, Full(child_rel), child_rel, &rec));
        if (S_ISLNK(st.st_mode)) {
          std::vector<char> buf(format::kSymlinkMax + 2);
          ssize_t n = readlinkat(dirfd(dir), de->d_name, buf.data(), buf.size());
          if (n < 0) return Status::IOError(Full(child_rel) + ": readlink", errno);
          if (n == 0 || static_cast<size_t>(n) > format::kSymlinkMax)
            return Status::InvalidArgument(Full(child_rel) + ": symlink target length " +
                                           std::to_string(n) + " not in [1, 4095]");
          rec.target.assign(buf.data(), static_cast<size_t>(n));
        }
        inode_idx = tree_->AddInode(std::move(rec));
        if (linkable) links_.emplace(std::make_pair(st.st_dev, st.st_ino), inode_idx);
      }
      const uint32_t child = tree_->AddNode(node, std::move(name), inode_idx);
      if (S_ISDIR(st.st_mode)) subdirs.emplace_back(child_rel, child);
      if (options_->progress && (tree_->nodes.size() & 1023) == 0) {
        BuildProgress p;
        p.phase = "scanning";
        p.items_done = tree_->nodes.size();
        options_->progress(p);
      }
    }
    for (auto& [child_rel, child] : subdirs) {
      const std::string& name = tree_->nodes[child].name;
      int fd = openat(dirfd(dir), name.c_str(), O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
      if (fd < 0) return Status::IOError(Full(child_rel) + ": cannot open directory", errno);
      DAXFS_RETURN_IF_ERROR(ScanDir(fd, child, child_rel));
    }
    return Status::OK();
  }

  Status CopyFile(int root_fd, const InodeRec& inode, DataSink* sink) {
    const std::string full = Full(inode.source_path);
    int fd = openat(root_fd, inode.source_path.c_str(), O_RDONLY | O_NOFOLLOW | O_CLOEXEC | O_NOATIME);
    if (fd < 0 && errno == EPERM)
      fd = openat(root_fd, inode.source_path.c_str(), O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
    if (fd < 0) return Status::IOError(full + ": cannot open", errno);
    FdCloser closer(fd);
    uint64_t pos = 0;
    // Any file of a block or more may have holes; the writer keeps every
    // whole block of a hole as a hole in the image.
    const bool may_be_sparse = inode.size >= format::kBlockSize;
    uint64_t data_end = may_be_sparse ? 0 : inode.size;  // end of the data run at pos
    while (pos < inode.size) {
      if (pos >= data_end) {
        off_t data = lseek(fd, static_cast<off_t>(pos), SEEK_DATA);
        if (data < 0 && errno == ENXIO) data = static_cast<off_t>(inode.size);
        if (data > static_cast<off_t>(pos)) {
          const uint64_t hole = std::min<uint64_t>(static_cast<uint64_t>(data), inode.size) - pos;
          DAXFS_RETURN_IF_ERROR(sink->AppendZeros(hole));
          pos += hole;
          continue;
        }
        // Read only up to the next hole, so that hole is skipped too.
        const off_t hole = lseek(fd, static_cast<off_t>(pos), SEEK_HOLE);
        data_end = hole > static_cast<off_t>(pos) ? std::min<uint64_t>(static_cast<uint64_t>(hole), inode.size)
                                                  : inode.size;
      }
      auto space = sink->Reserve(static_cast<size_t>(std::min<uint64_t>(data_end - pos, 8u << 20)));
      ssize_t n = pread(fd, space.data(), space.size(), static_cast<off_t>(pos));
      if (n < 0) {
        if (errno == EINTR) continue;
        return Status::IOError(full + ": read at offset " + std::to_string(pos), errno);
      }
      if (n == 0)
        return Status::IOError(full + ": file shrank while building (expected " +
                                   std::to_string(inode.size) + " bytes, got " +
                                   std::to_string(pos) + ")", EIO);
      DAXFS_RETURN_IF_ERROR(sink->Commit(static_cast<size_t>(n)));
      pos += static_cast<uint64_t>(n);
    }
    return Status::OK();
  }

  std::string root_;
  Tree* tree_ = nullptr;
  const BuildOptions* options_ = nullptr;
  std::map<std::pair<dev_t, ino_t>, uint32_t> links_;
};

}  // namespace

std::unique_ptr<Source> NewDirectorySource(std::string root) {
  while (root.size() > 1 && root.back() == '/') root.pop_back();
  return std::make_unique<DirectorySource>(std::move(root));
}

}  // namespace daxfs::build
