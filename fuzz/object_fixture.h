// The object directory the fuzz target and the replay test open
// object-store images against (docs/FORMAT.md §6.2). The seed
// fuzz/corpus/small-objects.bin was built with `mkdaxfs --objects` from a
// tree holding exactly these contents, so a seed and its mutants reach
// every path: objects that map and verify, a tampered object (right name,
// right size, other bytes) that must give EIO, and digests that name no
// object at all.
#pragma once

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstdlib>
#include <string>

namespace daxfs::testing {

namespace object_fixture_detail {
inline constexpr const char* kHello = "5891b5b522d5df086d0ff0b110fbd9d21bb4fc7163af34d08286a2e846f6be03";
inline constexpr const char* kPattern = "69dbee893909fa17d1be397e0c07691336fe42049c29d403467d3d4a1fc3b5a1";
inline constexpr const char* kTampered = "c94154fea745c1d5df6605599101ee9f477866cc73c8948d5b3e4a5c6ec62280";

inline std::string ObjectPath(const std::string& dir, const char* hex) {
  return dir + "/" + std::string(hex, 2) + "/" + std::string(hex + 2);
}

inline void WriteObject(const std::string& dir, const char* hex, const std::string& bytes) {
  mkdir((dir + "/" + std::string(hex, 2)).c_str(), 0755);
  const int fd = open(ObjectPath(dir, hex).c_str(), O_CREAT | O_TRUNC | O_WRONLY | O_CLOEXEC, 0444);
  if (fd < 0) return;
  size_t done = 0;
  while (done < bytes.size()) {
    const ssize_t n = write(fd, bytes.data() + done, bytes.size() - done);
    if (n <= 0) break;
    done += static_cast<size_t>(n);
  }
  close(fd);
}

inline std::string& Dir() {
  static std::string dir;
  return dir;
}

inline void RemoveDir() {
  const std::string& d = Dir();
  for (const char* hex : {kHello, kPattern, kTampered}) {
    unlink(ObjectPath(d, hex).c_str());
    rmdir((d + "/" + std::string(hex, 2)).c_str());
  }
  rmdir(d.c_str());
}
}  // namespace object_fixture_detail

// Creates the directory once per process (removed at exit) and returns it.
inline const std::string& FuzzObjectDir() {
  using namespace object_fixture_detail;
  std::string& dir = Dir();
  if (!dir.empty()) return dir;
  char tmpl[] = "/tmp/daxfs-fuzz-objects.XXXXXX";
  dir = mkdtemp(tmpl) != nullptr ? std::string(tmpl) : std::string("/nonexistent");
  WriteObject(dir, kHello, "hello\n");
  std::string pattern(5000, '\0');
  for (size_t i = 0; i < pattern.size(); ++i) pattern[i] = static_cast<char>(i % 251);
  WriteObject(dir, kPattern, pattern);
  // Named after "tampered original\n", holding other bytes of that size.
  WriteObject(dir, kTampered, "tampered modified\n");
  std::atexit(RemoveDir);
  return dir;
}

}  // namespace daxfs::testing
