// "a directory", "a FIFO", ...: what a path is, for error messages.
#pragma once

#include <sys/stat.h>

namespace daxfs {

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
