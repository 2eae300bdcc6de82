// Builds an image from arbitrary bytes given as mkdaxfs's archive input and
// checks the result: anything the builder accepts must give an image that
// its own reader opens and that CheckImage finds clean. Shared by the fuzz
// target and the replay test.
#pragma once

#include <archive.h>
#include <archive_entry.h>
#include <fcntl.h>
#include <sys/mman.h>
#include <unistd.h>

#include <cstdint>
#include <functional>
#include <string>

#include "daxfs/builder.h"
#include "daxfs/check.h"
#include "daxfs/image.h"

namespace daxfs::testing {

// Archives declaring more file data than this are skipped: the builder would
// honestly write (and hash) them, which is slow, not a bug.
inline constexpr int64_t kMaxArchiveFileBytes = 64 << 20;

// The file bytes an archive declares (counting stops past the limit).
inline int64_t DeclaredFileBytes(const uint8_t* data, size_t size) {
  archive* a = archive_read_new();
  archive_read_support_filter_all(a);
  archive_read_support_format_all(a);
  int64_t total = 0;
  if (archive_read_open_memory(a, data, size) == ARCHIVE_OK) {
    archive_entry* e;
    while (archive_read_next_header(a, &e) >= ARCHIVE_WARN && total <= kMaxArchiveFileBytes)
      total += archive_entry_size_is_set(e) ? std::max<int64_t>(archive_entry_size(e), 0) : 0;
  }
  archive_read_free(a);
  return total;
}

inline bool DeclaresHugeFiles(const uint8_t* data, size_t size) {
  return DeclaredFileBytes(data, size) > kMaxArchiveFileBytes;
}

// What is wrong with the image a build accepted and wrote to `out` (empty:
// nothing): its own reader must open it and CheckImage find it clean.
// `also` looks at the opened image further; `out` is removed.
inline std::string CheckBuiltImage(const std::string& out,
                                   const std::function<void(const Image&)>& also = nullptr) {
  std::string why;
  auto image = Image::Open(out);
  if (!image.ok()) {
    why = "built an image its reader refuses: " + image.status().ToString();
  } else {
    CheckOptions o;
    o.report = [&why](const std::string& m) { why += m + "\n"; };
    (void)CheckImage(**image, o);
    if (also) also(**image);
  }
  unlink(out.c_str());
  return why;
}

// Returns an empty string, or what went wrong with an accepted archive.
// `scratch` is a directory for the image; `built` says whether one was made.
inline std::string BuildArchiveAndCheck(const uint8_t* data, size_t size, const std::string& scratch,
                                        bool* built = nullptr) {
  if (built) *built = false;
  if (DeclaresHugeFiles(data, size)) return "";
  const int fd = memfd_create("daxfs-archive", MFD_CLOEXEC);
  if (fd < 0) return "memfd_create failed";
  std::string why;
  if (static_cast<size_t>(pwrite(fd, data, size, 0)) == size || size == 0) {
    const std::string out = scratch + "/img";
    auto result = BuildFromTar("/proc/self/fd/" + std::to_string(fd), out, BuildOptions{});
    if (result.ok()) {
      if (built) *built = true;
      why = CheckBuiltImage(out);
    }
  }
  close(fd);
  return why;
}

}  // namespace daxfs::testing
