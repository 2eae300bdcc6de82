// File types: which st_mode types an image may hold, and "a directory",
// "a FIFO", ... for error messages.
#pragma once

#include <sys/stat.h>

#include <cstdint>

namespace daxfs {

// The seven POSIX file types; anything else in an inode is damage.
inline bool ValidFileType(uint32_t mode) {
  switch (mode & S_IFMT) {
    case S_IFREG: case S_IFDIR: case S_IFLNK: case S_IFCHR:
    case S_IFBLK: case S_IFIFO: case S_IFSOCK:
      return true;
    default:
      return false;
  }
}

inline const char* DescribeFileType(mode_t mode) {
  switch (mode & S_IFMT) {
    case S_IFREG: return "a regular file";
    case S_IFDIR: return "a directory";
    case S_IFLNK: return "a symbolic link";
    case S_IFCHR: return "a character device";
    case S_IFBLK: return "a block device";
    case S_IFIFO: return "a FIFO";
    case S_IFSOCK: return "a socket";
    default: return "a file of unknown type";
  }
}

}  // namespace daxfs
