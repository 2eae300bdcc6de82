// libFuzzer target: arbitrary bytes as mkdaxfs's archive input (tar, cpio,
// zip, ... through libarchive). Aborts when an accepted archive gives an
// image that fails verification. See scripts/fuzz.sh.
#include <cstdio>
#include <cstdlib>
#include <string>

#include "build_archive.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  static const std::string scratch = [] {
    char tmpl[] = "/tmp/daxfs-fuzz-archive.XXXXXX";
    const char* d = mkdtemp(tmpl);
    if (d == nullptr) std::abort();
    return std::string(d);
  }();
  const std::string why = daxfs::testing::BuildArchiveAndCheck(data, size, scratch);
  if (!why.empty()) {
    std::fprintf(stderr, "%s", why.c_str());
    std::abort();
  }
  return 0;
}
