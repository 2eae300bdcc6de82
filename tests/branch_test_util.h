// Helpers shared by the branch tests.
#pragma once

#include <gtest/gtest.h>
#include <sys/stat.h>
#include <unistd.h>

#include <atomic>
#include <string>

#include "daxfs/branch.h"
#include "daxfs/builder.h"
#include "test_util.h"

namespace daxfs::testing {

inline std::span<const std::byte> B(std::string_view s) {
  return {reinterpret_cast<const std::byte*>(s.data()), s.size()};
}

// Reads a whole file of a view.
inline std::string ReadAll(const FsView& v, Ino ino) {
  auto a = v.stat(ino);
  if (!a.ok()) return "<" + a.status().ToString() + ">";
  std::string out(a->size, '\0');
  auto n = v.read_into(ino, 0, {reinterpret_cast<std::byte*>(out.data()), out.size()});
  if (!n.ok()) return "<" + n.status().ToString() + ">";
  out.resize(*n);
  return out;
}

inline std::string ReadPath(const FsView& v, const std::string& path) {
  auto ino = v.resolve(path);
  if (!ino.ok()) return "<" + ino.status().ToString() + ">";
  return ReadAll(v, *ino);
}

// A region in /dev/shm made from an image of `src`, removed at the end.
class BranchRegion {
 public:
  explicit BranchRegion(const std::string& src_dir, uint64_t delta = 64ull << 20,
                        std::string dir = "/dev/shm", uint32_t lease_timeout_ms = 0) {
    static std::atomic<int> n{0};
    image_ = tmp_ / "base.img";
    region_ = dir + "/daxfs-branch-test-" + std::to_string(getpid()) + "-" + std::to_string(n++);
    BuildOptions o;
    auto st = BuildFromDirectory(src_dir, image_, o);
    EXPECT_TRUE(st.ok()) << st.status().ToString();
    auto s = BranchStore::Init(image_, region_, delta, lease_timeout_ms);
    EXPECT_TRUE(s.ok()) << s.status().ToString();
    if (s.ok()) store_ = *s;
  }
  ~BranchRegion() {
    store_.reset();
    unlink(region_.c_str());
  }
  const std::string& spec() const { return region_; }
  const std::string& image() const { return image_; }
  std::shared_ptr<BranchStore>& store() { return store_; }
  BranchStore* operator->() { return store_.get(); }

 private:
  TempDir tmp_;
  std::string image_, region_;
  std::shared_ptr<BranchStore> store_;
};

}  // namespace daxfs::testing
