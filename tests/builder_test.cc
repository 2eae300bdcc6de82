// Round trips: build an image from a real tree and compare it, entry by
// entry, with the tree (contents and metadata), plus reproducibility.
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include "daxfs/builder.h"
#include "daxfs/check.h"
#include "daxfs/extract.h"
#include "test_util.h"

namespace daxfs::testing {
namespace {

void ExpectClean(const Image& image) {
  CheckOptions o;
  o.report = [](const std::string& m) { ADD_FAILURE() << "check: " << m; };
  auto r = CheckImage(image, o);
  EXPECT_EQ(r.problems, 0u);
  EXPECT_EQ(r.warnings, 0u);
}

TEST(Builder, RichTreeRoundTrip) {
  TempDir dir;
  const std::string src = dir / "src";
  mkdir(src.c_str(), 0755);
  MakeRichTree(src);
  const std::string img = dir / "rich.img";
  auto stats = BuildFromDirectory(src, img, {});
  ASSERT_TRUE(stats.ok()) << stats.status().ToString();
  EXPECT_EQ(stats->hardlinks, 2u);
  auto image = OpenOrDie(img);
  ASSERT_TRUE(image);
  ExpectImageMatchesDirectory(*image, src);
  ExpectClean(*image);
  // Every regular file is page aligned so it can be mapped in place.
  auto ino = image->resolve("/sub/big.bin");
  ASSERT_TRUE(ino.ok());
  auto loc = image->data_location(*ino);
  ASSERT_TRUE(loc.ok());
  EXPECT_EQ(*loc % 4096, 0u);
}

TEST(Builder, ExtractRoundTrip) {
  TempDir dir;
  const std::string src = dir / "src";
  mkdir(src.c_str(), 0755);
  MakeRichTree(src);
  ASSERT_TRUE(BuildFromDirectory(src, dir / "a.img", {}).ok());
  auto image = OpenOrDie(dir / "a.img");
  ExtractOptions eo;
  eo.owners = IsRoot();
  eo.devices = IsRoot();
  ASSERT_DAXFS_OK(Extract(*image, "/", dir / "out", eo));
  ExpectDirectoriesMatch(src, dir / "out");
  // Holes survive: the 64 MiB sparse file takes a few blocks only.
  struct stat st;
  ASSERT_EQ(stat((dir / "out/sparse.img").c_str(), &st), 0);
  EXPECT_LT(st.st_blocks * 512, 1 << 20);
}

TEST(Builder, Reproducible) {
  TempDir dir;
  // The same tree created in two different orders.
  for (const char* name : {"a", "b"}) {
    const std::string root = dir / name;
    mkdir(root.c_str(), 0755);
    std::vector<int> order{3, 1, 4, 0, 2};
    if (std::string(name) == "b") std::reverse(order.begin(), order.end());
    for (int i : order) WriteFile(root + "/f" + std::to_string(i), std::string(i * 5000, 'x'));
    mkdir((root + "/d").c_str(), 0755);
  }
  BuildOptions o;
  o.all_time = 1234567890;
  ASSERT_TRUE(BuildFromDirectory(dir / "a", dir / "a.img", o).ok());
  ASSERT_TRUE(BuildFromDirectory(dir / "b", dir / "b.img", o).ok());
  EXPECT_EQ(ReadFile(dir / "a.img"), ReadFile(dir / "b.img"));
  ASSERT_TRUE(BuildFromDirectory(dir / "a", dir / "a2.img", o).ok());
  EXPECT_EQ(ReadFile(dir / "a.img"), ReadFile(dir / "a2.img"));
}

TEST(Builder, ClampTime) {
  TempDir dir;
  mkdir((dir / "s").c_str(), 0755);
  WriteFile(dir / "s/new", "x");
  BuildOptions o;
  o.clamp_time = 1000;
  ASSERT_TRUE(BuildFromDirectory(dir / "s", dir / "c.img", o).ok());
  auto image = OpenOrDie(dir / "c.img");
  auto a = image->stat(*image->resolve("new"));
  ASSERT_TRUE(a.ok());
  EXPECT_EQ(a->mtime_sec, 1000);
}

TEST(Builder, UpstreamOnlyImageReadsBack) {
  TempDir dir;
  const std::string src = dir / "src";
  mkdir(src.c_str(), 0755);
  MakeRichTree(src);
  BuildOptions o;
  o.upstream_only = true;
  ASSERT_TRUE(BuildFromDirectory(src, dir / "u.img", o).ok());
  auto image = OpenOrDie(dir / "u.img");
  ASSERT_TRUE(image);
  EXPECT_FALSE(image->info().daxfs_extensions);
  // No mtimes or xattrs in a plain v5 image, but names, modes, owners,
  // contents and links all survive, and ".." works through the parent map.
  auto ino = image->resolve("deep/d0/d1/../d1/d2");
  ASSERT_TRUE(ino.ok()) << ino.status().ToString();
  auto data = image->contents(*image->resolve("sub/big.bin"));
  ASSERT_TRUE(data.ok());
  EXPECT_EQ(data->size(), 5u * 1024 * 1024 + 123);
  // Bytes 1024..2047 stay free for an EROFS superblock.
  auto bytes = ReadBytes(dir / "u.img");
  for (size_t i = 1024; i < 2048; ++i) ASSERT_EQ(bytes[i], std::byte{0}) << i;
}

TEST(Builder, ErofsReservedBytesStayFree) {
  TempDir dir;
  mkdir((dir / "s").c_str(), 0755);
  WriteFile(dir / "s/f", "x");
  ASSERT_TRUE(BuildFromDirectory(dir / "s", dir / "i.img", {}).ok());
  auto bytes = ReadBytes(dir / "i.img");
  for (size_t i = 1024; i < 2048; ++i) ASSERT_EQ(bytes[i], std::byte{0}) << i;
}

TEST(Builder, TarMatchesDirectory) {
  TempDir dir;
  const std::string src = dir / "src";
  mkdir(src.c_str(), 0755);
  MakeRichTree(src);
  // GNU tar with xattrs, sparse files and nanosecond times (POSIX format).
  ASSERT_EQ(RunShell("tar --format=posix --xattrs --xattrs-include='*' --sparse -C '" + src +
                "' -cf '" + (dir / "t.tar") + "' . 2>/dev/null"), 0);
  auto stats = BuildFromTar(dir / "t.tar", dir / "t.img", {});
  ASSERT_TRUE(stats.ok()) << stats.status().ToString();
  auto image = OpenOrDie(dir / "t.img");
  ASSERT_TRUE(image);
  // The root's mtime comes from the "./" entry; sockets are not archived.
  RemoveTree(src + "/socket");
  unlink((src + "/socket").c_str());
  ExpectImageMatchesDirectory(*image, src, /*compare_xattrs=*/true, /*compare_mtime=*/true);
  ExpectClean(*image);
}

TEST(Builder, CompressedTar) {
  TempDir dir;
  mkdir((dir / "s").c_str(), 0755);
  mkdir((dir / "s/d").c_str(), 0755);
  WriteFile(dir / "s/d/f", "compressed");
  ASSERT_EQ(RunShell("tar -C '" + (dir / "s") + "' -czf '" + (dir / "t.tgz") + "' d"), 0);
  ASSERT_TRUE(BuildFromTar(dir / "t.tgz", dir / "t.img", {}).ok());
  auto image = OpenOrDie(dir / "t.img");
  auto data = image->contents(*image->resolve("d/f"));
  ASSERT_TRUE(data.ok());
  EXPECT_EQ(std::string(reinterpret_cast<const char*>(data->data()), data->size()), "compressed");
}

TEST(Builder, FailureLeavesNoImage) {
  TempDir dir;
  auto r = BuildFromDirectory(dir / "missing", dir / "x.img", {});
  EXPECT_FALSE(r.ok());
  EXPECT_NE(r.status().message().find("missing"), std::string::npos);
  EXPECT_NE(access((dir / "x.img").c_str(), F_OK), 0);
  // A tar with a path escaping the root is refused, and nothing is left.
  mkdir((dir / "s").c_str(), 0755);
  WriteFile(dir / "s/f", "x");
  ASSERT_EQ(RunShell("tar -C '" + (dir / "s") + "' -cf '" + (dir / "evil.tar") +
                "' --transform='s,^f,../f,' f 2>/dev/null"), 0);
  auto t = BuildFromTar(dir / "evil.tar", dir / "e.img", {});
  EXPECT_FALSE(t.ok());
  EXPECT_NE(access((dir / "e.img").c_str(), F_OK), 0);
  EXPECT_EQ(RunShell("ls '" + dir.path() + "' | grep -q '\\.tmp\\.'"), 1) << "temporary file left";
}

// Every whole 4 KiB block of a hole in a source file stays a hole in the
// image (the README's claim), however small the hole.
TEST(Builder, HolesOfOneBlockStaySparse) {
  TempDir dir;
  const std::string src = dir / "src";
  mkdir(src.c_str(), 0755);
  const std::string file = src + "/sparse";
  {
    int fd = open(file.c_str(), O_WRONLY | O_CREAT, 0644);
    ASSERT_GE(fd, 0);
    // Data blocks at 0, 8 KiB and 396 KiB; holes of 4 KiB and of 384 KiB.
    for (off_t at : {off_t{0}, off_t{8192}, off_t{396 * 1024}}) ASSERT_EQ(pwrite(fd, "x", 1, at), 1);
    ASSERT_EQ(ftruncate(fd, 400 * 1024), 0);
    close(fd);
  }
  struct stat st;
  ASSERT_EQ(stat(file.c_str(), &st), 0);
  if (st.st_blocks * 512 > 3 * 4096) GTEST_SKIP() << "this filesystem does not keep the holes";
  ASSERT_TRUE(BuildFromDirectory(src, dir / "img", {}).ok());
  auto image = OpenOrDie(dir / "img");
  ExpectImageMatchesDirectory(*image, src);
  const auto ext = image->extent(*image->resolve("sparse"));
  ASSERT_TRUE(ext.ok());
  // Holes exactly where the source has them, in the image's file.
  int fd = open((dir / "img").c_str(), O_RDONLY);
  ASSERT_GE(fd, 0);
  auto is_data = [&](uint64_t file_off) {
    const off_t at = static_cast<off_t>(ext->offset + file_off);
    return lseek(fd, at, SEEK_DATA) == at;
  };
  EXPECT_TRUE(is_data(0));
  EXPECT_FALSE(is_data(4096)) << "a 4 KiB hole was written out";
  EXPECT_TRUE(is_data(8192));
  EXPECT_FALSE(is_data(12288));
  EXPECT_FALSE(is_data(200 * 1024));
  EXPECT_TRUE(is_data(396 * 1024));
  close(fd);
}

TEST(Builder, HundredThousandEntriesInOneDirectory) {
  TempDir dir;
  const std::string src = dir / "big";
  mkdir(src.c_str(), 0755);
  for (int i = 0; i < 100000; ++i) {
    int fd = open((src + "/entry_" + std::to_string(i)).c_str(), O_WRONLY | O_CREAT, 0644);
    ASSERT_GE(fd, 0);
    if (i % 1000 == 0) {
      ASSERT_EQ(write(fd, "x", 1), 1);
    }
    close(fd);
  }
  ASSERT_TRUE(BuildFromDirectory(src, dir / "big.img", {}).ok());
  auto image = OpenOrDie(dir / "big.img");
  auto d = image->opendir(image->root());
  ASSERT_TRUE(d.ok());
  EXPECT_EQ(d->size(), 100000u);
  for (int i = 0; i < 100000; i += 997) {
    auto ino = image->resolve("entry_" + std::to_string(i));
    ASSERT_TRUE(ino.ok()) << i;
  }
  EXPECT_FALSE(image->resolve("entry_100000").ok());
  ExpectClean(*image);
}

TEST(Builder, RealTrees) {
  for (const char* tree : {"/usr/include", "/etc"}) {
    TempDir dir;
    auto stats = BuildFromDirectory(tree, dir / "real.img", {});
    ASSERT_TRUE(stats.ok()) << tree << ": " << stats.status().ToString();
    auto image = OpenOrDie(dir / "real.img");
    ASSERT_TRUE(image);
    ExpectImageMatchesDirectory(*image, tree);
    ExpectClean(*image);
  }
}

}  // namespace
}  // namespace daxfs::testing
