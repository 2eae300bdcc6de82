// The EROFS view (BuildOptions::erofs): the EROFS reader sees the tree the
// daxfs reader sees, large files share their blocks, small files their
// inline bytes; damaged EROFS metadata is reported, never crashes a reader.
#include <sys/stat.h>

#include <random>

#include "daxfs/builder.h"
#include "daxfs/check.h"
#include "daxfs/erofs.h"
#include "daxfs/erofs_format.h"
#include "test_util.h"

namespace daxfs::testing {
namespace {

std::shared_ptr<const Image> BuildWithErofs(TempDir& dir, bool upstream_readable = false) {
  const std::string src = dir / "src";
  mkdir(src.c_str(), 0755);
  MakeRichTree(src);
  for (int i = 0; i < 300; ++i) WriteFile(src + "/small-" + std::to_string(i), std::string(i * 13 % 3000, 'a' + i % 26));
  WriteFile(src + "/dup1", "duplicate contents\n");
  WriteFile(src + "/dup2", "duplicate contents\n");
  BuildOptions o;
  o.erofs = BuildOptions::Erofs::kAlways;
  o.compact_dirs = !upstream_readable;
  const std::string img = dir / "erofs.img";
  auto stats = BuildFromDirectory(src, img, o);
  EXPECT_TRUE(stats.ok()) << stats.status().ToString();
  if (!stats.ok()) return nullptr;
  EXPECT_GT(stats->erofs_bytes, 0u);
  return OpenOrDie(img);
}

void ExpectViewsAgree(const std::shared_ptr<const Image>& image) {
  CheckOptions o;
  o.report = [](const std::string& m) { ADD_FAILURE() << m; };
  EXPECT_EQ(CheckImage(*image, o).problems, 0u);
  auto r = CheckErofsView(image, o);
  EXPECT_EQ(r.problems, 0u);
  EXPECT_GT(r.inodes_reached, 300u);
}

TEST(ErofsView, BothViewsDescribeTheSameTree) {
  TempDir dir;
  auto image = BuildWithErofs(dir);
  ASSERT_TRUE(image);
  ASSERT_TRUE(HasErofsSuperblock(image->region().bytes()));
  ExpectImageMatchesDirectory(*image, dir / "src");
  ExpectViewsAgree(image);
}

TEST(ErofsView, UpstreamReadableLayoutToo) {
  TempDir dir;
  auto image = BuildWithErofs(dir, true);
  ASSERT_TRUE(image);
  ExpectImageMatchesDirectory(*image, dir / "src");
  ExpectViewsAgree(image);
}

TEST(ErofsView, FilesShareTheirBytes) {
  TempDir dir;
  auto image = BuildWithErofs(dir);
  ASSERT_TRUE(image);
  auto erofs = OpenErofsView(image->region().bytes(), image, "test");
  ASSERT_TRUE(erofs.ok()) << erofs.status().ToString();
  for (const char* path : {"/sub/big.bin", "/small-7", "/dup1", "/dup2"}) {
    auto a = image->resolve(path);
    auto b = (*erofs)->resolve(path);
    ASSERT_TRUE(a.ok() && b.ok()) << path;
    auto da = image->read(*a, 0, 1 << 20);
    auto db = (*erofs)->read(*b, 0, 1 << 20);
    ASSERT_TRUE(da.ok() && db.ok()) << path;
    // The same bytes of the image, not copies (duplicates: daxfs reads the
    // first copy, EROFS each inode's own).
    if (std::string(path) != "/dup2") {
      EXPECT_EQ(da->data(), db->data()) << path;
    }
  }
}

TEST(ErofsView, DamagedMetadataIsReportedNotFatal) {
  TempDir dir;
  auto image = BuildWithErofs(dir);
  ASSERT_TRUE(image);
  const auto good = image->region().bytes();
  erofs::SuperBlock sb;
  std::memcpy(&sb, good.data() + erofs::kSuperOffset, sizeof sb);
  std::mt19937_64 rng(7);
  const uint64_t size = good.size();
  for (int round = 0; round < 80; ++round) {
    std::vector<std::byte> bad(good.begin(), good.end());
    // Damage block 0's EROFS half or a random spot of the last blocks,
    // where the EROFS inodes and directories are.
    for (int k = 0; k < 4; ++k) {
      const uint64_t at = round % 2 ? 1024 + rng() % 3072 : size - 1 - rng() % std::min<uint64_t>(size, 16384);
      bad[at] = static_cast<std::byte>(rng());
    }
    auto v = OpenErofsView(bad, nullptr, "damaged");
    if (!v.ok()) continue;
    // Walk everything; any status is fine, a crash or hang is not.
    CheckOptions o;
    o.report = [](const std::string&) {};
    o.verify_data = round % 4 == 0;
    (void)CheckView(**v, o);
  }
}

// Object-store images: the view is OverlayFS's metadata layer. Files with
// an object are chunk-based holes of their size with the metacopy and
// redirect xattrs; the tree's own trusted.overlay.* names are escaped.
TEST(ErofsView, ObjectStoreImagesAreOverlayMetadataLayers) {
  TempDir dir;
  const std::string src = dir / "src";
  mkdir(src.c_str(), 0755);
  MakeRichTree(src);
  WriteFile(src + "/three", "abc");
  BuildOptions o;
  o.erofs = BuildOptions::Erofs::kAlways;
  o.object_dir = dir / "objs";
  auto stats = BuildFromDirectory(src, dir / "obj.img", o);
  ASSERT_TRUE(stats.ok()) << stats.status().ToString();
  EXPECT_GT(stats->erofs_bytes, 0u);
  auto image = OpenOrDie(dir / "obj.img");
  ExpectViewsAgree(image);
  auto erofs = OpenErofsView(image->region().bytes(), image, "test");
  ASSERT_TRUE(erofs.ok()) << erofs.status().ToString();
  auto ino = (*erofs)->resolve("/three");
  ASSERT_TRUE(ino.ok()) << ino.status().ToString();
  auto st = (*erofs)->stat(*ino);
  ASSERT_TRUE(st.ok());
  EXPECT_EQ(st->size, 3u);
  std::string got(3, 'x');
  auto n = (*erofs)->read_into(*ino, 0, std::as_writable_bytes(std::span(got)));
  ASSERT_TRUE(n.ok());
  EXPECT_EQ(got, std::string(3, '\0'));  // a hole: the data is the object's
  auto redirect = (*erofs)->getxattr(*ino, "trusted.overlay.redirect");
  ASSERT_TRUE(redirect.ok()) << redirect.status().ToString();
  EXPECT_EQ(std::string(reinterpret_cast<const char*>(redirect->data()), redirect->size()),
            "/" + *image->object_name(*image->resolve("/three")));
  EXPECT_TRUE((*erofs)->getxattr(*ino, "trusted.overlay.metacopy").ok());

  // A changed redirect is a problem check reports.
  std::vector<std::byte> bad(image->region().bytes().begin(), image->region().bytes().end());
  const std::string want(reinterpret_cast<const char*>(redirect->data()), redirect->size());
  const std::string_view all(reinterpret_cast<const char*>(bad.data()), bad.size());
  const size_t at = all.find(want);
  ASSERT_NE(at, std::string_view::npos);
  bad[at + want.size() - 1] = static_cast<std::byte>('z');
  WriteFile(dir / "bad.img", std::string(reinterpret_cast<const char*>(bad.data()), bad.size()));
  auto damaged = OpenOrDie(dir / "bad.img");
  CheckOptions quiet;
  std::string said;
  quiet.report = [&](const std::string& m) { said += m + "\n"; };
  EXPECT_GT(CheckErofsView(damaged, quiet).problems, 0u);
  EXPECT_NE(said.find("/three"), std::string::npos) << said;
}

}  // namespace
}  // namespace daxfs::testing
