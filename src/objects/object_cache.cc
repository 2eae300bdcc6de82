#include "objects/object_cache.h"

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <vector>

namespace daxfs::objects {

namespace {

std::string Key(const Digest& d) { return std::string(reinterpret_cast<const char*>(d.data()), d.size()); }

}  // namespace

ObjectMapping::~ObjectMapping() {
  if (size_ > 0) munmap(const_cast<std::byte*>(data_), size_);
}

ObjectCache::ObjectCache(int dir_fd, std::string dir, size_t max_mappings)
    : dir_fd_(dir_fd), dir_(std::move(dir)), max_mappings_(max_mappings ? max_mappings : 1) {}

ObjectCache::~ObjectCache() { close(dir_fd_); }

Result<int> ObjectCache::OpenChecked(const Digest& digest, uint64_t size, const std::string& what,
                                     Identity* id) {
  const std::string rel = ObjectRelPath(digest);
  const std::string path = dir_ + "/" + rel;
  const int fd = openat(dir_fd_, rel.c_str(), O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
  if (fd < 0) {
    const int err = errno;
    if (err == ENOENT)
      return Status::NotFound(what + ": object " + path + " is missing from the object directory");
    return Status::IOError(what + ": cannot open object " + path, err);
  }
  struct stat st;
  if (fstat(fd, &st) != 0) {
    const int err = errno;
    close(fd);
    return Status::IOError(what + ": cannot stat object " + path, err);
  }
  if (!S_ISREG(st.st_mode) || static_cast<uint64_t>(st.st_size) != size) {
    close(fd);
    return Status::Corruption(what + ": object " + path + " is " +
                              (S_ISREG(st.st_mode) ? std::to_string(st.st_size) + " bytes"
                                                   : std::string("not a regular file")) +
                              ", the image says " + std::to_string(size) + " bytes");
  }
  *id = Identity{st.st_dev, st.st_ino, st.st_ctim.tv_sec, st.st_ctim.tv_nsec, size};
  return fd;
}

Status ObjectCache::VerifyFd(int fd, const Identity& id, const Digest& digest,
                             const std::string& what, bool force) {
  const std::string key = Key(digest);
  if (!force) {
    std::lock_guard lock(mu_);
    auto it = verified_.find(key);
    if (it != verified_.end() && it->second == id) return Status::OK();
  }
  // pread rather than a mapping: a file that shrinks under us gives a short
  // read (an error), not SIGBUS.
  Sha256 hash;
  std::vector<std::byte> buf(1 << 20);
  uint64_t done = 0;
  while (done < id.size) {
    const ssize_t n = pread(fd, buf.data(), buf.size(), static_cast<off_t>(done));
    if (n < 0) {
      if (errno == EINTR) continue;
      return Status::IOError(what + ": reading object " + dir_ + "/" + ObjectRelPath(digest) +
                                 " at offset " + std::to_string(done), errno);
    }
    if (n == 0)
      return Status::Corruption(what + ": object " + dir_ + "/" + ObjectRelPath(digest) +
                                " ends at offset " + std::to_string(done) + ", expected " +
                                std::to_string(id.size) + " bytes");
    hash.Update({buf.data(), static_cast<size_t>(n)});
    done += static_cast<uint64_t>(n);
  }
  DAXFS_ASSIGN_OR_RETURN(const Digest got, hash.Final());
  if (got != digest)
    return Status::Corruption(what + ": object " + dir_ + "/" + ObjectRelPath(digest) +
                              " does not match its name (its contents hash to " + DigestHex(got) +
                              ")");
  std::lock_guard lock(mu_);
  verified_[key] = id;
  return Status::OK();
}

Result<std::shared_ptr<const ObjectMapping>> ObjectCache::Map(const Digest& digest, uint64_t size,
                                                              const std::string& what) {
  const std::string key = Key(digest);
  {
    std::lock_guard lock(mu_);
    auto it = mapped_.find(key);
    if (it != mapped_.end()) {
      // Two inodes may name one object with different sizes only in a
      // damaged image: the mapping has the object's real size.
      const size_t have = it->second.mapping->bytes().size();
      if (have != size)
        return Status::Corruption(what + ": object " + dir_ + "/" + ObjectRelPath(digest) + " is " +
                                  std::to_string(have) + " bytes, the image says " + std::to_string(size) +
                                  " bytes");
      lru_.splice(lru_.begin(), lru_, it->second.lru);
      return it->second.mapping;
    }
  }
  DAXFS_ASSIGN_OR_RETURN(int fd, OpenVerified(digest, size, what));
  void* p = mmap(nullptr, size, PROT_READ, MAP_SHARED, fd, 0);
  const int err = errno;
  close(fd);
  if (p == MAP_FAILED)
    return Status::IOError(what + ": cannot map object " + dir_ + "/" + ObjectRelPath(digest), err);
  auto mapping = std::make_shared<const ObjectMapping>(static_cast<const std::byte*>(p), size);
  std::lock_guard lock(mu_);
  auto [it, inserted] = mapped_.try_emplace(key);
  if (!inserted) {  // another thread mapped it meanwhile: keep ours, verified for this size
    lru_.splice(lru_.begin(), lru_, it->second.lru);
    return std::shared_ptr<const ObjectMapping>(std::move(mapping));
  }
  lru_.push_front(key);
  it->second = Entry{mapping, lru_.begin()};
  // Holders of an evicted mapping keep it alive; the cache just forgets it.
  while (mapped_.size() > max_mappings_) {
    mapped_.erase(lru_.back());
    lru_.pop_back();
  }
  return std::shared_ptr<const ObjectMapping>(std::move(mapping));
}

Result<int> ObjectCache::OpenVerified(const Digest& digest, uint64_t size, const std::string& what) {
  Identity id;
  DAXFS_ASSIGN_OR_RETURN(int fd, OpenChecked(digest, size, what, &id));
  Status s = VerifyFd(fd, id, digest, what, false);
  if (!s.ok()) {
    close(fd);
    return s;
  }
  return fd;
}

Status ObjectCache::Verify(const Digest& digest, uint64_t size, const std::string& what) {
  Identity id;
  DAXFS_ASSIGN_OR_RETURN(int fd, OpenChecked(digest, size, what, &id));
  Status s = VerifyFd(fd, id, digest, what, true);
  close(fd);
  return s;
}

}  // namespace daxfs::objects
