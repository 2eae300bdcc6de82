// The control block and the delta area are written by other processes:
// random damage there must give errors, never a crash (run under ASan in CI),
// and damage to bytes not in use must change nothing.
#include <sys/mman.h>

#include <cstring>
#include <random>

#include "branch_test_util.h"
#include "daxfs/branch_format.h"

namespace daxfs::testing {
namespace {

// Walks every file of every active branch; returns false on the first error.
bool WalkAll(BranchStore& s) {
  auto list = s.List();
  if (!list.ok()) return false;
  bool ok = true;
  for (const auto& b : *list) {
    if (b.state != "active") continue;
    auto v = s.OpenBranch(b.name);
    if (!v.ok()) {
      ok = false;
      continue;
    }
    std::vector<Ino> todo{(*v)->root()};
    for (size_t i = 0; i < todo.size() && i < 10000; ++i) {
      auto c = (*v)->opendir(todo[i]);
      if (!c.ok()) {
        (void)ReadAll(**v, todo[i]);
        continue;
      }
      for (;;) {
        auto e = (*c)->next();
        if (!e.ok()) {
          ok = false;
          break;
        }
        if (!*e) break;
        todo.push_back((*e)->ino);
      }
    }
  }
  return ok;
}

TEST(BranchCorruption, RandomDamageToControlBlockAndLogsNeverCrashes) {
  TempDir src;
  WriteFile(src / "f", "base file");
  BranchRegion region(src.path(), 4 << 20);
  auto& store = *region.store();
  ASSERT_TRUE(store.Create("a").ok());
  {
    auto a = *store.OpenBranch("a", true);
    for (int i = 0; i < 20; ++i) {
      auto f = a->create(a->root(), "f" + std::to_string(i), 0644);
      ASSERT_TRUE(f.ok());
      ASSERT_DAXFS_OK(a->write(*f, static_cast<uint64_t>(i) * 100, B("data")));
      ASSERT_DAXFS_OK(a->setxattr(*f, "user.x", B("v")));
    }
    ASSERT_TRUE(a->mkdir(a->root(), "d", 0755).ok());
    ASSERT_DAXFS_OK(a->rename(a->root(), "f1", *a->resolve("/d"), "moved"));
  }
  ASSERT_TRUE(store.Create("b", "a").ok());
  ASSERT_TRUE(store.Create("c").ok());
  {
    auto b = *store.OpenBranch("b", true);
    ASSERT_TRUE(b->symlink(b->root(), "s", "f2").ok());
  }
  ASSERT_DAXFS_OK(store.Commit("b"));
  const auto pristine = std::vector<std::byte>(region->region().bytes().begin(),
                                               region->region().bytes().end());
  const auto sb = format::Load<format::Superblock>(pristine.data());
  uint64_t coff;
  std::memcpy(&coff, sb.ext.reserved + format::kExtBranchControlOffset, 8);
  const auto hdr = format::Load<format::branch::ControlHeader>(pristine.data() + coff);
  const uint64_t used_end = hdr.delta_offset + hdr.delta_cursor;
  auto mem = region->region().writable_bytes();
  std::mt19937 rng(4242);
  int detected = 0, damaged = 0;
  for (int iter = 0; iter < 300; ++iter) {
    std::memcpy(mem.data(), pristine.data(), pristine.size());
    const bool unused = iter % 5 == 0;
    const bool geometry = iter % 5 == 1;
    const int flips = 1 + static_cast<int>(rng() % 8);
    for (int k = 0; k < flips; ++k) {
      uint64_t off;
      if (unused) {
        off = used_end + rng() % (mem.size() - used_end);
      } else if (geometry) {  // the checksummed geometry of the control block
        off = coff + rng() % offsetof(format::branch::ControlHeader, geometry_csum);
      } else if (rng() % 2) {  // control block header and slots
        off = coff + rng() % (format::branch::kSlotsOffset + 4 * sizeof(format::branch::Slot));
      } else {  // logs and data in use
        off = hdr.delta_offset + format::branch::kDeltaReserved +
              rng() % (used_end - hdr.delta_offset - format::branch::kDeltaReserved);
      }
      mem[off] ^= static_cast<std::byte>(1 + rng() % 255);
    }
    auto s = BranchStore::Open(region.spec());
    if (unused) {
      ASSERT_TRUE(s.ok()) << s.status().ToString();
      EXPECT_EQ((*s)->Check(nullptr), 0u) << "damage to unused bytes was noticed";
      EXPECT_TRUE(WalkAll(**s));
      auto a = (*s)->OpenBranch("a");
      ASSERT_TRUE(a.ok());
      EXPECT_EQ(ReadPath(**a, "/f3"), std::string(300, '\0') + "data");
      continue;
    }
    if (geometry) {
      EXPECT_FALSE(s.ok()) << "damaged control block geometry was not noticed";
      continue;
    }
    ++damaged;
    if (!s.ok()) {
      ++detected;
      continue;
    }
    const bool walked = WalkAll(**s);
    const uint64_t problems = (*s)->Check(nullptr);
    if (!walked || problems) ++detected;
  }
  std::memcpy(mem.data(), pristine.data(), pristine.size());
  // Not every flip is detectable (file bytes carry no checksum, most of the
  // control block is reserved), and none may crash; some must be noticed.
  EXPECT_GT(detected, 0) << detected << " of " << damaged;
}

}  // namespace
}  // namespace daxfs::testing
