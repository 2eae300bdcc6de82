// libFuzzer target: open arbitrary bytes as an image and walk all of it.
// Build with -DDAXFS_BUILD_FUZZ=ON and clang (see scripts/fuzz.sh).
#include <cstddef>
#include <cstdint>
#include <vector>

#include "daxfs/image.h"
#include "object_fixture.h"
#include "walk_image.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  // An exactly sized heap copy, so ASan flags any read past the end.
  std::vector<uint8_t> copy(data, data + size);
  // Object-store images read their data from the fixture's objects.
  daxfs::OpenOptions options;
  options.object_dir = daxfs::testing::FuzzObjectDir();
  options.max_object_mappings = 2;  // evictions too
  auto image = daxfs::Image::Open(daxfs::Region::FromMemory(copy.data(), copy.size(), "fuzz"), options);
  if (image.ok()) (void)daxfs::testing::WalkImage(**image);
  return 0;
}
