// Helpers for tests: temporary directories, tree generation, comparing an
// image (or a mounted tree) against the directory it was built from.
#pragma once

#include <gtest/gtest.h>

#include <cstdint>
#include <string>
#include <vector>

#include "daxfs/image.h"
#include "daxfs/status.h"

#define ASSERT_DAXFS_OK(expr)                                   \
  do {                                                          \
    const ::daxfs::Status _s = (expr);                          \
    ASSERT_TRUE(_s.ok()) << #expr << ": " << _s.ToString();     \
  } while (0)

namespace daxfs::testing {

// A fresh directory removed (recursively) on destruction.
class TempDir {
 public:
  explicit TempDir(const std::string& base = "/tmp");
  ~TempDir();
  const std::string& path() const { return path_; }
  std::string operator/(const std::string& rel) const { return path_ + "/" + rel; }

 private:
  std::string path_;
};

void WriteFile(const std::string& path, const std::string& contents, mode_t mode = 0644);
std::string ReadFile(const std::string& path);
std::vector<std::byte> ReadBytes(const std::string& path);
// One input of a fuzz corpus or findings directory.
struct CorpusFile {
  std::string name;
  std::vector<std::byte> bytes;
};
// The files of `dir` (dot files skipped), sorted by name so that a failure
// names the same input every run; a missing directory is a test failure.
std::vector<CorpusFile> ReadCorpus(const std::string& dir);
void RemoveTree(const std::string& path);
// Runs a shell command; returns its exit status.
int RunShell(const std::string& cmd);
bool IsRoot();

// Creates a tree with every file type, hard links, long names, deep nesting,
// empty, sparse and multi-megabyte files and xattrs under `root`.
void MakeRichTree(const std::string& root);

// Compares the image's tree with `source_dir` entry by entry: names, types,
// modes, owners, mtimes, sizes, contents, symlink targets, device numbers,
// xattrs and hard-link structure. Adds gtest failures for every difference.
void ExpectImageMatchesDirectory(const Image& image, const std::string& source_dir,
                                 bool compare_xattrs = true, bool compare_mtime = true);

// Compares two directory trees the same way (used for extract round trips).
void ExpectDirectoriesMatch(const std::string& a, const std::string& b);

std::shared_ptr<const Image> OpenOrDie(const std::string& path);

}  // namespace daxfs::testing
