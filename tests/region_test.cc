// Region backends that exist on this machine: files, shm, hugetlbfs (pages
// reserved by the test), sealed memfds passed between processes, and a PCI
// BAR emulated by a plain resource file.
#include <fcntl.h>
#include <sys/mman.h>
#include <sched.h>
#include <sys/mount.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <thread>

#include "daxfs/builder.h"
#include "daxfs/image.h"
#include "daxfs/region_server.h"
#include "test_util.h"

namespace daxfs::testing {
namespace {

class RegionTest : public ::testing::Test {
 protected:
  void SetUp() override {
    const std::string src = dir_ / "src";
    mkdir(src.c_str(), 0755);
    WriteFile(src + "/weights.bin", std::string(3 << 20, 'w'));
    WriteFile(src + "/config.json", "{\"layers\": 2}\n");
    ASSERT_TRUE(BuildFromDirectory(src, dir_ / "img", {}).ok());
    image_ = OpenOrDie(dir_ / "img");
    ASSERT_TRUE(image_);
  }
  std::span<const std::byte> ImageBytes() const {
    return image_->region().bytes().first(image_->info().total_size);
  }
  static void ExpectContent(const Image& img) {
    auto c = img.contents(*img.resolve("config.json"));
    ASSERT_TRUE(c.ok());
    EXPECT_EQ(std::string(reinterpret_cast<const char*>(c->data()), c->size()), "{\"layers\": 2}\n");
    EXPECT_EQ(img.contents(*img.resolve("weights.bin"))->size(), 3u << 20);
  }
  TempDir dir_;
  std::shared_ptr<const Image> image_;
};

TEST_F(RegionTest, ShmCreateLoadOpen) {
  const std::string spec = "shm:/daxfs-test-" + std::to_string(getpid());
  {
    auto r = Region::Create(spec, ImageBytes().size());
    ASSERT_TRUE(r.ok()) << r.status().ToString();
    std::memcpy((*r)->writable_bytes().data(), ImageBytes().data(), ImageBytes().size());
    ASSERT_DAXFS_OK((*r)->Publish());
  }
  auto img = Image::Open(spec);
  ASSERT_TRUE(img.ok()) << img.status().ToString();
  ExpectContent(**img);
  unlink(("/dev/shm/daxfs-test-" + std::to_string(getpid())).c_str());
}

// A created file region has no name until Publish(); dropped unpublished,
// it leaves nothing, and a previous file stays as it was.
TEST_F(RegionTest, CreateIsInvisibleUntilPublished) {
  const std::string path = dir_ / "loaded.img";
  {
    auto r = Region::Create(path, ImageBytes().size());
    ASSERT_TRUE(r.ok()) << r.status().ToString();
    std::memcpy((*r)->writable_bytes().data(), ImageBytes().data(), ImageBytes().size());
    EXPECT_NE(access(path.c_str(), F_OK), 0) << "named before Publish";
  }
  EXPECT_NE(access(path.c_str(), F_OK), 0) << "left behind unpublished";
  WriteFile(path, "previous");
  {
    auto r = Region::Create(path, ImageBytes().size());
    ASSERT_TRUE(r.ok()) << r.status().ToString();
    std::memcpy((*r)->writable_bytes().data(), ImageBytes().data(), ImageBytes().size());
    EXPECT_EQ(ReadFile(path), "previous");
    ASSERT_DAXFS_OK((*r)->Publish());
  }
  ExpectContent(*OpenOrDie(path));
  // Not a regular file: refused, untouched. (A private device node: a
  // regression must not replace the real /dev/null.)
  const std::string null_copy = dir_ / "null";
  if (mknod(null_copy.c_str(), S_IFCHR | 0666, makedev(1, 3)) == 0) {
    auto dev = Region::Create(null_copy, 4096);
    ASSERT_FALSE(dev.ok());
    EXPECT_NE(dev.status().message().find("character device"), std::string::npos) << dev.status().ToString();
    struct stat st;
    ASSERT_EQ(stat(null_copy.c_str(), &st), 0);
    EXPECT_TRUE(S_ISCHR(st.st_mode));
  }
  auto dir = Region::Create(dir_.path(), 4096);
  ASSERT_FALSE(dir.ok());
  EXPECT_EQ(dir.status().errno_value(), EISDIR);
}

// Memory that goes away under a mapping (here: the file is truncated) is a
// Status, not a SIGBUS: the guard puts zero pages in and records where.
TEST_F(RegionTest, BusErrorBecomesStatus) {
  const std::string path = dir_ / "shrinks.img";
  WriteFile(path, std::string(3 * 4096, 'x'));
  auto r = Region::OpenFile(path, Access::kReadOnly);
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  EXPECT_TRUE((*r)->status().ok());
  ASSERT_EQ(truncate(path.c_str(), 4096), 0);
  const volatile std::byte* p = (*r)->bytes().data();
  const std::byte past_end = p[2 * 4096 + 5];  // past the new end: a bus error
  const std::byte first = p[0];
  EXPECT_EQ(past_end, std::byte{0});
  EXPECT_EQ(first, std::byte{0}) << "the whole mapping reads as zeros once lost";
  const Status st = (*r)->status();
  ASSERT_FALSE(st.ok());
  EXPECT_EQ(st.errno_value(), EIO);
  EXPECT_NE(st.message().find(path + ": bus error at region offset"), std::string::npos) << st.ToString();
  // Other regions are unaffected.
  auto other = Region::OpenFile(dir_ / "img", Access::kReadOnly);
  ASSERT_TRUE(other.ok());
  EXPECT_TRUE((*other)->status().ok());
}

TEST_F(RegionTest, SealedMemfdPassedToAnotherProcess) {
  auto region = Region::SealedMemfd(ImageBytes(), "test", false);
  ASSERT_TRUE(region.ok()) << region.status().ToString();
  const std::string sock = dir_ / "serve.sock";
  std::atomic<bool> stop{false};
  std::atomic<int> clients{0};
  std::thread server([&] {
    EXPECT_TRUE(ServeRegion(**region, sock, stop, [&](int) { ++clients; }).ok());
  });
  for (int i = 0; i < 100 && access(sock.c_str(), F_OK) != 0; ++i) usleep(10000);
  // A separate process receives the fd, maps it and reads the image.
  pid_t pid = fork();
  if (pid == 0) {
    auto img = Image::Open("memfd:" + sock);
    if (!img.ok()) _exit(2);
    auto c = (*img)->contents(*(*img)->resolve("weights.bin"));
    if (!c.ok() || c->size() != (3u << 20) || c->back() != std::byte{'w'}) _exit(3);
    // The seals hold: no writable mapping, no resizing.
    int fd = (*img)->region().fd();
    if (mmap(nullptr, 4096, PROT_WRITE, MAP_SHARED, fd, 0) != MAP_FAILED) _exit(4);
    if (ftruncate(fd, 0) == 0) _exit(5);
    _exit(0);
  }
  int status = 0;
  waitpid(pid, &status, 0);
  stop = true;
  server.join();
  ASSERT_TRUE(WIFEXITED(status));
  EXPECT_EQ(WEXITSTATUS(status), 0);
  EXPECT_EQ(clients.load(), 1);
  EXPECT_NE(access(sock.c_str(), F_OK), 0) << "socket not removed";
}

// A served socket's path appears only once it listens: a client that sees
// the path and connects at once is never refused (units and scripts wait for
// the path), and no staging name is left beside it.
TEST_F(RegionTest, ServedSocketAcceptsAsSoonAsItsPathExists) {
  auto region = Region::SealedMemfd(ImageBytes(), "test", false);
  ASSERT_TRUE(region.ok()) << region.status().ToString();
  const std::string sock = dir_ / "race.sock";
  for (int round = 0; round < 200; ++round) {
    std::atomic<bool> stop{false};
    std::thread server([&] { EXPECT_TRUE(ServeRegion(**region, sock, stop).ok()); });
    struct stat st;
    while (lstat(sock.c_str(), &st) != 0) sched_yield();
    sockaddr_un addr{};
    addr.sun_family = AF_UNIX;
    std::memcpy(addr.sun_path, sock.c_str(), sock.size() + 1);
    const int s = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    ASSERT_GE(s, 0);
    const int rc = connect(s, reinterpret_cast<const sockaddr*>(&addr), sizeof addr);
    const int err = errno;
    close(s);
    stop = true;
    server.join();
    ASSERT_EQ(rc, 0) << "round " << round << ": " << std::strerror(err);
  }
  for (const auto& e : std::filesystem::directory_iterator(dir_.path()))
    EXPECT_EQ(e.path().filename().string().find(".daxfs-serve."), std::string::npos) << e.path();
}

TEST_F(RegionTest, ResourceFileEmulatesPciBar) {
  // A BAR is bigger than the image and has no size in its name.
  const std::string bar = dir_ / "resource2";
  std::string bytes(reinterpret_cast<const char*>(ImageBytes().data()), ImageBytes().size());
  bytes.resize(bytes.size() + (1 << 20), '\xff');
  WriteFile(bar, bytes);
  auto img = Image::Open("resource:" + bar);
  ASSERT_TRUE(img.ok()) << img.status().ToString();
  ExpectContent(**img);
  auto sized = Image::Open("resource:" + bar + "+" + std::to_string(ImageBytes().size()));
  ASSERT_TRUE(sized.ok());
  // Too small for the image: a clear error, before anything is written.
  auto small = Region::Create("resource:" + bar + "+4096", ImageBytes().size());
  ASSERT_FALSE(small.ok());
  EXPECT_EQ(small.status().errno_value(), ENOSPC);
  auto truncated = Image::Open("resource:" + bar + "+8192");
  ASSERT_FALSE(truncated.ok());
  EXPECT_NE(truncated.status().message().find("truncated"), std::string::npos);
}

TEST_F(RegionTest, KernelCanPinOrdinaryMemoryNotPfnMappings) {
  // Files, memfds and borrowed heap memory have pages the kernel can pin.
  const std::string file = dir_ / "img";
  WriteFile(file, std::string(reinterpret_cast<const char*>(ImageBytes().data()), ImageBytes().size()));
  auto region = Region::Open(file, Access::kReadOnly);
  ASSERT_TRUE(region.ok()) << region.status().ToString();
  EXPECT_TRUE((*region)->kernel_can_pin());
  auto sealed = Region::SealedMemfd(ImageBytes(), "pin", false);
  ASSERT_TRUE(sealed.ok()) << sealed.status().ToString();
  EXPECT_TRUE((*sealed)->kernel_can_pin());
  // /dev/mem's legacy first megabyte (open to root even under STRICT_DEVMEM)
  // is mapped with remap_pfn_range, as a PCI BAR is: a PFN mapping.
  if (!IsRoot()) GTEST_SKIP() << "needs root for /dev/mem";
  auto low = Region::Open("phys:0xf0000+65536", Access::kReadOnly);
  if (!low.ok()) GTEST_SKIP() << "cannot map /dev/mem here: " << low.status().ToString();
  EXPECT_FALSE((*low)->kernel_can_pin());
}

TEST_F(RegionTest, HugetlbfsWithReservedPages) {
  if (!IsRoot()) GTEST_SKIP() << "needs root to reserve huge pages";
  const char* knob = "/proc/sys/vm/nr_hugepages";
  std::string old = ReadFile(knob);
  const long pages = 8;  // 16 MiB of 2 MiB pages, enough for this image
  { std::ofstream(knob) << pages + std::stol(old.empty() ? "0" : old); }
  const std::string mnt = dir_ / "huge";
  mkdir(mnt.c_str(), 0755);
  if (mount("none", mnt.c_str(), "hugetlbfs", 0, "pagesize=2M") != 0) {
    std::ofstream(knob) << old;
    GTEST_SKIP() << "cannot mount hugetlbfs: " << std::strerror(errno);
  }
  {
    auto r = Region::Create("hugetlbfs:" + mnt + "/img", ImageBytes().size());
    if (!r.ok()) {
      umount(mnt.c_str());
      std::ofstream(knob) << old;
      GTEST_SKIP() << r.status().ToString();
    }
    EXPECT_EQ((*r)->bytes().size() % (2u << 20), 0u);
    std::memcpy((*r)->writable_bytes().data(), ImageBytes().data(), ImageBytes().size());
    ASSERT_DAXFS_OK((*r)->Publish());
  }
  {
    auto img = Image::Open("hugetlbfs:" + mnt + "/img");
    ASSERT_TRUE(img.ok()) << img.status().ToString();
    ExpectContent(**img);
  }
  unlink((mnt + "/img").c_str());
  umount(mnt.c_str());
  std::ofstream(knob) << old;
}

TEST_F(RegionTest, DmaBufFromHeap) {
  if (access("/dev/dma_heap/system", R_OK) != 0) GTEST_SKIP() << "no /dev/dma_heap/system on this machine";
  auto region = Region::DmaHeapCopy(ImageBytes(), "system");
  ASSERT_TRUE(region.ok()) << region.status().ToString();
  auto img = Image::Open("fd:" + std::to_string((*region)->fd()));
  ASSERT_TRUE(img.ok()) << img.status().ToString();
  ExpectContent(**img);
}

TEST(RegionSpecHardware, ClearErrorsWithoutHardware) {
  auto dax = Region::Open("dax:/dev/dax0.0", Access::kReadOnly);
  ASSERT_FALSE(dax.ok());
  EXPECT_NE(dax.status().message().find("/dev/dax0.0"), std::string::npos);
  auto phys = Region::Open("phys:0x1000", Access::kReadOnly);
  ASSERT_FALSE(phys.ok());
  EXPECT_NE(phys.status().message().find("phys:0xADDRESS+SIZE"), std::string::npos);
  auto memfd = Region::Open("memfd:/nonexistent.sock", Access::kReadOnly);
  ASSERT_FALSE(memfd.ok());
  EXPECT_NE(memfd.status().message().find("connect"), std::string::npos);
}

}  // namespace
}  // namespace daxfs::testing
