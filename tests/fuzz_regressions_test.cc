// Replays the fuzz corpus and every crash input the fuzzer ever found.
#include <string>

#include "../fuzz/build_archive.h"
#include "../fuzz/build_container.h"
#include "../fuzz/object_fixture.h"
#include "../fuzz/walk_image.h"
#include "test_util.h"

namespace daxfs::testing {
namespace {

TEST(FuzzRegressions, ReplayAll) {
  int replayed = 0;
  for (const char* sub : {"/fuzz/corpus", "/fuzz/regressions"}) {
    for (auto& [name, bytes] : ReadCorpus(std::string(DAXFS_SOURCE_DIR) + sub)) {
      OpenOptions options;
      options.object_dir = FuzzObjectDir();
      options.max_object_mappings = 2;
      auto image = Image::Open(Region::FromMemory(bytes.data(), bytes.size(), name), options);
      if (image.ok()) (void)WalkImage(**image);
      ++replayed;
    }
  }
  EXPECT_GE(replayed, 2);
}

// The object-store seed is only worth fuzzing if it reaches the fixture's
// objects: one that verifies, one that must not, and a shared one.
TEST(FuzzRegressions, ObjectSeedReachesTheFixture) {
  auto bytes = ReadBytes(std::string(DAXFS_SOURCE_DIR) + "/fuzz/corpus/small-objects.bin");
  OpenOptions options;
  options.object_dir = FuzzObjectDir();
  auto image = Image::Open(Region::FromMemory(bytes.data(), bytes.size(), "small-objects.bin"), options);
  ASSERT_TRUE(image.ok()) << image.status().message();
  ASSERT_TRUE((*image)->info().objects);
  auto text = [&](const char* path) -> std::string {
    auto ino = (*image)->resolve(path);
    if (!ino.ok()) return "lookup: " + ino.status().message();
    auto data = (*image)->contents(*ino);
    if (!data.ok()) return "errno " + std::to_string(data.status().errno_value());
    return std::string(reinterpret_cast<const char*>(data->data()), data->size());
  };
  EXPECT_EQ(text("hello.txt"), "hello\n");
  EXPECT_EQ(text("sub/hello-again"), "hello\n");
  EXPECT_EQ(text("sub/pattern.bin").size(), 5000u);
  // A corruption status (EUCLEAN; the mount answers EIO), never the bytes.
  EXPECT_EQ(text("tampered.txt"), "errno " + std::to_string(EUCLEAN));
}

// The archive target's seeds and findings: every archive the builder
// accepts gives an image that verifies clean.
TEST(FuzzRegressions, ReplayArchives) {
  TempDir scratch;
  int replayed = 0, built = 0;
  for (const char* sub : {"/fuzz/corpus_archive", "/fuzz/regressions_archive"}) {
    for (const auto& [name, bytes] : ReadCorpus(std::string(DAXFS_SOURCE_DIR) + sub)) {
      bool ok = false;
      EXPECT_EQ(BuildArchiveAndCheck(reinterpret_cast<const uint8_t*>(bytes.data()), bytes.size(),
                                     scratch.path(), &ok), "")
          << name;
      ++replayed;
      built += ok;
    }
  }
  EXPECT_GE(replayed, 5);
  EXPECT_GE(built, 5) << "the seeds should mostly be valid archives";
}

// The container target's seeds and findings: every OCI layout the builder
// accepts gives an image that verifies clean. Every seed is a valid image
// (one layer, whiteouts, gzip, a nested index), or it fuzzes little.
TEST(FuzzRegressions, ReplayContainerImages) {
  TempDir scratch;
  for (const char* sub : {"/fuzz/corpus_container", "/fuzz/regressions_container"}) {
    for (const auto& [name, bytes] : ReadCorpus(std::string(DAXFS_SOURCE_DIR) + sub)) {
      bool ok = false;
      EXPECT_EQ(BuildContainerAndCheck(reinterpret_cast<const uint8_t*>(bytes.data()), bytes.size(),
                                       scratch.path(), &ok), "")
          << name;
      if (std::string(sub).ends_with("corpus_container")) {
        EXPECT_TRUE(ok) << name << ": a seed that does not build";
      }
    }
  }
}

}  // namespace
}  // namespace daxfs::testing
