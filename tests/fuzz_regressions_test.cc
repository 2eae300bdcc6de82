// Replays the fuzz corpus and every crash input the fuzzer ever found.
#include <dirent.h>

#include <string>

#include "../fuzz/walk_image.h"
#include "test_util.h"

namespace daxfs::testing {
namespace {

TEST(FuzzRegressions, ReplayAll) {
  int replayed = 0;
  for (const char* sub : {"/fuzz/corpus", "/fuzz/regressions"}) {
    const std::string dir = std::string(DAXFS_SOURCE_DIR) + sub;
    DIR* d = opendir(dir.c_str());
    ASSERT_NE(d, nullptr) << dir;
    while (dirent* de = readdir(d)) {
      if (de->d_name[0] == '.') continue;
      auto bytes = ReadBytes(dir + "/" + de->d_name);
      auto image = Image::Open(Region::FromMemory(bytes.data(), bytes.size(), de->d_name));
      if (image.ok()) (void)WalkImage(**image);
      ++replayed;
    }
    closedir(d);
  }
  EXPECT_GE(replayed, 2);
}

}  // namespace
}  // namespace daxfs::testing
