// ObjectSink: writes each regular file's contents as an object file named
// by its SHA-256 (docs/FORMAT.md §6.2) instead of into the image.
//
// An object appears under its name only once it is complete: it is written
// to an unnamed O_TMPFILE (or, where the filesystem lacks O_TMPFILE, a
// temporary name) and then hard-linked to OBJDIR/ab/cdef.... If that name
// exists already, the contents are the same (same hash) and the existing
// object is kept: identical files within an image, across images and across
// layers are stored once. Objects are created read-only (0444).
#pragma once

#include <cstdint>
#include <optional>
#include <memory>
#include <string>
#include <vector>

#include "builder/source.h"
#include "daxfs/builder.h"
#include "daxfs/status.h"
#include "objects/sha256.h"

namespace daxfs::build {

// Creates the object directory if missing (not its parents) and returns
// its absolute path without symlinks: what the image records.
Result<std::string> PrepareObjectDir(const std::string& dir);

// The object directory of one build: made ready (PrepareObjectDir) after
// checking that it is not the image path itself, and removed again, with
// the empty fan-out directories under it, when the build fails and this
// build created it. A failed build leaves nothing of its own behind.
class ObjectDirForBuild {
 public:
  static Result<std::unique_ptr<ObjectDirForBuild>> Prepare(const std::string& dir, const std::string& image);
  ~ObjectDirForBuild();
  const std::string& path() const { return path_; }
  void Keep() { keep_ = true; }  // the build succeeded

 private:
  std::string path_;
  bool created_ = false;
  bool keep_ = false;
};

class ObjectSink final : public DataSink {
 public:
  ObjectSink(std::string dir, uint32_t inode_count, const BuildOptions& options,
             uint64_t files_total, uint64_t bytes_total);
  ~ObjectSink() override;
  ObjectSink(const ObjectSink&) = delete;
  ObjectSink& operator=(const ObjectSink&) = delete;

  // Opens (creating if needed) the object directory.
  Status Open();

  Status BeginFile(const InodeRec& inode) override;
  Status Append(std::span<const std::byte> bytes) override;
  Status AppendZeros(uint64_t n) override;
  std::span<std::byte> Reserve(size_t want) override;
  Status Commit(size_t n) override;
  Status EndFile() override;

  // The digest of every regular file with data, index = ino.
  const std::vector<objects::Digest>& digests() const { return digests_; }
  uint64_t objects_written() const { return written_; }
  uint64_t objects_reused() const { return reused_; }
  uint64_t bytes_written() const { return bytes_written_; }
  uint64_t bytes_reused() const { return bytes_reused_; }

 private:
  Status Flush();
  Status Publish(const objects::Digest& digest);
  void Discard();

  std::string dir_;
  int dir_fd_ = -1;
  const BuildOptions& options_;
  std::vector<objects::Digest> digests_;

  int fd_ = -1;                 // the object being written
  std::string tmp_name_;        // its temporary name, if not O_TMPFILE
  uint32_t cur_ino_ = 0;
  uint64_t cur_size_ = 0;
  uint64_t pos_ = 0;            // file offset of buf_[0]
  std::vector<std::byte> buf_;
  size_t fill_ = 0;
  std::optional<objects::Sha256> hash_;
  uint64_t tmp_counter_ = 0;
  Status write_error_;          // a failed flush in Reserve, reported by Commit

  uint64_t written_ = 0, reused_ = 0, bytes_written_ = 0, bytes_reused_ = 0;
  BuildProgress progress_;
};

}  // namespace daxfs::build
