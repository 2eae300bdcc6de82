// Malformed images: truncations, random flips and crafted damage must give
// clear errors (or check problems), never a crash or an out-of-bounds read.
// Run under ASan in CI.
#include <sys/stat.h>
#include <sys/xattr.h>
#include <unistd.h>

#include <cstring>

#include <random>

#include "../fuzz/walk_image.h"
#include "daxfs/builder.h"
#include "daxfs/check.h"
#include "daxfs/format.h"
#include "test_util.h"

namespace daxfs::testing {
namespace {

namespace fmt = daxfs::format;

class Corruption : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    TempDir dir;
    const std::string src = dir / "src";
    mkdir(src.c_str(), 0755);
    mkdir((src + "/a").c_str(), 0755);
    mkdir((src + "/a/b").c_str(), 0755);
    WriteFile(src + "/a/b/file", "payload");
    WriteFile(src + "/one", "1");
    WriteFile(src + "/two", "22");
    symlink("one", (src + "/link").c_str());
    setxattr((src + "/one").c_str(), "user.k", "v", 1, 0);
    for (bool upstream : {false, true}) {
      BuildOptions o;
      o.all_time = 1;
      o.upstream_only = upstream;
      ASSERT_TRUE(BuildFromDirectory(src, dir / "img", o).ok());
      (upstream ? upstream_ : good_) = new std::vector<std::byte>(ReadBytes(dir / "img"));
    }
  }
  static void TearDownTestSuite() {
    delete good_;
    delete upstream_;
  }

  // Opens a private copy (exactly sized heap buffer: ASan sees overruns).
  static Result<std::shared_ptr<const Image>> OpenBytes(const std::vector<std::byte>& bytes) {
    auto copy = std::make_shared<std::vector<std::byte>>(bytes);
    keep_.push_back(copy);
    return Image::Open(Region::FromMemory(copy->data(), copy->size(), "test.img"));
  }

  static uint64_t CheckProblems(const std::vector<std::byte>& bytes, std::string* messages = nullptr) {
    auto img = OpenBytes(bytes);
    if (!img.ok()) return 1;
    CheckOptions o;
    o.report = [&](const std::string& m) { if (messages) *messages += m + "\n"; };
    return CheckImage(**img, o).problems;
  }

  // Locations inside the good image, found through the reader.
  static uint64_t InodeOffset(const Image& img, Ino ino) {
    return img.info().inode_table_end - uint64_t{img.info().inode_count - (ino - 1)} * fmt::kInodeSize;
  }
  static uint64_t DirentOffset(const Image& img, Ino dir, size_t i) {
    return img.extent(dir)->offset + i * fmt::kDirentStride;
  }
  template <typename T>
  static void Poke(std::vector<std::byte>* b, uint64_t off, T v) {
    fmt::Store(b->data() + off, v);
  }

  static std::vector<std::byte>* good_;
  static std::vector<std::byte>* upstream_;
  static std::vector<std::shared_ptr<std::vector<std::byte>>> keep_;
};
std::vector<std::byte>* Corruption::good_ = nullptr;
std::vector<std::byte>* Corruption::upstream_ = nullptr;
std::vector<std::shared_ptr<std::vector<std::byte>>> Corruption::keep_;

TEST_F(Corruption, GoodImagesAreClean) {
  EXPECT_EQ(CheckProblems(*good_), 0u);
  EXPECT_EQ(CheckProblems(*upstream_), 0u);
}

TEST_F(Corruption, TruncationsAreRejectedOrContained) {
  for (const auto* base : {good_, upstream_}) {
    for (size_t len = 0; len < base->size(); len += (len < 9000 ? 97 : 1021)) {
      std::vector<std::byte> cut(base->begin(), base->begin() + static_cast<long>(len));
      auto img = OpenBytes(cut);
      // The superblock records the size: any truncation is caught at open.
      ASSERT_FALSE(img.ok()) << "truncated to " << len;
      EXPECT_TRUE(img.status().IsCorruption()) << img.status().ToString();
    }
  }
}

TEST_F(Corruption, RandomByteFlipsNeverCrash) {
  std::mt19937_64 rng(42);
  for (const auto* base : {good_, upstream_}) {
    // Concentrate on the metadata (first blocks), where flips matter.
    const size_t hot = std::min<size_t>(base->size(), 5 * 4096 + 4096);
    for (int iter = 0; iter < 3000; ++iter) {
      std::vector<std::byte> b = *base;
      const int flips = 1 + static_cast<int>(rng() % 4);
      for (int f = 0; f < flips; ++f) b[rng() % hot] ^= std::byte(1u << (rng() % 8));
      auto img = OpenBytes(b);
      if (img.ok()) (void)WalkImage(**img);
      keep_.clear();
    }
  }
}

TEST_F(Corruption, BadMagicAndVersion) {
  auto b = *good_;
  Poke<uint32_t>(&b, 0, 0x12345678);
  auto r = OpenBytes(b);
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.status().message().find("bad magic"), std::string::npos);
  b = *upstream_;
  Poke<uint32_t>(&b, 4, 4);
  r = OpenBytes(b);
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.status().message().find("version"), std::string::npos);
}

TEST_F(Corruption, SuperblockChecksumCatchesFieldDamage) {
  auto b = *good_;
  Poke<uint64_t>(&b, 32, fmt::Load<uint64_t>(b.data() + 32) - 4096);  // base_size
  auto r = OpenBytes(b);
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.status().message().find("checksum"), std::string::npos);
}

TEST_F(Corruption, DirectoryCycleIsRejected) {
  for (const auto* base : {good_, upstream_}) {
    auto img = *OpenBytes(*base);
    const Ino a = *img->resolve("a");
    const Ino b = *img->resolve("a/b");
    // Make a/b's entry for "file" point back up at directory a.
    auto bytes = *base;
    Poke<uint32_t>(&bytes, DirentOffset(*img, b, 0), static_cast<uint32_t>(a));
    Poke<uint32_t>(&bytes, DirentOffset(*img, b, 0) + 4, S_IFDIR | 0755);
    auto bad = OpenBytes(bytes);
    if (!bad.ok()) continue;  // also acceptable: refused at open
    auto looped = (*bad)->resolve("a/b/file/b/file/b");
    EXPECT_FALSE(looped.ok());
    (void)WalkImage(**bad);  // must terminate
    EXPECT_GT(CheckProblems(bytes), 0u);
  }
}

TEST_F(Corruption, EntryPointingAtRootIsRejected) {
  auto img = *OpenBytes(*good_);
  auto bytes = *good_;
  const Ino b = *img->resolve("a/b");
  Poke<uint32_t>(&bytes, DirentOffset(*img, b, 0), 1u);
  Poke<uint32_t>(&bytes, DirentOffset(*img, b, 0) + 4, S_IFDIR | 0755);
  auto bad = *OpenBytes(bytes);
  auto r = bad->resolve("a/b/file");
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.status().message().find("root"), std::string::npos);
}

TEST_F(Corruption, OutOfRangeInodeNumber) {
  auto img = *OpenBytes(*good_);
  auto bytes = *good_;
  Poke<uint32_t>(&bytes, DirentOffset(*img, img->root(), 0), 0x7fffffffu);
  auto bad = *OpenBytes(bytes);
  auto d = *bad->opendir(bad->root());
  auto e = d.entry(0);
  ASSERT_FALSE(e.ok());
  EXPECT_NE(e.status().message().find("out of range"), std::string::npos);
  EXPECT_NE(e.status().message().find("offset"), std::string::npos);
}

TEST_F(Corruption, InvalidNames) {
  auto img = *OpenBytes(*good_);
  const uint64_t off = DirentOffset(*img, img->root(), 0);
  const std::pair<std::string, uint16_t> cases[] = {
      {"", 0}, {".", 1}, {"..", 2}, {"a/b", 3}, {std::string("a\0b", 3), 3}, {"x", 300}};
  for (const auto& [name, len] : cases) {
    auto bytes = *good_;
    Poke<uint16_t>(&bytes, off + 8, len);
    std::memcpy(bytes.data() + off + 16, name.data(), name.size());
    auto bad = *OpenBytes(bytes);
    auto e = bad->opendir(bad->root())->entry(0);
    EXPECT_FALSE(e.ok()) << "name of length " << len << " accepted";
  }
}

TEST_F(Corruption, ExtentOutsideImage) {
  auto img = *OpenBytes(*good_);
  const Ino one = *img->resolve("one");
  auto bytes = *good_;
  Poke<uint64_t>(&bytes, InodeOffset(*img, one) + 24, uint64_t{1} << 62);
  auto bad = *OpenBytes(bytes);
  auto r = bad->contents(one);
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.status().message().find("outside the base image"), std::string::npos);
  // Size overflow (offset + size wraps around).
  bytes = *good_;
  Poke<uint64_t>(&bytes, InodeOffset(*img, one) + 16, UINT64_MAX - 100);
  EXPECT_FALSE((*OpenBytes(bytes))->contents(one).ok());
}

TEST_F(Corruption, OverlappingExtentsAreReported) {
  auto img = *OpenBytes(*good_);
  const Ino one = *img->resolve("one"), two = *img->resolve("two");
  auto bytes = *good_;
  const uint64_t one_off = fmt::Load<uint64_t>(bytes.data() + InodeOffset(*img, one) + 24);
  Poke<uint64_t>(&bytes, InodeOffset(*img, two) + 24, one_off);
  std::string msgs;
  EXPECT_GT(CheckProblems(bytes, &msgs), 0u);
  EXPECT_NE(msgs.find("overlaps"), std::string::npos) << msgs;
}

TEST_F(Corruption, BadDirectorySizeAndRootType) {
  auto img = *OpenBytes(*good_);
  auto bytes = *good_;
  Poke<uint64_t>(&bytes, InodeOffset(*img, img->root()) + 16, 272);
  auto r0 = OpenBytes(bytes);  // the root inode is validated at open
  ASSERT_FALSE(r0.ok());
  EXPECT_NE(r0.status().message().find("multiple of 271"), std::string::npos);
  bytes = *good_;
  Poke<uint32_t>(&bytes, InodeOffset(*img, img->root()) + 4, S_IFREG | 0644);
  auto r = OpenBytes(bytes);
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.status().message().find("not a directory"), std::string::npos);
}

TEST_F(Corruption, SymlinkWithoutNul) {
  auto img = *OpenBytes(*good_);
  const Ino link = *img->resolve("link");
  auto bytes = *good_;
  const uint64_t off = img->extent(link)->offset;
  bytes[off + 3] = std::byte{'X'};  // overwrite the NUL after "one"
  auto r = (*OpenBytes(bytes))->readlink(link);
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.status().message().find("NUL"), std::string::npos);
}

TEST_F(Corruption, UnsortedAndDuplicateEntriesReported) {
  auto img = *OpenBytes(*good_);
  auto bytes = *good_;
  const uint64_t e0 = DirentOffset(*img, img->root(), 0), e1 = DirentOffset(*img, img->root(), 1);
  std::vector<std::byte> tmp(bytes.begin() + static_cast<long>(e0), bytes.begin() + static_cast<long>(e0 + 272));
  std::memcpy(bytes.data() + e0, bytes.data() + e1, 272);
  std::memcpy(bytes.data() + e1, tmp.data(), 272);
  std::string msgs;
  EXPECT_GT(CheckProblems(bytes, &msgs), 0u);
  EXPECT_NE(msgs.find("sorted"), std::string::npos) << msgs;
}

TEST_F(Corruption, XattrRecordDamage) {
  auto img = *OpenBytes(*good_);
  const Ino one = *img->resolve("one");
  auto bytes = *good_;
  Poke<uint32_t>(&bytes, InodeOffset(*img, one) + 56, 0xfffffff0u);
  auto r = (*OpenBytes(bytes))->getxattr(one, "user.k");
  ASSERT_FALSE(r.ok());
  EXPECT_TRUE(r.status().IsCorruption());
}

TEST_F(Corruption, MetadataChecksumCatchesSilentDamage) {
  auto img = *OpenBytes(*good_);
  auto bytes = *good_;
  const uint64_t off = DirentOffset(*img, img->root(), 0) + 16;
  bytes[off] = std::byte{'Z'};  // a valid but different name
  std::string msgs;
  EXPECT_GT(CheckProblems(bytes, &msgs), 0u);
  EXPECT_NE(msgs.find("checksum"), std::string::npos) << msgs;
}

}  // namespace
}  // namespace daxfs::testing
