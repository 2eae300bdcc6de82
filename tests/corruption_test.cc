// Malformed images: truncations, random flips and crafted damage must give
// clear errors (or check problems), never a crash or an out-of-bounds read.
// Run under ASan in CI.
#include <sys/stat.h>
#include <sys/xattr.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <cstring>

#include <random>

#include "../fuzz/walk_image.h"
#include "daxfs/builder.h"
#include "daxfs/check.h"
#include "daxfs/format.h"
#include "format/checksum.h"
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
    WriteFile(src + "/a/copy_of_two", "22");  // deduplicated with /two
    for (int layout = 0; layout < 3; ++layout) {
      BuildOptions o;
      o.all_time = 1;
      o.compact_dirs = layout == 0;
      o.upstream_only = layout == 2;
      ASSERT_TRUE(BuildFromDirectory(src, dir / "img", o).ok());
      auto* bytes = new std::vector<std::byte>(ReadBytes(dir / "img"));
      (layout == 0 ? good_ : layout == 1 ? v5_ : upstream_) = bytes;
    }
  }
  static void TearDownTestSuite() {
    delete good_;
    delete v5_;
    delete upstream_;
  }
  // Every image layout; the first two carry daxfs extensions.
  static std::vector<const std::vector<std::byte>*> All() { return {good_, v5_, upstream_}; }

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

  // Locations inside an image, found through the reader.
  static uint64_t InodeOffset(const Image& img, Ino ino) {
    return img.info().inode_table_end - uint64_t{img.info().inode_count - (ino - 1)} * fmt::kInodeSize;
  }
  static uint64_t InodeField(const Image& img, Ino ino, size_t field_offset) {
    return InodeOffset(img, ino) + field_offset;
  }
  // Entry i of a directory, in either directory layout.
  static uint64_t DirentOffset(const Image& img, Ino dir, size_t i) {
    if (img.info().compact_dirs)
      return img.extent(dir)->offset + sizeof(fmt::CompactDirHeader) + i * sizeof(fmt::CompactDirent);
    return img.extent(dir)->offset + i * fmt::kDirentStride;
  }
  static void PokeEntryIno(std::vector<std::byte>* b, const Image& img, Ino dir, size_t i, uint32_t ino) {
    Poke<uint32_t>(b, DirentOffset(img, dir, i), ino);  // offset 0 in both layouts
  }
  static void PokeEntryType(std::vector<std::byte>* b, const Image& img, Ino dir, size_t i, uint32_t mode) {
    if (img.info().compact_dirs)
      Poke<uint8_t>(b, DirentOffset(img, dir, i) + offsetof(fmt::CompactDirent, type),
                    static_cast<uint8_t>(mode >> 12));
    else
      Poke<uint32_t>(b, DirentOffset(img, dir, i) + offsetof(fmt::Dirent, mode), mode);
  }
  // Where entry i's name bytes start.
  static uint64_t EntryNameOffset(const std::vector<std::byte>& b, const Image& img, Ino dir, size_t i) {
    if (img.info().compact_dirs)
      return img.extent(dir)->offset +
             fmt::Load<uint32_t>(b.data() + DirentOffset(img, dir, i) +
                                 offsetof(fmt::CompactDirent, name_offset));
    return DirentOffset(img, dir, i) + offsetof(fmt::Dirent, name);
  }
  template <typename T>
  static void Poke(std::vector<std::byte>* b, uint64_t off, T v) {
    fmt::Store(b->data() + off, v);
  }

  static std::vector<std::byte>* good_;      // default: compact directories
  static std::vector<std::byte>* v5_;        // upstream-readable with extensions
  static std::vector<std::byte>* upstream_;  // plain upstream v5
  static std::vector<std::shared_ptr<std::vector<std::byte>>> keep_;
};
std::vector<std::byte>* Corruption::good_ = nullptr;
std::vector<std::byte>* Corruption::v5_ = nullptr;
std::vector<std::byte>* Corruption::upstream_ = nullptr;
std::vector<std::shared_ptr<std::vector<std::byte>>> Corruption::keep_;

TEST_F(Corruption, GoodImagesAreClean) {
  for (const auto* base : All()) EXPECT_EQ(CheckProblems(*base), 0u);
  auto img = *OpenBytes(*good_);
  EXPECT_TRUE(img->info().compact_dirs);
  // Identical contents are stored once: two inodes, one extent.
  const Ino two = *img->resolve("two"), copy = *img->resolve("a/copy_of_two");
  EXPECT_NE(two, copy);
  EXPECT_EQ(img->extent(two)->offset, img->extent(copy)->offset);
}

TEST_F(Corruption, TruncationsAreRejectedOrContained) {
  for (const auto* base : All()) {
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
  for (const auto* base : All()) {
    // Concentrate on the metadata (first blocks), where flips matter.
    const size_t hot = std::min<size_t>(base->size(), 6 * size_t{fmt::kBlockSize});
    int refused = 0, damage_found = 0;
    for (int iter = 0; iter < 3000; ++iter) {
      std::vector<std::byte> b = *base;
      const int flips = 1 + static_cast<int>(rng() % 4);
      for (int f = 0; f < flips; ++f) b[rng() % hot] ^= std::byte(1u << (rng() % 8));
      auto img = OpenBytes(b);
      if (!img.ok()) {
        // Refusals are clean: a corruption (or unsupported feature) naming the image.
        EXPECT_TRUE(img.status().IsCorruption() || img.status().errno_value() == ENOTSUP)
            << img.status().ToString();
        EXPECT_NE(img.status().message().find("test.img"), std::string::npos);
        ++refused;
      } else if (CheckProblems(b) > 0) {
        ++damage_found;
      }
      (void)(img.ok() ? WalkImage(**img) : 0);
      keep_.clear();
    }
    // Flips in checksummed metadata are caught one way or the other (plain
    // upstream images have no checksums: most flips there go unnoticed).
    if (base != upstream_) {
      EXPECT_GT(refused + damage_found, 2500) << refused << " refused, " << damage_found << " found by check";
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
  Poke<uint32_t>(&b, offsetof(fmt::Superblock, version), 4);
  r = OpenBytes(b);
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.status().message().find("version"), std::string::npos);
  // Version 6 (incompatible features) without the extension that needs it.
  b = *upstream_;
  Poke<uint32_t>(&b, offsetof(fmt::Superblock, version), fmt::kVersionIncompat);
  r = OpenBytes(b);
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.status().message().find("version 6"), std::string::npos) << r.status().ToString();
}

TEST_F(Corruption, UnknownIncompatibleFeatureIsRefused) {
  auto b = *good_;
  const size_t at = offsetof(fmt::Superblock, ext) + offsetof(fmt::ExtHeader, features_incompat);
  Poke<uint64_t>(&b, at, fmt::Load<uint64_t>(b.data() + at) | (1ull << 40));
  const uint64_t csum = fmt::SuperChecksum(b.data());
  Poke<uint64_t>(&b, offsetof(fmt::Superblock, ext) + offsetof(fmt::ExtHeader, super_csum), csum);
  auto r = OpenBytes(b);
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().errno_value(), ENOTSUP) << r.status().ToString();
  EXPECT_NE(r.status().message().find("incompatible"), std::string::npos);
}

TEST_F(Corruption, SuperblockChecksumCatchesFieldDamage) {
  auto b = *good_;
  const size_t base_size_at = offsetof(fmt::Superblock, base_size);
  Poke<uint64_t>(&b, base_size_at, fmt::Load<uint64_t>(b.data() + base_size_at) - fmt::kBlockSize);
  auto r = OpenBytes(b);
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.status().message().find("checksum"), std::string::npos);
}

TEST_F(Corruption, DirectoryCycleIsRejected) {
  for (const auto* base : All()) {
    auto img = *OpenBytes(*base);
    const Ino a = *img->resolve("a");
    const Ino b = *img->resolve("a/b");
    // Make a/b's entry for "file" point back up at directory a.
    auto bytes = *base;
    PokeEntryIno(&bytes, *img, b, 0, static_cast<uint32_t>(a));
    PokeEntryType(&bytes, *img, b, 0, S_IFDIR | 0755);
    auto bad = OpenBytes(bytes);
    // Images with parent pointers open (the damage is found on use); for
    // plain upstream images the parent map built at open sees the cycle.
    ASSERT_TRUE(bad.ok()) << bad.status().ToString();
    auto looped = (*bad)->resolve("a/b/file/b/file/b");
    ASSERT_FALSE(looped.ok());
    EXPECT_TRUE(looped.status().IsCorruption()) << looped.status().ToString();
    (void)WalkImage(**bad);  // must terminate
    EXPECT_GT(CheckProblems(bytes), 0u);
  }
}

TEST_F(Corruption, EntryPointingAtRootIsRejected) {
  for (const auto* base : {good_, v5_}) {
    auto img = *OpenBytes(*base);
    auto bytes = *base;
    const Ino b = *img->resolve("a/b");
    PokeEntryIno(&bytes, *img, b, 0, fmt::kRootIno);
    PokeEntryType(&bytes, *img, b, 0, S_IFDIR | 0755);
    auto bad = *OpenBytes(bytes);
    auto r = bad->resolve("a/b/file");
    ASSERT_FALSE(r.ok());
    EXPECT_NE(r.status().message().find("root"), std::string::npos);
  }
}

TEST_F(Corruption, OutOfRangeInodeNumber) {
  for (const auto* base : All()) {
    auto img = *OpenBytes(*base);
    auto bytes = *base;
    PokeEntryIno(&bytes, *img, img->root(), 0, 0x7fffffffu);
    auto bad = *OpenBytes(bytes);
    auto d = *bad->opendir(bad->root());
    auto e = d.entry(0);
    ASSERT_FALSE(e.ok());
    EXPECT_NE(e.status().message().find("out of range"), std::string::npos);
    EXPECT_NE(e.status().message().find("offset"), std::string::npos);
  }
}

TEST_F(Corruption, InvalidNames) {
  const std::pair<std::string, uint16_t> cases[] = {
      {"", 0}, {".", 1}, {"..", 2}, {"a/b", 3}, {std::string("a\0b", 3), 3}, {"x", 300}};
  for (const auto* base : {good_, v5_}) {
    auto img = *OpenBytes(*base);
    const uint64_t entry = DirentOffset(*img, img->root(), 0);
    const uint64_t name_at = EntryNameOffset(*base, *img, img->root(), 0);
    for (const auto& [name, len] : cases) {
      auto bytes = *base;
      if (img->info().compact_dirs) {
        if (len > UINT8_MAX) {  // past the directory instead
          Poke<uint32_t>(&bytes, entry + offsetof(fmt::CompactDirent, name_offset), 1u << 30);
        } else {
          Poke<uint8_t>(&bytes, entry + offsetof(fmt::CompactDirent, name_len), static_cast<uint8_t>(len));
        }
      } else {
        Poke<uint16_t>(&bytes, entry + offsetof(fmt::Dirent, name_len), len);
      }
      std::memcpy(bytes.data() + name_at, name.data(), name.size());
      auto bad = *OpenBytes(bytes);
      auto e = bad->opendir(bad->root())->entry(0);
      EXPECT_FALSE(e.ok()) << "name of length " << len << " accepted";
    }
  }
}

TEST_F(Corruption, CompactDirectoryCountBeyondItsBytes) {
  auto img = *OpenBytes(*good_);
  auto bytes = *good_;
  Poke<uint32_t>(&bytes, img->extent(img->root())->offset, 1000000u);
  auto d = (*OpenBytes(bytes))->opendir(img->root());
  ASSERT_FALSE(d.ok());
  EXPECT_NE(d.status().message().find("do not fit"), std::string::npos) << d.status().ToString();
}

TEST_F(Corruption, ExtentOutsideImage) {
  auto img = *OpenBytes(*good_);
  const Ino one = *img->resolve("one");
  auto bytes = *good_;
  Poke<uint64_t>(&bytes, InodeField(*img, one, offsetof(fmt::Inode, data_offset)), uint64_t{1} << 62);
  auto bad = *OpenBytes(bytes);
  auto r = bad->contents(one);
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.status().message().find("outside the base image"), std::string::npos);
  // Size overflow (offset + size wraps around).
  bytes = *good_;
  Poke<uint64_t>(&bytes, InodeField(*img, one, offsetof(fmt::Inode, size)), UINT64_MAX - 100);
  EXPECT_FALSE((*OpenBytes(bytes))->contents(one).ok());
}

TEST_F(Corruption, OverlappingExtentsAreReported) {
  auto img = *OpenBytes(*good_);
  const Ino one = *img->resolve("one"), two = *img->resolve("two");
  auto bytes = *good_;
  const size_t field = offsetof(fmt::Inode, data_offset);
  // "two" (2 bytes) moved onto "one" (1 byte): a partial overlap, not dedup.
  const uint64_t one_off = fmt::Load<uint64_t>(bytes.data() + InodeField(*img, one, field));
  Poke<uint64_t>(&bytes, InodeField(*img, two, field), one_off);
  std::string msgs;
  EXPECT_GT(CheckProblems(bytes, &msgs), 0u);
  EXPECT_NE(msgs.find("overlaps"), std::string::npos) << msgs;
  // A file's data over a directory's entries is damage too.
  bytes = *good_;
  Poke<uint64_t>(&bytes, InodeField(*img, two, field),
                 img->extent(img->root())->offset - img->info().base_offset);
  msgs.clear();
  EXPECT_GT(CheckProblems(bytes, &msgs), 0u);
  EXPECT_NE(msgs.find("overlaps"), std::string::npos) << msgs;
}

TEST_F(Corruption, BadDirectorySizeAndRootType) {
  auto img = *OpenBytes(*v5_);
  auto bytes = *v5_;
  Poke<uint64_t>(&bytes, InodeField(*img, img->root(), offsetof(fmt::Inode, size)), fmt::kDirentStride);
  auto r0 = OpenBytes(bytes);  // the root inode is validated at open
  ASSERT_FALSE(r0.ok());
  EXPECT_NE(r0.status().message().find("multiple of " + std::to_string(fmt::kDirentSizeUnit)), std::string::npos);
  img = *OpenBytes(*good_);
  bytes = *good_;
  Poke<uint64_t>(&bytes, InodeField(*img, img->root(), offsetof(fmt::Inode, size)), 4);
  r0 = OpenBytes(bytes);
  ASSERT_FALSE(r0.ok());
  EXPECT_NE(r0.status().message().find("smaller than its header"), std::string::npos);
  bytes = *good_;
  Poke<uint64_t>(&bytes, InodeField(*img, img->root(), offsetof(fmt::Inode, size)), uint64_t{1} << 40);
  r0 = OpenBytes(bytes);
  ASSERT_FALSE(r0.ok());
  EXPECT_NE(r0.status().message().find("outside the base image"), std::string::npos);
  bytes = *good_;
  Poke<uint32_t>(&bytes, InodeField(*img, img->root(), offsetof(fmt::Inode, mode)), S_IFREG | 0644);
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
  for (const auto* base : {good_, v5_}) {
    auto img = *OpenBytes(*base);
    auto bytes = *base;
    const size_t stride = img->info().compact_dirs ? sizeof(fmt::CompactDirent) : fmt::kDirentStride;
    const uint64_t e0 = DirentOffset(*img, img->root(), 0), e1 = DirentOffset(*img, img->root(), 1);
    std::vector<std::byte> tmp(bytes.begin() + static_cast<long>(e0),
                               bytes.begin() + static_cast<long>(e0 + stride));
    std::memcpy(bytes.data() + e0, bytes.data() + e1, stride);
    std::memcpy(bytes.data() + e1, tmp.data(), stride);
    std::string msgs;
    EXPECT_GT(CheckProblems(bytes, &msgs), 0u);
    EXPECT_NE(msgs.find("sorted"), std::string::npos) << msgs;
    // The same entry twice.
    bytes = *base;
    std::memcpy(bytes.data() + e1, bytes.data() + e0, stride);
    msgs.clear();
    EXPECT_GT(CheckProblems(bytes, &msgs), 0u);
    EXPECT_NE(msgs.find("duplicate"), std::string::npos) << msgs;
  }
}

TEST_F(Corruption, XattrRecordDamage) {
  auto img = *OpenBytes(*good_);
  const Ino one = *img->resolve("one");
  auto bytes = *good_;
  Poke<uint32_t>(&bytes, InodeField(*img, one, offsetof(fmt::Inode, xattr_ref)), 0xfffffff0u);
  auto r = (*OpenBytes(bytes))->getxattr(one, "user.k");
  ASSERT_FALSE(r.ok());
  EXPECT_TRUE(r.status().IsCorruption());
}

TEST_F(Corruption, XattrAreaWalkStopsAtDamage) {
  auto bytes = *good_;
  const std::array<std::byte, 4> magic{std::byte{'X'}, std::byte{'A'}, std::byte{'T'}, std::byte{'R'}};
  auto at = std::search(bytes.begin(), bytes.end(), magic.begin(), magic.end());
  ASSERT_NE(at, bytes.end());
  const size_t first_record = static_cast<size_t>(at - bytes.begin()) + sizeof(fmt::XattrAreaHeader);
  ASSERT_DAXFS_OK((*OpenBytes(bytes))->xattr_names().status());
  Poke<uint32_t>(&bytes, first_record + offsetof(fmt::XattrRecordHeader, size), 0xfffffff0u);
  auto r = (*OpenBytes(bytes))->xattr_names();
  ASSERT_FALSE(r.ok());
  EXPECT_TRUE(r.status().IsCorruption());
  EXPECT_NE(r.status().message().find("xattr area offset 8: record size"), std::string::npos)
      << r.status().message();
}

TEST_F(Corruption, MetadataChecksumCatchesSilentDamage) {
  for (const auto* base : {good_, v5_}) {
    auto img = *OpenBytes(*base);
    auto bytes = *base;
    bytes[EntryNameOffset(bytes, *img, img->root(), 0)] = std::byte{'Z'};  // valid but different
    std::string msgs;
    EXPECT_GT(CheckProblems(bytes, &msgs), 0u);
    EXPECT_NE(msgs.find("checksum"), std::string::npos) << msgs;
  }
}

TEST_F(Corruption, DataChecksumCoversPackedAndSharedData) {
  auto img = *OpenBytes(*good_);
  auto bytes = *good_;
  const Ino copy = *img->resolve("a/copy_of_two");
  bytes[img->extent(copy)->offset] = std::byte{'9'};  // the one stored copy of "22"
  std::string msgs;
  EXPECT_GT(CheckProblems(bytes, &msgs), 0u);
  EXPECT_NE(msgs.find("data checksum"), std::string::npos) << msgs;
}

}  // namespace
}  // namespace daxfs::testing
