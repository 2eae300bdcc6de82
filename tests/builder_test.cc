// Round trips: build an image from a real tree and compare it, entry by
// entry, with the tree (contents and metadata), plus reproducibility.
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include "daxfs/builder.h"
#include "daxfs/check.h"
#include "daxfs/erofs.h"
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
  EXPECT_EQ(*loc % format::kBlockSize, 0u);
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

// Bytes [1024, 2048) are the EROFS superblock's: written by default (the
// EROFS view), zero without the view and in plain upstream images.
TEST(Builder, ErofsReservedBytes) {
  TempDir dir;
  mkdir((dir / "s").c_str(), 0755);
  WriteFile(dir / "s/f", "x");
  ASSERT_TRUE(BuildFromDirectory(dir / "s", dir / "i.img", {}).ok());
  EXPECT_TRUE(HasErofsSuperblock(ReadBytes(dir / "i.img")));
  BuildOptions never;
  never.erofs = BuildOptions::Erofs::kNever;
  BuildOptions upstream;
  upstream.upstream_only = true;
  upstream.compact_dirs = false;
  for (const BuildOptions& o : {never, upstream}) {
    ASSERT_TRUE(BuildFromDirectory(dir / "s", dir / "i.img", o).ok());
    auto bytes = ReadBytes(dir / "i.img");
    for (size_t i = 1024; i < 2048; ++i) ASSERT_EQ(bytes[i], std::byte{0}) << i;
  }
}

// The default writes the view only where it costs little: not for a tree
// of tiny files, where EROFS's own inode per file would add most of the
// image again; kAlways writes it there too.
TEST(Builder, ErofsViewWhereItIsCheap) {
  TempDir dir;
  mkdir((dir / "tiny").c_str(), 0755);
  for (int i = 0; i < 2000; ++i) WriteFile(dir / ("tiny/f" + std::to_string(i)), std::to_string(i));
  auto stats = BuildFromDirectory(dir / "tiny", dir / "t.img", {});
  ASSERT_TRUE(stats.ok()) << stats.status().ToString();
  EXPECT_FALSE(HasErofsSuperblock(ReadBytes(dir / "t.img")));
  EXPECT_NE(stats->erofs_skipped.find("would add about"), std::string::npos) << stats->erofs_skipped;
  BuildOptions always;
  always.erofs = BuildOptions::Erofs::kAlways;
  stats = BuildFromDirectory(dir / "tiny", dir / "t.img", always);
  ASSERT_TRUE(stats.ok()) << stats.status().ToString();
  EXPECT_TRUE(HasErofsSuperblock(ReadBytes(dir / "t.img")));
  EXPECT_TRUE(stats->erofs_skipped.empty());
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

namespace daxfs::testing {
namespace {

// Small files of every size class, files around the block size, duplicates
// (small, large, across a write-buffer flush, sparse) and hard links, built
// in each layout: contents and metadata must match the source, check must be
// clean, large files must stay block-aligned and duplicates share one extent.
class PackAndDedup : public ::testing::TestWithParam<int> {
 protected:
  static void MakeTree(const std::string& src) {
    mkdir(src.c_str(), 0755);
    mkdir((src + "/small").c_str(), 0755);
    for (int i = 0; i < 300; ++i) {
      const size_t size = 1 + (static_cast<size_t>(i) * 977) % format::kPackedFileMax;
      std::string s(size, '\0');
      for (size_t k = 0; k < size; ++k) s[k] = static_cast<char>('a' + (i + k) % 26);
      WriteFile(src + "/small/f" + std::to_string(i), s, i % 7 == 0 ? 0600 : 0644);
    }
    for (size_t size : {4095u, 4096u, 4097u, 8191u, 8192u, 100000u}) {
      std::string s(size, '\0');
      for (size_t k = 0; k < size; ++k) s[k] = static_cast<char>((k * 31 + size) >> 3);
      WriteFile(src + "/edge_" + std::to_string(size), s);
      WriteFile(src + "/small/dup_edge_" + std::to_string(size), s);
    }
    WriteFile(src + "/dup_small_a", "same small contents\n");
    WriteFile(src + "/small/dup_small_b", "same small contents\n");
    WriteFile(src + "/hardlink", "one inode\n");
    ASSERT_EQ(link((src + "/hardlink").c_str(), (src + "/small/hardlink2").c_str()), 0);
    // a_big is larger than the writer's 8 MiB buffer; b_big duplicates it, so
    // its bytes are already written when the duplicate is found and rewound;
    // c_sparse then lands where b_big's bytes were: its holes must read zero.
    std::string big(20u << 20, '\0');
    for (size_t k = 0; k < big.size(); ++k) big[k] = static_cast<char>((k * 2654435761u) >> 11);
    WriteFile(src + "/a_big", big);
    WriteFile(src + "/b_big", big);
    int fd = open((src + "/c_sparse").c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
    ASSERT_GE(fd, 0);
    ASSERT_EQ(pwrite(fd, "x", 1, 12 << 20), 1);
    ASSERT_EQ(ftruncate(fd, 24 << 20), 0);
    close(fd);
  }

  BuildOptions Options() const {
    BuildOptions o;
    o.compact_dirs = GetParam() == 0;
    o.upstream_only = GetParam() == 2;
    return o;
  }
};

TEST_P(PackAndDedup, RoundTripAndPlacement) {
  TempDir dir;
  const std::string src = dir / "src";
  MakeTree(src);
  auto stats = BuildFromDirectory(src, dir / "img", Options());
  ASSERT_TRUE(stats.ok()) << stats.status().ToString();
  auto image = OpenOrDie(dir / "img");
  ASSERT_TRUE(image);
  ExpectImageMatchesDirectory(*image, src, /*compare_xattrs=*/GetParam() != 2,
                              /*compare_mtime=*/GetParam() != 2);
  ExpectClean(*image);
  EXPECT_EQ(image->info().compact_dirs, GetParam() == 0);

  // Large files start on a block; small ones are packed (bytes, not blocks).
  for (const char* big : {"edge_4096", "edge_4097", "edge_100000", "a_big", "c_sparse"})
    EXPECT_EQ(*image->data_location(*image->resolve(big)) % format::kBlockSize, 0u) << big;
  // f0..f299, edge_4095, dup_small_a, hardlink (their duplicates are not stored).
  EXPECT_EQ(stats->packed_files, 303u);
  uint64_t small_bytes = 0;
  for (int i = 0; i < 300; ++i) small_bytes += 1 + (static_cast<size_t>(i) * 977) % 4095;
  // a_big + c_sparse (apparent size), the aligned edge files, the small
  // files' bytes and 64 blocks of metadata; unpacked, the 300 small files
  // alone would waste about 150 blocks.
  // (Plus the EROFS view's inodes and directories, where there is one.)
  EXPECT_LT(stats->image_size, (44u << 20) + 131072 + format::kPackedFileMax + small_bytes + 64 * format::kBlockSize +
                                   (stats->erofs_bytes - stats->inline_bytes));
  if (GetParam() != 0) {
    // Upstream maps page-aligned data directly: a small file that starts on
    // a page boundary (the EROFS view gives one that does not fit inline a
    // block of its own) must have nothing but zeros after it in its page.
    const auto bytes = image->region().bytes();
    for (int i = 0; i < 300; ++i) {
      auto loc = image->data_location(*image->resolve("small/f" + std::to_string(i)));
      if (*loc % format::kBlockSize != 0) continue;
      const uint64_t end = *loc + 1 + (static_cast<size_t>(i) * 977) % 4095;
      for (uint64_t at = end; at < *loc + format::kBlockSize; ++at)
        ASSERT_EQ(bytes[at], std::byte{0}) << "small/f" << i << " is followed by data in its page";
    }
  }

  // Duplicates: distinct inodes, one extent; hard links: one inode.
  EXPECT_EQ(stats->duplicate_files, 6u + 1u + 1u);
  for (auto [a, b] : {std::pair{"dup_small_a", "small/dup_small_b"}, std::pair{"a_big", "b_big"},
                      std::pair{"edge_4097", "small/dup_edge_4097"}}) {
    const Ino ia = *image->resolve(a), ib = *image->resolve(b);
    EXPECT_NE(ia, ib);
    EXPECT_EQ(*image->data_location(ia), *image->data_location(ib)) << a;
  }
  EXPECT_EQ(*image->resolve("hardlink"), *image->resolve("small/hardlink2"));

  // Extract: duplicates become separate files, hard links stay links.
  ExtractOptions eo;
  eo.owners = IsRoot();
  ASSERT_DAXFS_OK(Extract(*image, "/", dir / "out", eo));
  if (GetParam() != 2) ExpectDirectoriesMatch(src, dir / "out");  // plain images have no mtimes
  struct stat a, b;
  ASSERT_EQ(stat((dir / "out/a_big").c_str(), &a), 0);
  ASSERT_EQ(stat((dir / "out/b_big").c_str(), &b), 0);
  EXPECT_NE(a.st_ino, b.st_ino);
  EXPECT_EQ(a.st_nlink, 1u);
  ASSERT_EQ(stat((dir / "out/hardlink").c_str(), &a), 0);
  ASSERT_EQ(stat((dir / "out/small/hardlink2").c_str(), &b), 0);
  EXPECT_EQ(a.st_ino, b.st_ino);
}

TEST_P(PackAndDedup, ReproducibleAndOptionsOff) {
  TempDir dir;
  const std::string src = dir / "src";
  MakeTree(src);
  BuildOptions o = Options();
  o.all_time = 1;
  ASSERT_TRUE(BuildFromDirectory(src, dir / "a.img", o).ok());
  ASSERT_TRUE(BuildFromDirectory(src, dir / "b.img", o).ok());
  EXPECT_EQ(ReadBytes(dir / "a.img"), ReadBytes(dir / "b.img"));
  // Without packing and dedup every file has its own blocks, as before.
  o.pack_small_files = false;
  o.dedup = false;
  auto stats = BuildFromDirectory(src, dir / "c.img", o);
  ASSERT_TRUE(stats.ok());
  EXPECT_EQ(stats->packed_files, 0u);
  EXPECT_EQ(stats->duplicate_files, 0u);
  auto image = OpenOrDie(dir / "c.img");
  ExpectImageMatchesDirectory(*image, src, GetParam() != 2, /*compare_mtime=*/false);
  ExpectClean(*image);
  EXPECT_EQ(*image->data_location(*image->resolve("small/f1")) % format::kBlockSize, 0u);
  EXPECT_NE(*image->data_location(*image->resolve("a_big")), *image->data_location(*image->resolve("b_big")));
}

INSTANTIATE_TEST_SUITE_P(Layouts, PackAndDedup, ::testing::Values(0, 1, 2),
                         [](const auto& info) {
                           return std::string(info.param == 0 ? "Compact"
                                              : info.param == 1 ? "UpstreamReadable"
                                                                : "PlainUpstream");
                         });

}  // namespace
}  // namespace daxfs::testing
