// Replays the fuzz corpus and every crash input the fuzzer ever found.
#include <dirent.h>

#include <string>

#include "../fuzz/build_archive.h"
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

// The archive target's seeds and findings: every archive the builder
// accepts gives an image that verifies clean.
TEST(FuzzRegressions, ReplayArchives) {
  TempDir scratch;
  int replayed = 0, built = 0;
  for (const char* sub : {"/fuzz/corpus_archive", "/fuzz/regressions_archive"}) {
    const std::string dir = std::string(DAXFS_SOURCE_DIR) + sub;
    DIR* d = opendir(dir.c_str());
    ASSERT_NE(d, nullptr) << dir;
    while (dirent* de = readdir(d)) {
      if (de->d_name[0] == '.') continue;
      auto bytes = ReadBytes(dir + "/" + de->d_name);
      bool ok = false;
      EXPECT_EQ(BuildArchiveAndCheck(reinterpret_cast<const uint8_t*>(bytes.data()), bytes.size(),
                                     scratch.path(), &ok), "")
          << de->d_name;
      ++replayed;
      built += ok;
    }
    closedir(d);
  }
  EXPECT_GE(replayed, 5);
  EXPECT_GE(built, 5) << "the seeds should mostly be valid archives";
}

}  // namespace
}  // namespace daxfs::testing
