#include "builder/object_sink.h"

#include <dirent.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstdlib>
#include <cstring>

#include "util/file_io.h"

namespace daxfs::build {

namespace {
constexpr size_t kBufferSize = 1 << 20;
constexpr mode_t kObjectMode = 0444;
}  // namespace

Result<std::string> PrepareObjectDir(const std::string& dir) {
  if (mkdir(dir.c_str(), 0755) != 0 && errno != EEXIST)
    return Status::IOError(dir + ": cannot create the object directory", errno);
  char* real = realpath(dir.c_str(), nullptr);
  if (real == nullptr) return Status::IOError(dir + ": cannot resolve the object directory", errno);
  std::string out(real);
  free(real);
  struct stat st;
  if (stat(out.c_str(), &st) != 0 || !S_ISDIR(st.st_mode))
    return Status::NotDirectory(dir + ": the object directory is not a directory");
  return out;
}

Result<std::unique_ptr<ObjectDirForBuild>> ObjectDirForBuild::Prepare(const std::string& dir,
                                                                      const std::string& image) {
  if (dir.empty()) return Status::InvalidArgument("--objects: the object directory path is empty");
  // The same path for both would make a directory where the image goes.
  auto absolute = [](const std::string& p) -> std::string {
    const auto slash = p.rfind('/');
    const std::string parent = slash == std::string::npos ? "." : slash == 0 ? "/" : p.substr(0, slash);
    std::string leaf = slash == std::string::npos ? p : p.substr(slash + 1);
    char* real = realpath(parent.c_str(), nullptr);
    if (real == nullptr) return p;
    std::string out(real);
    free(real);
    return (out == "/" ? "" : out) + "/" + leaf;
  };
  std::string d = dir, i = image;
  while (d.size() > 1 && d.back() == '/') d.pop_back();
  if (absolute(d) == absolute(i))
    return Status::InvalidArgument(image + ": the image and the object directory (--objects " + dir +
                                   ") are the same path");
  auto out = std::unique_ptr<ObjectDirForBuild>(new ObjectDirForBuild());
  struct stat st;
  out->created_ = lstat(dir.c_str(), &st) != 0 && errno == ENOENT;
  DAXFS_ASSIGN_OR_RETURN(out->path_, PrepareObjectDir(dir));
  return out;
}

ObjectDirForBuild::~ObjectDirForBuild() {
  if (keep_ || !created_) return;
  // Only empty directories go: the sink already removed the objects of a
  // failed build, and anything else is not ours.
  if (DIR* d = opendir(path_.c_str())) {
    while (dirent* e = readdir(d))
      if (e->d_name[0] != '.') (void)rmdir((path_ + "/" + e->d_name).c_str());
    closedir(d);
  }
  (void)rmdir(path_.c_str());
}

ObjectSink::ObjectSink(std::string dir, uint32_t inode_count, const BuildOptions& options,
                       uint64_t files_total, uint64_t bytes_total)
    : dir_(std::move(dir)), options_(options), digests_(size_t{inode_count} + 1) {
  progress_.phase = "writing objects";
  progress_.items_total = files_total;
  progress_.bytes_total = bytes_total;
}

ObjectSink::~ObjectSink() {
  Discard();
  if (dir_fd_ >= 0) close(dir_fd_);
}

Status ObjectSink::Open() {
  if (mkdir(dir_.c_str(), 0755) != 0 && errno != EEXIST)
    return Status::IOError(dir_ + ": cannot create the object directory", errno);
  dir_fd_ = open(dir_.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (dir_fd_ < 0) return Status::IOError(dir_ + ": cannot open the object directory", errno);
  buf_.resize(kBufferSize);
  return Status::OK();
}

void ObjectSink::Discard() {
  if (fd_ >= 0) close(fd_);
  fd_ = -1;
  if (!tmp_name_.empty()) unlinkat(dir_fd_, tmp_name_.c_str(), 0);
  tmp_name_.clear();
}

Status ObjectSink::BeginFile(const InodeRec& inode) {
  cur_ino_ = inode.ino;
  cur_size_ = inode.size;
  pos_ = 0;
  fill_ = 0;
  hash_.emplace();
  fd_ = openat(dir_fd_, ".", O_TMPFILE | O_WRONLY | O_CLOEXEC, kObjectMode);
  if (fd_ < 0 && (errno == EOPNOTSUPP || errno == EISDIR || errno == EINVAL)) {
    // No O_TMPFILE here (NFS, older filesystems): a temporary name that
    // Publish links to the object's name and removes.
    tmp_name_ = ".tmp-" + std::to_string(getpid()) + "-" + std::to_string(++tmp_counter_);
    fd_ = openat(dir_fd_, tmp_name_.c_str(), O_CREAT | O_EXCL | O_WRONLY | O_CLOEXEC, kObjectMode);
    if (fd_ < 0) tmp_name_.clear();
  }
  if (fd_ < 0) return Status::IOError(dir_ + ": cannot create an object file", errno);
  // Sized before it is written: a tmpfs mounted huge=within_size then backs
  // the object with 2 MiB pages wherever it is that large, which makes
  // reads of large objects (weights, blobs) as fast as EROFS's page cache.
  if (ftruncate(fd_, static_cast<off_t>(cur_size_)) != 0) {
    const int err = errno;
    Discard();
    return Status::IOError(dir_ + ": cannot size a new object of " + std::to_string(cur_size_) + " bytes", err);
  }
  return Status::OK();
}

Status ObjectSink::Flush() {
  if (fill_ == 0) return Status::OK();
  DAXFS_RETURN_IF_ERROR(PwriteAll(fd_, {buf_.data(), fill_}, pos_, dir_ + " (new object)"));
  pos_ += fill_;
  fill_ = 0;
  return Status::OK();
}

Status ObjectSink::Append(std::span<const std::byte> bytes) {
  hash_->Update(bytes);
  while (!bytes.empty()) {
    if (fill_ == buf_.size()) DAXFS_RETURN_IF_ERROR(Flush());
    const size_t k = std::min(bytes.size(), buf_.size() - fill_);
    std::memcpy(buf_.data() + fill_, bytes.data(), k);
    fill_ += k;
    bytes = bytes.subspan(k);
  }
  return Status::OK();
}

// Holes stay holes: nothing is written, the final size comes from ftruncate.
Status ObjectSink::AppendZeros(uint64_t n) {
  DAXFS_RETURN_IF_ERROR(Flush());
  hash_->UpdateZeros(n);
  pos_ += n;
  return Status::OK();
}

std::span<std::byte> ObjectSink::Reserve(size_t want) {
  if (fill_ == buf_.size() && write_error_.ok()) {
    write_error_ = Flush();
    if (!write_error_.ok()) fill_ = 0;  // somewhere to write; Commit reports the error
  }
  return {buf_.data() + fill_, std::min(want, buf_.size() - fill_)};
}

Status ObjectSink::Commit(size_t n) {
  if (!write_error_.ok()) return write_error_;
  hash_->Update({buf_.data() + fill_, n});
  fill_ += n;
  return Status::OK();
}

Status ObjectSink::EndFile() {
  DAXFS_RETURN_IF_ERROR(Flush());
  if (pos_ != cur_size_)
    return Status::IOError(dir_ + ": inode " + std::to_string(cur_ino_) + " delivered " +
                               std::to_string(pos_) + " bytes, expected " +
                               std::to_string(cur_size_), EIO);
  if (ftruncate(fd_, static_cast<off_t>(cur_size_)) != 0)
    return Status::IOError(dir_ + ": cannot size a new object", errno);
  auto final = hash_->Final();
  if (!final.ok()) return Status::IOError(dir_ + ": inode " + std::to_string(cur_ino_) + ": " + final.status().message(), ENOMEM);
  const objects::Digest digest = *final;
  digests_[cur_ino_] = digest;
  DAXFS_RETURN_IF_ERROR(Publish(digest));
  ++progress_.items_done;
  progress_.bytes_done += cur_size_;
  if (options_.progress) options_.progress(progress_);
  return Status::OK();
}

// Gives the finished object its name, unless an object of that name (the
// same contents) is there already.
Status ObjectSink::Publish(const objects::Digest& digest) {
  const std::string rel = objects::ObjectRelPath(digest);
  const std::string path = dir_ + "/" + rel;
  for (int attempt = 0;; ++attempt) {
    int rc;
    if (tmp_name_.empty()) {
      const std::string proc = "/proc/self/fd/" + std::to_string(fd_);
      rc = linkat(AT_FDCWD, proc.c_str(), dir_fd_, rel.c_str(), AT_SYMLINK_FOLLOW);
    } else {
      rc = linkat(dir_fd_, tmp_name_.c_str(), dir_fd_, rel.c_str(), 0);
    }
    if (rc == 0) {
      ++written_;
      bytes_written_ += cur_size_;
      break;
    }
    if (errno == EEXIST) {
      ++reused_;
      bytes_reused_ += cur_size_;
      break;
    }
    if (errno == ENOENT && attempt == 0) {
      // The first object in this fan-out directory.
      if (mkdirat(dir_fd_, rel.substr(0, 2).c_str(), 0755) != 0 && errno != EEXIST)
        return Status::IOError(dir_ + "/" + rel.substr(0, 2) + ": cannot create", errno);
      continue;
    }
    return Status::IOError(path + ": cannot link the new object", errno);
  }
  Discard();
  return Status::OK();
}

}  // namespace daxfs::build
