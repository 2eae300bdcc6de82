// libFuzzer target: open arbitrary bytes as an image and walk all of it.
// Build with -DDAXFS_BUILD_FUZZ=ON and clang (see scripts/fuzz.sh).
#include <cstddef>
#include <cstdint>
#include <vector>

#include "daxfs/image.h"
#include "walk_image.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  // An exactly sized heap copy, so ASan flags any read past the end.
  std::vector<uint8_t> copy(data, data + size);
  auto image = daxfs::Image::Open(daxfs::Region::FromMemory(copy.data(), copy.size(), "fuzz"));
  if (image.ok()) (void)daxfs::testing::WalkImage(**image);
  return 0;
}
