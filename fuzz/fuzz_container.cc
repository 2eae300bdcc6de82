// libFuzzer target: arbitrary bytes as an OCI image layout (index, manifests,
// config, layers; see build_container.h) given to mkdaxfs's container input.
// Aborts when an accepted image gives a daxfs image that fails verification.
// See scripts/fuzz.sh.
#include <cstdio>
#include <cstdlib>
#include <string>

#include "build_container.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  static const std::string scratch = [] {
    char tmpl[] = "/tmp/daxfs-fuzz-container.XXXXXX";
    const char* d = mkdtemp(tmpl);
    if (d == nullptr) std::abort();
    return std::string(d);
  }();
  const std::string why = daxfs::testing::BuildContainerAndCheck(data, size, scratch);
  if (!why.empty()) {
    std::fprintf(stderr, "%s", why.c_str());
    std::abort();
  }
  return 0;
}
