#include "container/blob_store.h"

#include <archive.h>
#include <archive_entry.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <map>
#include <vector>

#include "util/path_components.h"

namespace daxfs::container {

namespace {

// "./a//b" -> "a/b", "a/../b" -> "b"; "" for a name that leaves the top.
std::string CleanName(std::string_view in) {
  const auto comps = SplitPathComponents(in, DotDot::kResolve);
  return comps ? JoinPathComponents(*comps) : std::string();
}

class FdStream final : public BlobStream {
 public:
  FdStream(int fd, std::string name) : fd_(fd), name_(std::move(name)) {}
  ~FdStream() override { close(fd_); }
  Result<size_t> Read(std::span<std::byte> out) override {
    for (;;) {
      const ssize_t n = read(fd_, out.data(), out.size());
      if (n >= 0) return static_cast<size_t>(n);
      if (errno != EINTR) return Status::IOError(name_ + ": read", errno);
    }
  }

 private:
  int fd_;
  std::string name_;
};

class DirectoryStore final : public BlobStore {
 public:
  explicit DirectoryStore(std::string dir) : dir_(std::move(dir)) {}
  Result<std::unique_ptr<BlobStream>> Open(const std::string& name) const override {
    const std::string clean = CleanName(name);
    if (clean.empty()) return Status::InvalidArgument(Where(name) + ": names a file outside the image layout");
    // O_NOFOLLOW on the last component: a layout is plain files.
    const int fd = open((dir_ + "/" + clean).c_str(), O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
    if (fd < 0) return Status::FromErrno(errno, Where(name) + ": " + std::strerror(errno));
    struct stat st;
    if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
      close(fd);
      return Status::InvalidArgument(Where(name) + ": not a regular file");
    }
    return std::unique_ptr<BlobStream>(new FdStream(fd, Where(name)));
  }
  bool Exists(const std::string& name) const override {
    const std::string clean = CleanName(name);
    struct stat st;
    return !clean.empty() && lstat((dir_ + "/" + clean).c_str(), &st) == 0 && S_ISREG(st.st_mode);
  }
  std::string Where(const std::string& name) const override { return dir_ + "/" + name; }

 private:
  std::string dir_;
};

struct ArchiveFree {
  void operator()(archive* a) const { archive_read_free(a); }
};
using ArchivePtr = std::unique_ptr<archive, ArchiveFree>;

std::string ArchiveMessage(archive* a) {
  const char* m = archive_error_string(a);
  return m ? m : "unknown error";
}

// One member of the archive, read through a reader of its own.
class MemberStream final : public BlobStream {
 public:
  MemberStream(ArchivePtr a, std::string where) : a_(std::move(a)), where_(std::move(where)) {}
  Result<size_t> Read(std::span<std::byte> out) override {
    const la_ssize_t n = archive_read_data(a_.get(), out.data(), out.size());
    if (n < 0) return Status::Corruption(where_ + ": " + ArchiveMessage(a_.get()));
    return static_cast<size_t>(n);
  }

 private:
  ArchivePtr a_;
  std::string where_;
};

class ArchiveStore final : public BlobStore {
 public:
  explicit ArchiveStore(std::string path) : path_(std::move(path)) {}

  // One pass over the headers: which members there are, and where.
  Status Index() {
    DAXFS_ASSIGN_OR_RETURN(ArchivePtr a, OpenReader());
    archive_entry* e;
    for (uint64_t i = 0;; ++i) {
      const int r = archive_read_next_header(a.get(), &e);
      if (r == ARCHIVE_EOF) break;
      if (r < ARCHIVE_WARN) return Status::Corruption(path_ + ": reading member " + std::to_string(i) + ": " + ArchiveMessage(a.get()));
      const char* raw = archive_entry_pathname(e);
      const std::string name = CleanName(raw ? raw : "");
      if (name.empty()) continue;
      Member m;
      m.index = i;
      m.type = archive_entry_filetype(e);
      if (m.type == AE_IFLNK && archive_entry_symlink(e)) m.link = archive_entry_symlink(e);
      if (const char* hard = archive_entry_hardlink(e)) {
        m.type = AE_IFLNK;  // a hard link reads as its target
        m.link = "/" + CleanName(hard);
      }
      members_[name] = m;
    }
    return Status::OK();
  }

  Result<std::unique_ptr<BlobStream>> Open(const std::string& name) const override {
    DAXFS_ASSIGN_OR_RETURN(const Member* m, Find(name));
    DAXFS_ASSIGN_OR_RETURN(ArchivePtr a, OpenReader());
    archive_entry* e;
    for (uint64_t i = 0; i <= m->index; ++i) {
      if (archive_read_next_header(a.get(), &e) < ARCHIVE_WARN)
        return Status::Corruption(Where(name) + ": " + ArchiveMessage(a.get()));
    }
    return std::unique_ptr<BlobStream>(new MemberStream(std::move(a), Where(name)));
  }
  bool Exists(const std::string& name) const override { return Find(name).ok(); }
  std::string Where(const std::string& name) const override { return path_ + ":" + name; }

 private:
  struct Member {
    uint64_t index = 0;
    unsigned type = 0;
    std::string link;  // symlink target ("/x" = from the top)
  };

  // The regular member `name` names, following links inside the archive
  // (docker-archive has <id>/layer.tar -> ../<digest>.tar).
  Result<const Member*> Find(const std::string& name) const {
    std::string cur = CleanName(name);
    for (int hops = 0; hops < 8 && !cur.empty(); ++hops) {
      auto it = members_.find(cur);
      if (it == members_.end()) return Status::NotFound(Where(name) + ": no such file in the archive");
      const Member& m = it->second;
      if (m.type == AE_IFREG) return &m;
      if (m.type != AE_IFLNK) return Status::InvalidArgument(Where(name) + ": not a regular file");
      const size_t slash = cur.rfind('/');
      cur = CleanName(m.link.starts_with('/') ? m.link
                                              : (slash == std::string::npos ? "" : cur.substr(0, slash + 1)) + m.link);
    }
    return Status::InvalidArgument(Where(name) + ": a link that leads nowhere in the archive");
  }

  Result<ArchivePtr> OpenReader() const {
    ArchivePtr a(archive_read_new());
    if (!a) return Status::IOError(path_ + ": libarchive", ENOMEM);
    archive_read_support_filter_all(a.get());
    archive_read_support_format_tar(a.get());
    if (archive_read_open_filename(a.get(), path_.c_str(), 1 << 20) != ARCHIVE_OK) {
      const int err = archive_errno(a.get());
      if (err == ENOENT || err == EACCES || err == EPERM || err == EISDIR)
        return Status::FromErrno(err, path_ + ": " + std::strerror(err));
      return Status::InvalidArgument(path_ + ": not a tar archive (" + ArchiveMessage(a.get()) + ")");
    }
    return a;
  }

  std::string path_;
  std::map<std::string, Member> members_;
};

}  // namespace

Result<std::unique_ptr<BlobStore>> OpenDirectoryStore(const std::string& dir) {
  struct stat st;
  if (stat(dir.c_str(), &st) != 0) return Status::FromErrno(errno, dir + ": " + std::strerror(errno));
  if (!S_ISDIR(st.st_mode)) return Status::NotDirectory(dir + ": not a directory (oci: names an OCI layout directory)");
  return std::unique_ptr<BlobStore>(new DirectoryStore(dir));
}

Result<std::unique_ptr<BlobStore>> OpenArchiveStore(const std::string& path) {
  struct stat st;
  if (stat(path.c_str(), &st) != 0) return Status::FromErrno(errno, path + ": " + std::strerror(errno));
  if (!S_ISREG(st.st_mode)) return Status::InvalidArgument(path + ": not a regular file (an image archive is a tar file)");
  auto store = std::make_unique<ArchiveStore>(path);
  DAXFS_RETURN_IF_ERROR(store->Index());
  return std::unique_ptr<BlobStore>(std::move(store));
}

Result<std::string> ReadSmallBlob(const BlobStore& store, const std::string& name, size_t max) {
  DAXFS_ASSIGN_OR_RETURN(auto s, store.Open(name));
  std::string out;
  char buf[64 * 1024];
  for (;;) {
    DAXFS_ASSIGN_OR_RETURN(size_t n, s->Read(std::as_writable_bytes(std::span(buf))));
    if (n == 0) return out;
    if (out.size() + n > max)
      return Status::InvalidArgument(store.Where(name) + ": larger than " + std::to_string(max) + " bytes");
    out.append(buf, n);
  }
}

}  // namespace daxfs::container
