// Object-store images (docs/FORMAT.md §6.2): round trips against the source,
// dedup across images, tampered, replaced and missing objects, the mapping
// bound, and damage to the new metadata fields.
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstring>
#include <dirent.h>
#include <random>
#include <map>

#include "../fuzz/walk_image.h"
#include "daxfs/branch.h"
#include "daxfs/builder.h"
#include "daxfs/check.h"
#include "daxfs/extract.h"
#include "daxfs/format.h"
#include "daxfs/fs_view.h"
#include "format/checksum.h"
#include "objects/sha256.h"
#include "test_util.h"

namespace daxfs::testing {
namespace {

namespace fmt = daxfs::format;

// Every object file under `dir`: relative path -> size.
std::map<std::string, uint64_t> ListObjects(const std::string& dir) {
  std::map<std::string, uint64_t> out;
  DIR* top = opendir(dir.c_str());
  if (top == nullptr) return out;
  while (dirent* d = readdir(top)) {
    const std::string sub = d->d_name;
    if (sub == "." || sub == "..") continue;
    DIR* inner = opendir((dir + "/" + sub).c_str());
    if (inner == nullptr) {
      out[sub] = UINT64_MAX;  // a stray file at the top level
      continue;
    }
    while (dirent* e = readdir(inner)) {
      const std::string name = e->d_name;
      if (name == "." || name == "..") continue;
      struct stat st;
      stat((dir + "/" + sub + "/" + name).c_str(), &st);
      out[sub + "/" + name] = static_cast<uint64_t>(st.st_size);
    }
    closedir(inner);
  }
  closedir(top);
  return out;
}

BuildOptions ObjectOptions(const std::string& dir) {
  BuildOptions o;
  o.clamp_time = 4000000000;  // reproducible build time, source mtimes kept
  o.object_dir = dir;
  return o;
}

// The regular file with the given name's object path (via the reader).
std::string ObjectOf(const Image& img, const std::string& path) {
  auto ino = img.resolve(path);
  EXPECT_TRUE(ino.ok()) << path;
  auto p = img.object_path(*ino);
  EXPECT_TRUE(p.ok()) << p.status().ToString();
  return p.ok() ? *p : "";
}

TEST(ObjectStore, RoundTripMatchesSourceAndObjectsMatchTheirNames) {
  TempDir dir;
  mkdir((dir / "src").c_str(), 0755);
  MakeRichTree(dir / "src");
  auto stats = BuildFromDirectory(dir / "src", dir / "img", ObjectOptions(dir / "objs"));
  ASSERT_TRUE(stats.ok()) << stats.status().ToString();
  auto img = OpenOrDie(dir / "img");
  EXPECT_TRUE(img->info().objects);
  EXPECT_EQ(img->info().recorded_object_dir, dir / "objs");
  // The image holds metadata only (and the EROFS view's): no data area.
  EXPECT_GT(stats->erofs_bytes, 0u);
  EXPECT_EQ(format::AlignUp(img->info().meta_size, format::kBlockSize) + stats->erofs_bytes, img->info().base_size);
  ExpectImageMatchesDirectory(*img, dir / "src");
  CheckOptions co;
  std::string problems;
  co.report = [&](const std::string& m) { problems += m + "\n"; };
  EXPECT_EQ(CheckImage(*img, co).problems, 0u) << problems;

  // Every object is named by the SHA-256 of its bytes, read-only, no debris.
  const auto objs = ListObjects(dir / "objs");
  ASSERT_FALSE(objs.empty());
  EXPECT_EQ(objs.size(), stats->objects_written);
  for (const auto& [rel, size] : objs) {
    ASSERT_EQ(rel.size(), 65u) << rel;
    const auto bytes = ReadBytes(dir / "objs/" + rel);
    auto digest = objects::HashBytes(bytes);
    ASSERT_TRUE(digest.ok());
    EXPECT_EQ(objects::ObjectRelPath(*digest), rel);
    struct stat st;
    ASSERT_EQ(stat((dir / "objs/" + rel).c_str(), &st), 0);
    EXPECT_EQ(st.st_mode & 07777, 0444u) << rel;
  }

  // Rebuilding reuses every object and writes the same image.
  auto again = BuildFromDirectory(dir / "src", dir / "img2", ObjectOptions(dir / "objs"));
  ASSERT_TRUE(again.ok());
  EXPECT_EQ(again->objects_written, 0u);
  EXPECT_EQ(ListObjects(dir / "objs"), objs);
  EXPECT_EQ(ReadBytes(dir / "img"), ReadBytes(dir / "img2"));

  // Extract writes the source back.
  ASSERT_TRUE(Extract(*img, "/", dir / "out", {}).ok());
  ExpectDirectoriesMatch(dir / "src", dir / "out");
}

TEST(ObjectStore, ConvertsBothWays) {
  TempDir dir;
  mkdir((dir / "src").c_str(), 0755);
  MakeRichTree(dir / "src");
  BuildOptions plain;
  ASSERT_TRUE(BuildFromDirectory(dir / "src", dir / "plain", plain).ok());
  auto p = OpenOrDie(dir / "plain");
  auto conv = ExportView(*MakeImageView(p), dir / "obj.img", ObjectOptions(dir / "objs"));
  ASSERT_TRUE(conv.ok()) << conv.status().ToString();
  auto o = OpenOrDie(dir / "obj.img");
  EXPECT_TRUE(o->info().objects);
  ExpectImageMatchesDirectory(*o, dir / "src");
  auto back = ExportView(*MakeImageView(o), dir / "back", plain);
  ASSERT_TRUE(back.ok()) << back.status().ToString();
  auto b = OpenOrDie(dir / "back");
  EXPECT_FALSE(b->info().objects);
  ExpectImageMatchesDirectory(*b, dir / "src");
}

TEST(ObjectStore, TwoImagesSharingMostFilesShareTheirObjects) {
  TempDir dir;
  const std::string a = dir / "a", b = dir / "b";
  mkdir(a.c_str(), 0755);
  mkdir(b.c_str(), 0755);
  std::mt19937 rng(7);
  uint64_t unique_bytes = 0;
  for (int i = 0; i < 100; ++i) {
    std::string body(5000 + i * 37, '\0');
    for (char& ch : body) ch = static_cast<char>(rng());
    WriteFile(a + "/f" + std::to_string(i), body);
    unique_bytes += body.size();
    if (i % 10 == 0) {  // 10% of b differs
      body[0] ^= 1;
      unique_bytes += body.size();
    }
    WriteFile(b + "/f" + std::to_string(i), body);
  }
  auto sa = BuildFromDirectory(a, dir / "a.img", ObjectOptions(dir / "objs"));
  auto sb = BuildFromDirectory(b, dir / "b.img", ObjectOptions(dir / "objs"));
  ASSERT_TRUE(sa.ok() && sb.ok());
  EXPECT_EQ(sa->objects_written, 100u);
  EXPECT_EQ(sb->objects_written, 10u);
  EXPECT_EQ(sb->objects_reused, 90u);
  const auto objs = ListObjects(dir / "objs");
  EXPECT_EQ(objs.size(), 110u);
  uint64_t total = 0;
  for (const auto& [rel, size] : objs) total += size;
  EXPECT_EQ(total, unique_bytes);
  ExpectImageMatchesDirectory(*OpenOrDie(dir / "a.img"), a);
  ExpectImageMatchesDirectory(*OpenOrDie(dir / "b.img"), b);
}

class ObjectDamage : public ::testing::Test {
 protected:
  void SetUp() override {
    mkdir((dir_ / "src").c_str(), 0755);
    big_.assign(300000, 'x');
    for (size_t i = 0; i < big_.size(); ++i) big_[i] = static_cast<char>('a' + i % 23);
    WriteFile(dir_ / "src/big", big_);
    WriteFile(dir_ / "src/small", "small file\n");
    ASSERT_TRUE(BuildFromDirectory(dir_ / "src", dir_ / "img", ObjectOptions(dir_ / "objs")).ok());
    img_ = OpenOrDie(dir_ / "img");
    ino_ = *img_->resolve("/big");
    object_ = ObjectOf(*img_, "/big");
  }
  // Rewrites one byte of the object in place (same file, same size).
  void FlipByte(const std::string& path, size_t at) {
    chmod(path.c_str(), 0644);
    int fd = open(path.c_str(), O_RDWR);
    ASSERT_GE(fd, 0);
    char c;
    ASSERT_EQ(pread(fd, &c, 1, static_cast<off_t>(at)), 1);
    c ^= 0x20;
    ASSERT_EQ(pwrite(fd, &c, 1, static_cast<off_t>(at)), 1);
    close(fd);
  }
  uint64_t Problems(const Image& img, std::string* messages) {
    CheckOptions o;
    o.report = [&](const std::string& m) { *messages += m + "\n"; };
    return CheckImage(img, o).problems;
  }

  TempDir dir_;
  std::string big_;
  std::shared_ptr<const Image> img_;
  Ino ino_ = 0;
  std::string object_;
};

TEST_F(ObjectDamage, TamperedObjectIsCorruptionNeverWrongBytes) {
  FlipByte(object_, 123456);
  auto data = img_->contents(ino_);
  ASSERT_FALSE(data.ok());
  EXPECT_TRUE(data.status().IsCorruption());
  EXPECT_EQ(data.status().errno_value(), EUCLEAN);
  EXPECT_NE(data.status().message().find("does not match its name"), std::string::npos);
  EXPECT_NE(data.status().message().find("inode " + std::to_string(ino_)), std::string::npos);
  EXPECT_FALSE(img_->pin(ino_).ok());
  EXPECT_FALSE(img_->open_object(ino_).ok());
  std::string messages;
  EXPECT_GT(Problems(*img_, &messages), 0u);
  EXPECT_NE(messages.find(object_), std::string::npos) << messages;
  // The untouched file still reads.
  EXPECT_EQ(img_->contents(*img_->resolve("/small")).ok(), true);
}

TEST_F(ObjectDamage, ObjectChangedAfterFirstUseIsHashedAgain) {
  ASSERT_TRUE(img_->contents(ino_).ok());
  // A different file under the same name (new inode): verified again.
  std::string other = big_;
  other[5] ^= 1;
  const std::string tmp = dir_ / "objs/replacement";
  WriteFile(tmp, other);
  ASSERT_EQ(rename(tmp.c_str(), object_.c_str()), 0);
  OpenOptions oo;
  auto fresh = Image::Open(dir_ / "img", oo);
  ASSERT_TRUE(fresh.ok());
  EXPECT_TRUE((*fresh)->contents(ino_).status().IsCorruption());
  // check hashes every object even if it was verified before.
  std::string messages;
  EXPECT_GT(Problems(*img_, &messages), 0u);
}

TEST_F(ObjectDamage, TruncatedObjectIsCorruption) {
  ASSERT_EQ(truncate(object_.c_str(), 1000), 0);
  auto data = img_->contents(ino_);
  ASSERT_FALSE(data.ok());
  EXPECT_TRUE(data.status().IsCorruption()) << data.status().ToString();
  EXPECT_NE(data.status().message().find("the image says 300000 bytes"), std::string::npos);
}

TEST_F(ObjectDamage, MissingObjectNamesFileAndObject) {
  ASSERT_EQ(unlink(object_.c_str()), 0);
  auto data = img_->contents(ino_);
  ASSERT_FALSE(data.ok());
  EXPECT_TRUE(data.status().IsNotFound());
  EXPECT_NE(data.status().message().find(object_), std::string::npos);
  EXPECT_NE(data.status().message().find("is missing"), std::string::npos);
  EXPECT_NE(data.status().message().find("inode " + std::to_string(ino_)), std::string::npos);
  std::string messages;
  EXPECT_GT(Problems(*img_, &messages), 0u);
  // Extract names the path.
  auto s = Extract(*img_, "/", dir_ / "out", {});
  ASSERT_FALSE(s.ok());
}

TEST_F(ObjectDamage, ObjectDirectoryCanBeGivenOrIsMissing) {
  ASSERT_EQ(rename((dir_ / "objs").c_str(), (dir_ / "moved").c_str()), 0);
  auto gone = Image::Open(dir_ / "img");
  ASSERT_FALSE(gone.ok());
  EXPECT_NE(gone.status().message().find(dir_ / "objs"), std::string::npos);
  OpenOptions oo;
  oo.object_dir = dir_ / "moved";
  auto moved = Image::Open(dir_ / "img", oo);
  ASSERT_TRUE(moved.ok()) << moved.status().ToString();
  auto data = (*moved)->contents(ino_);
  ASSERT_TRUE(data.ok());
  EXPECT_EQ(std::string(reinterpret_cast<const char*>(data->data()), data->size()), big_);
}

TEST(ObjectStore, MappingsAreBoundedAndPinsOutliveEviction) {
  TempDir dir;
  mkdir((dir / "src").c_str(), 0755);
  for (int i = 0; i < 20; ++i) WriteFile(dir / ("src/f" + std::to_string(i)), std::string(9000, 'a' + i));
  ASSERT_TRUE(BuildFromDirectory(dir / "src", dir / "img", ObjectOptions(dir / "objs")).ok());
  OpenOptions oo;
  oo.max_object_mappings = 2;
  auto img = Image::Open(dir / "img", oo);
  ASSERT_TRUE(img.ok());
  auto pinned = (*img)->pin(*(*img)->resolve("/f0"));
  ASSERT_TRUE(pinned.ok());
  auto count_maps = [] {
    std::string maps = ReadFile("/proc/self/maps");
    size_t n = 0;
    for (size_t at = 0; (at = maps.find("/objs/", at)) != std::string::npos; ++at) ++n;
    return n;
  };
  for (int round = 0; round < 2; ++round)
    for (int i = 0; i < 20; ++i) {
      auto d = (*img)->contents(*(*img)->resolve("/f" + std::to_string(i)));
      ASSERT_TRUE(d.ok());
      EXPECT_EQ(std::string(reinterpret_cast<const char*>(d->data()), d->size()),
                std::string(9000, 'a' + i));
      EXPECT_LE(count_maps(), 3u);  // two cached + the pinned one
    }
  EXPECT_EQ(std::string(reinterpret_cast<const char*>(pinned->bytes.data()), 10), std::string(10, 'a'));
}

// Damage to what object-store images add: digests, their offsets and the
// recorded directory. Never a crash or a read outside the image.
TEST(ObjectStore, DamagedObjectFieldsGiveErrors) {
  TempDir dir;
  // Small files: every walk below hashes every object.
  mkdir((dir / "src").c_str(), 0755);
  mkdir((dir / "src/d").c_str(), 0755);
  for (int i = 0; i < 12; ++i) WriteFile(dir / ("src/d/f" + std::to_string(i)), std::string(100 + i, 'a' + i));
  WriteFile(dir / "src/one", "1");
  WriteFile(dir / "src/empty", "");
  symlink("one", (dir / "src/link").c_str());
  ASSERT_TRUE(BuildFromDirectory(dir / "src", dir / "img", ObjectOptions(dir / "objs")).ok());
  const auto good = ReadBytes(dir / "img");
  auto open_bytes = [&](std::vector<std::byte> bytes, bool fix_super_csum) {
    if (fix_super_csum) {
      const uint64_t c = fmt::SuperChecksum(bytes.data());
      std::memcpy(bytes.data() + offsetof(fmt::Superblock, ext.super_csum), &c, 8);
    }
    auto keep = std::make_shared<std::vector<std::byte>>(std::move(bytes));
    OpenOptions oo;
    oo.object_dir = dir / "objs";
    auto img = Image::Open(Region::FromMemory(keep->data(), keep->size(), "test.img"), oo);
    if (img.ok()) (void)WalkImage(**img);
    return img.ok() ? Status::OK() : img.status();
  };
  // The recorded directory out of bounds (the reader checks it even when
  // a directory is given).
  const size_t rec = offsetof(fmt::Superblock, ext.reserved) + fmt::kExtObjectDirOffset;
  for (uint64_t bad : {uint64_t{1}, uint64_t{1} << 40, UINT64_MAX}) {
    auto b = good;
    std::memcpy(b.data() + rec, &bad, 8);
    Status s = open_bytes(b, true);
    EXPECT_TRUE(s.IsCorruption()) << s.ToString();
  }
  {
    auto b = good;
    const uint64_t huge = uint64_t{1} << 40;
    std::memcpy(b.data() + rec + 8, &huge, 8);
    EXPECT_TRUE(open_bytes(b, true).IsCorruption());
  }
  // Without the objects bit the digests would be read as in-image data:
  // the metadata checksum and the extents catch it; never a crash.
  {
    auto b = good;
    uint64_t incompat;
    std::memcpy(&incompat, b.data() + offsetof(fmt::Superblock, ext.features_incompat), 8);
    incompat &= ~fmt::kFeatureObjects;
    std::memcpy(b.data() + offsetof(fmt::Superblock, ext.features_incompat), &incompat, 8);
    (void)open_bytes(b, true);
  }
  // Random flips in the metadata (inodes, digests, directories).
  auto img = OpenOrDie(dir / "img");
  std::mt19937_64 rng(13);
  for (int i = 0; i < 300; ++i) {
    auto b = good;
    const size_t at = fmt::kBlockSize + rng() % (b.size() - fmt::kBlockSize);
    b[at] ^= static_cast<std::byte>(1u << (rng() % 8));
    (void)open_bytes(b, false);
  }
  // Each file's digest offset pointed past the metadata area.
  Ino big = 0;
  for (Ino ino = 1; ino <= img->info().inode_count; ++ino) {
    auto a = img->stat(ino);
    if (a.ok() && S_ISREG(a->mode) && a->size > 0) big = ino;
  }
  ASSERT_NE(big, 0u);
  auto b = good;
  const uint64_t inode_at = img->info().inode_table_end -
                            uint64_t{img->info().inode_count - (big - 1)} * fmt::kInodeSize;
  const uint64_t past = img->info().meta_size - 8;
  std::memcpy(b.data() + inode_at + offsetof(fmt::Inode, data_offset), &past, 8);
  auto keep = std::make_shared<std::vector<std::byte>>(b);
  OpenOptions oo;
  oo.object_dir = dir / "objs";
  auto bad = Image::Open(Region::FromMemory(keep->data(), keep->size(), "test.img"), oo);
  ASSERT_TRUE(bad.ok());
  auto d = (*bad)->contents(big);
  ASSERT_FALSE(d.ok());
  EXPECT_TRUE(d.status().IsCorruption()) << d.status().ToString();
}

}  // namespace
}  // namespace daxfs::testing
