// A file that gets its name only once it is complete: mkdaxfs images and
// `daxfs load` into files.
//
// Create() refuses a target that exists and is not a regular file (a device,
// FIFO, socket, directory, or a symlink to one is never replaced; a symlink
// to a regular file is followed) and opens an unnamed file in the target's
// directory (O_TMPFILE). Publish() links it in place, atomically replacing a
// previous file. A NewFile destroyed unpublished leaves nothing behind, even
// when the process is killed (SIGKILL included).
//
// Where the filesystem lacks O_TMPFILE, the file is created under a hidden
// name (".NAME.tmp.XXXXXX") that is removed on failure and on SIGINT, SIGTERM
// and SIGHUP (see interrupt.h); only SIGKILL can leave it behind then.
#pragma once

#include <sys/types.h>

#include <memory>
#include <string>

#include "daxfs/status.h"
#include "output/interrupt.h"

namespace daxfs::output {

class NewFile {
 public:
  // OK when `path` is absent or a regular file (or a symlink to one).
  static Status CheckTarget(const std::string& path);
  static Result<std::unique_ptr<NewFile>> Create(const std::string& path, mode_t mode);
  ~NewFile();
  NewFile(const NewFile&) = delete;
  NewFile& operator=(const NewFile&) = delete;

  int fd() const { return fd_; }
  // The path as the caller gave it (for messages).
  const std::string& path() const { return path_; }
  // The directory the file will appear in (for messages about space).
  const std::string& dir() const { return dir_; }
  Status Publish();

 private:
  NewFile() = default;
  // Gives the open file the name `name` in dir_fd_ (fails with EEXIST if taken).
  int LinkAs(const std::string& name) const;
  Status CheckStillReplaceable() const;

  std::string path_;
  std::string dir_;
  std::string name_;
  int dir_fd_ = -1;
  int fd_ = -1;
  std::string temp_name_;  // set only without O_TMPFILE
  std::unique_ptr<TempName> temp_guard_;
  bool published_ = false;
};

}  // namespace daxfs::output
