// ObjectCache: an object-store image's file data (docs/FORMAT.md §6.2),
// mapped lazily from the object directory, verified against its name before
// the first byte is handed out, and kept in a bounded set of mappings.
//
// Integrity: the first time an Image maps or opens an object it hashes the
// whole file and compares with the digest the image names; a mismatch is
// Corruption (EIO through the mount), never wrong bytes. The object file's
// identity (device, inode, ctime, size) is remembered, so a later mapping of
// the same unchanged file skips the hash and a replaced or rewritten file is
// hashed again. `daxfs check` hashes every object.
//
// Thread safety: every method may be called from any thread.
#pragma once

#include <sys/types.h>

#include <cstdint>
#include <list>
#include <memory>
#include <mutex>
#include <span>
#include <string>
#include <unordered_map>

#include "daxfs/status.h"
#include "objects/sha256.h"

namespace daxfs::objects {

// One object file mapped read-only; unmapped when the last holder lets go.
class ObjectMapping {
 public:
  ObjectMapping(const std::byte* data, size_t size) : data_(data), size_(size) {}
  ~ObjectMapping();
  ObjectMapping(const ObjectMapping&) = delete;
  ObjectMapping& operator=(const ObjectMapping&) = delete;
  std::span<const std::byte> bytes() const { return {data_, size_}; }

 private:
  const std::byte* data_;
  size_t size_;
};

class ObjectCache {
 public:
  // `dir_fd` (owned) is the object directory, `dir` its name for messages.
  ObjectCache(int dir_fd, std::string dir, size_t max_mappings);
  ~ObjectCache();
  ObjectCache(const ObjectCache&) = delete;
  ObjectCache& operator=(const ObjectCache&) = delete;

  const std::string& dir() const { return dir_; }

  // The object's bytes (size > 0), mapped and verified. `what` names the
  // file for messages ("inode 12").
  Result<std::shared_ptr<const ObjectMapping>> Map(const Digest& digest, uint64_t size,
                                                   const std::string& what);
  // A read-only descriptor of the verified object (the caller closes it).
  Result<int> OpenVerified(const Digest& digest, uint64_t size, const std::string& what);
  // Hashes the object now, whatever was verified before (daxfs check).
  Status Verify(const Digest& digest, uint64_t size, const std::string& what);

 private:
  struct Identity {
    dev_t dev;
    ino_t ino;
    int64_t ctime_sec;
    int64_t ctime_nsec;
    uint64_t size;
    bool operator==(const Identity&) const = default;
  };
  struct Entry {
    std::shared_ptr<const ObjectMapping> mapping;
    std::list<std::string>::iterator lru;
  };
  // Opens the object and checks type and size; fills *id.
  Result<int> OpenChecked(const Digest& digest, uint64_t size, const std::string& what,
                          Identity* id);
  // Hashes fd's contents unless this identity was verified already.
  Status VerifyFd(int fd, const Identity& id, const Digest& digest, const std::string& what,
                  bool force);

  int dir_fd_;
  std::string dir_;
  size_t max_mappings_;
  std::mutex mu_;
  // Keyed by the digest's bytes: files with the same contents share one.
  std::unordered_map<std::string, Entry> mapped_;
  std::list<std::string> lru_;  // most recently used first
  std::unordered_map<std::string, Identity> verified_;
};

}  // namespace daxfs::objects
