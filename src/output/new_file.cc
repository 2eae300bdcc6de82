#include "output/new_file.h"

#include <fcntl.h>
#include <limits.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <cstring>

#include "format/file_type.h"

namespace daxfs::output {
namespace {

Status RefuseNonRegular(const std::string& path, const struct stat& st, bool via_symlink) {
  const std::string what = std::string(via_symlink ? "is a symbolic link to " : "is ") +
                           DescribeFileType(st.st_mode);
  if (S_ISDIR(st.st_mode))
    return Status::IsDirectory(path + ": " + what + "; give a file name for the output");
  return Status::InvalidArgument(path + ": " + what +
                                 ", not a regular file: refusing to replace it");
}

// ".NAME.tmp.XXXXXX", kept within NAME_MAX.
std::string HiddenTempName(const std::string& name) {
  unsigned char rnd[6];
  if (getrandom(rnd, sizeof rnd, 0) != sizeof rnd) {
    const unsigned v = static_cast<unsigned>(getpid()) ^ static_cast<unsigned>(clock());
    std::memcpy(rnd, &v, sizeof v);
    rnd[4] = rnd[5] = 0;
  }
  static const char kChars[] = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789";
  std::string suffix = ".tmp.";
  for (unsigned char c : rnd) suffix += kChars[c % (sizeof kChars - 1)];
  const size_t room = NAME_MAX - 1 - suffix.size();
  return "." + name.substr(0, room) + suffix;
}

}  // namespace

Status NewFile::CheckTarget(const std::string& path) {
  struct stat st;
  if (lstat(path.c_str(), &st) != 0) {
    if (errno == ENOENT) return Status::OK();
    return Status::FromErrno(errno, path + ": cannot check the output path: " + std::strerror(errno));
  }
  if (S_ISREG(st.st_mode)) return Status::OK();
  if (!S_ISLNK(st.st_mode)) return RefuseNonRegular(path, st, false);
  if (stat(path.c_str(), &st) != 0) {
    if (errno == ENOENT)
      return Status::InvalidArgument(path + ": is a symbolic link to a missing file: refusing to follow it");
    return Status::FromErrno(errno, path + ": cannot follow the symbolic link: " + std::strerror(errno));
  }
  if (!S_ISREG(st.st_mode)) return RefuseNonRegular(path, st, true);
  return Status::OK();
}

Result<std::unique_ptr<NewFile>> NewFile::Create(const std::string& path, mode_t mode) {
  DAXFS_RETURN_IF_ERROR(CheckTarget(path));
  std::unique_ptr<NewFile> f(new NewFile());
  f->path_ = path;
  // A symlink to a regular file is written through: the target is replaced.
  std::string target = path;
  struct stat st;
  if (lstat(path.c_str(), &st) == 0 && S_ISLNK(st.st_mode)) {
    char* real = realpath(path.c_str(), nullptr);
    if (real == nullptr) return Status::FromErrno(errno, path + ": cannot resolve: " + std::strerror(errno));
    target = real;
    std::free(real);
  }
  const auto slash = target.rfind('/');
  f->dir_ = slash == std::string::npos ? "." : slash == 0 ? "/" : target.substr(0, slash);
  f->name_ = slash == std::string::npos ? target : target.substr(slash + 1);
  if (f->name_.empty() || f->name_ == "." || f->name_ == "..")
    return Status::IsDirectory(path + ": names a directory; give a file name for the output");

  f->dir_fd_ = open(f->dir_.c_str(), O_PATH | O_DIRECTORY | O_CLOEXEC);
  if (f->dir_fd_ < 0) {
    const int err = errno;
    if (err == ENOENT) return Status::NotFound(path + ": directory " + f->dir_ + " does not exist");
    if (err == ENOTDIR) return Status::NotDirectory(path + ": " + f->dir_ + " is not a directory");
    return Status::FromErrno(err, path + ": cannot open directory " + f->dir_ + ": " + std::strerror(err));
  }
  f->fd_ = openat(f->dir_fd_, ".", O_TMPFILE | O_RDWR | O_CLOEXEC, mode);
  if (f->fd_ >= 0) return f;
  if (errno != EOPNOTSUPP && errno != EISDIR && errno != EINVAL)
    return Status::FromErrno(errno, path + ": cannot create a file in " + f->dir_ + ": " +
                                        std::strerror(errno));
  // No O_TMPFILE here: a hidden name, registered before it exists so a
  // signal can never leave it behind unregistered.
  for (int attempt = 0; attempt < 100; ++attempt) {
    std::string tmp = HiddenTempName(f->name_);
    auto guard = std::make_unique<TempName>(f->dir_fd_, tmp);
    f->fd_ = openat(f->dir_fd_, tmp.c_str(), O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, mode);
    if (f->fd_ >= 0) {
      f->temp_name_ = std::move(tmp);
      f->temp_guard_ = std::move(guard);
      return f;
    }
    if (errno != EEXIST) break;
  }
  return Status::FromErrno(errno, path + ": cannot create a temporary file in " + f->dir_ + ": " +
                                      std::strerror(errno));
}

NewFile::~NewFile() {
  if (fd_ >= 0) close(fd_);
  if (!published_ && !temp_name_.empty()) unlinkat(dir_fd_, temp_name_.c_str(), 0);
  temp_guard_.reset();
  if (dir_fd_ >= 0) close(dir_fd_);
}

int NewFile::LinkAs(const std::string& name) const {
  char proc[64];
  std::snprintf(proc, sizeof proc, "/proc/self/fd/%d", fd_);
  if (linkat(AT_FDCWD, proc, dir_fd_, name.c_str(), AT_SYMLINK_FOLLOW) == 0) return 0;
  if (errno != ENOENT) return -1;
  // No /proc: AT_EMPTY_PATH needs CAP_DAC_READ_SEARCH but works without it.
  return linkat(fd_, "", dir_fd_, name.c_str(), AT_EMPTY_PATH);
}

Status NewFile::CheckStillReplaceable() const {
  struct stat st;
  if (fstatat(dir_fd_, name_.c_str(), &st, AT_SYMLINK_NOFOLLOW) != 0 || S_ISREG(st.st_mode))
    return Status::OK();
  return RefuseNonRegular(path_, st, false);  // something else appeared meanwhile
}

Status NewFile::Publish() {
  if (published_) return Status::OK();
  DAXFS_RETURN_IF_ERROR(CheckStillReplaceable());
  if (!temp_name_.empty()) {
    if (renameat(dir_fd_, temp_name_.c_str(), dir_fd_, name_.c_str()) != 0)
      return Status::FromErrno(errno, path_ + ": cannot rename " + temp_name_ + " into place: " +
                                          std::strerror(errno));
    published_ = true;
    temp_guard_.reset();
    return Status::OK();
  }
  if (LinkAs(name_) == 0) {
    published_ = true;
    return Status::OK();
  }
  if (errno != EEXIST)
    return Status::FromErrno(errno, path_ + ": cannot link the new file into " + dir_ + ": " +
                                        std::strerror(errno));
  // Replacing a file: a complete copy under a hidden name, then rename(2),
  // so readers see the old file or the new one, never a mix.
  for (int attempt = 0; attempt < 100; ++attempt) {
    const std::string tmp = HiddenTempName(name_);
    TempName guard(dir_fd_, tmp);
    if (LinkAs(tmp) != 0) {
      if (errno == EEXIST) continue;
      return Status::FromErrno(errno, path_ + ": cannot link the new file into " + dir_ + ": " +
                                          std::strerror(errno));
    }
    if (renameat(dir_fd_, tmp.c_str(), dir_fd_, name_.c_str()) != 0) {
      const int err = errno;
      unlinkat(dir_fd_, tmp.c_str(), 0);
      return Status::FromErrno(err, path_ + ": cannot replace the previous file: " + std::strerror(err));
    }
    published_ = true;
    return Status::OK();
  }
  return Status::Exists(path_ + ": cannot find a free temporary name in " + dir_);
}

}  // namespace daxfs::output
