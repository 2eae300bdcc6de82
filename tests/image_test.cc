// The reader API: lookups, zero-copy reads, xattrs, region backends.
#include <fcntl.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <sys/stat.h>
#include <unistd.h>

#include "daxfs/builder.h"
#include "daxfs/image.h"
#include "test_util.h"

namespace daxfs::testing {
namespace {

class ImageTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    dir_ = new TempDir();
    const std::string src = *dir_ / "src";
    mkdir(src.c_str(), 0755);
    MakeRichTree(src);
    ASSERT_TRUE(BuildFromDirectory(src, *dir_ / "img", {}).ok());
  }
  static void TearDownTestSuite() { delete dir_; }
  void SetUp() override {
    image_ = OpenOrDie(*dir_ / "img");
    ASSERT_TRUE(image_);
  }
  static TempDir* dir_;
  std::shared_ptr<const Image> image_;
};
TempDir* ImageTest::dir_ = nullptr;

TEST_F(ImageTest, ReadIsZeroCopy) {
  auto ino = image_->resolve("/hello.txt");
  ASSERT_TRUE(ino.ok());
  auto span = image_->read(*ino, 0, 100);
  ASSERT_TRUE(span.ok());
  EXPECT_EQ(std::string(reinterpret_cast<const char*>(span->data()), span->size()), "hello, daxfs\n");
  // The span points into the region's mapping, not into a copy.
  auto region = image_->region().bytes();
  EXPECT_GE(span->data(), region.data());
  EXPECT_LE(span->data() + span->size(), region.data() + region.size());
}

TEST_F(ImageTest, ReadClipsAtEndOfFile) {
  auto ino = *image_->resolve("hello.txt");
  EXPECT_EQ(image_->read(ino, 7, 1000)->size(), 6u);
  EXPECT_EQ(image_->read(ino, 13, 10)->size(), 0u);
  EXPECT_EQ(image_->read(ino, UINT64_MAX, 10)->size(), 0u);
  auto big = *image_->resolve("sub/big.bin");
  EXPECT_EQ(image_->read(big, 5 * 1024 * 1024, SIZE_MAX)->size(), 123u);
}

TEST_F(ImageTest, LookupAndResolve) {
  auto sub = image_->resolve("sub");
  ASSERT_TRUE(sub.ok());
  EXPECT_EQ(*image_->lookup(*sub, ".."), image_->root());
  EXPECT_EQ(*image_->lookup(*sub, "."), *sub);
  EXPECT_EQ(*image_->lookup(image_->root(), ".."), image_->root());
  EXPECT_EQ(*image_->resolve("//sub/./../sub/linked3"), *image_->resolve("linked"));
  auto missing = image_->resolve("sub/nope");
  ASSERT_FALSE(missing.ok());
  EXPECT_EQ(missing.status().errno_value(), ENOENT);
  auto through_file = image_->resolve("hello.txt/x");
  ASSERT_FALSE(through_file.ok());
  EXPECT_EQ(through_file.status().errno_value(), ENOTDIR);
  EXPECT_FALSE(image_->lookup(image_->root(), "a/b").ok());
  EXPECT_FALSE(image_->lookup(image_->root(), "").ok());
}

TEST_F(ImageTest, WrongTypeErrors) {
  auto dir = *image_->resolve("sub");
  EXPECT_EQ(image_->read(dir, 0, 1).status().errno_value(), EISDIR);
  EXPECT_EQ(image_->readlink(dir).status().errno_value(), EINVAL);
  auto file = *image_->resolve("hello.txt");
  EXPECT_EQ(image_->opendir(file).status().errno_value(), ENOTDIR);
  EXPECT_FALSE(image_->stat(0).ok());
  EXPECT_FALSE(image_->stat(image_->info().inode_count + 1).ok());
}

TEST_F(ImageTest, Xattrs) {
  auto ino = *image_->resolve("hello.txt");
  auto v = image_->getxattr(ino, "user.comment");
  ASSERT_TRUE(v.ok());
  EXPECT_EQ(std::string(reinterpret_cast<const char*>(v->data()), v->size()), "greeting");
  auto none = image_->getxattr(ino, "user.none");
  ASSERT_FALSE(none.ok());
  EXPECT_EQ(none.status().errno_value(), ENODATA);
  std::vector<std::string> names;
  ASSERT_DAXFS_OK(image_->list_xattrs(ino, [&](std::string_view n, std::span<const std::byte>) {
    names.emplace_back(n);
  }));
  EXPECT_EQ(names, (std::vector<std::string>{"user.comment", "user.empty"}));
}

// The names the FUSE adapter uses to answer probes for absent ones.
TEST_F(ImageTest, XattrNamesAreEveryDistinctName) {
  auto names = image_->xattr_names();
  ASSERT_DAXFS_OK(names.status());
  std::vector<std::string> want{"user.binary", "user.comment", "user.dirattr", "user.empty"};
  if (getuid() == 0) want = {"security.capability", "trusted.overlay.opaque", "user.binary", "user.comment",
                             "user.dirattr", "user.empty"};
  EXPECT_EQ(*names, want);
}

TEST_F(ImageTest, OpenFromFdAndMemory) {
  int fd = open((*dir_ / "img").c_str(), O_RDONLY);
  ASSERT_GE(fd, 0);
  auto by_fd = Image::Open("fd:" + std::to_string(fd));
  ASSERT_TRUE(by_fd.ok()) << by_fd.status().ToString();
  EXPECT_EQ((*by_fd)->info().inode_count, image_->info().inode_count);
  struct stat st;
  fstat(fd, &st);
  void* p = mmap(nullptr, st.st_size, PROT_READ, MAP_SHARED, fd, 0);
  ASSERT_NE(p, MAP_FAILED);
  {
    auto mem = Image::Open(Region::FromMemory(p, st.st_size, "borrowed"));
    ASSERT_TRUE(mem.ok());
    EXPECT_TRUE((*mem)->resolve("sub/big.bin").ok());
  }
  munmap(p, st.st_size);
  close(fd);
}

TEST_F(ImageTest, ReadOnlyRegionIsMappedReadOnly) {
  auto region = Region::Open(*dir_ / "img", Access::kReadOnly);
  ASSERT_TRUE(region.ok());
  EXPECT_EQ((*region)->access(), Access::kReadOnly);
  // Writing must fault: check with a child process.
  pid_t pid = fork();
  if (pid == 0) {
    auto* p = const_cast<std::byte*>((*region)->bytes().data());
    p[0] = std::byte{1};
    _exit(0);
  }
  int status = 0;
  waitpid(pid, &status, 0);
  // Killed by SIGSEGV (or, under ASan, exited through its SEGV handler).
  EXPECT_FALSE(WIFEXITED(status) && WEXITSTATUS(status) == 0) << "write to a read-only region succeeded";
}

TEST_F(ImageTest, MetadataChecksumVerifies) {
  OpenOptions o;
  o.verify_metadata = true;
  auto img = Image::Open(*dir_ / "img", o);
  ASSERT_TRUE(img.ok()) << img.status().ToString();
  ASSERT_DAXFS_OK((*img)->VerifyDataChecksum());
}

TEST(RegionSpec, Errors) {
  auto bad = Region::Open("nosuchkind:/x", Access::kReadOnly);
  ASSERT_FALSE(bad.ok());
  EXPECT_NE(bad.status().message().find("unknown region kind"), std::string::npos);
  EXPECT_FALSE(Region::Open("phys:zzz", Access::kReadOnly).ok());
  EXPECT_FALSE(Region::Open("shm:/", Access::kReadOnly).ok());
  auto missing = Region::Open("/nonexistent/img", Access::kReadOnly);
  ASSERT_FALSE(missing.ok());
  EXPECT_EQ(missing.status().errno_value(), ENOENT);
  auto not_huge = Region::Open("hugetlbfs:/etc/hostname", Access::kReadOnly);
  ASSERT_FALSE(not_huge.ok());
  EXPECT_NE(not_huge.status().message().find("hugetlbfs"), std::string::npos);
}

TEST(ImageOpen, RejectsNonImages) {
  TempDir dir;
  WriteFile(dir / "small", "tiny");
  auto r = Image::Open(dir / "small");
  ASSERT_FALSE(r.ok());
  EXPECT_TRUE(r.status().IsCorruption());
  WriteFile(dir / "zeros", std::string(8192, '\0'));
  r = Image::Open(dir / "zeros");
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.status().message().find("bad magic"), std::string::npos);
  EXPECT_NE(r.status().message().find("offset 0"), std::string::npos);
}

}  // namespace
}  // namespace daxfs::testing
