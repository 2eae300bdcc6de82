// Replays the branch fuzz target's seeds and findings (fuzz/corpus_branch,
// fuzz/regressions_branch) through the same harness, and makes the seeds:
//   build/tests/daxfs_branch_tests --gtest_also_run_disabled_tests
//     --gtest_filter='BranchFuzz.DISABLED_WriteSeeds'
#include <fcntl.h>

#include <cstring>

#include "../fuzz/walk_branches.h"
#include "branch_test_util.h"

namespace daxfs::testing {
namespace {

namespace bf = format::branch;

TEST(BranchFuzz, ReplaySeedsAndFindings) {
  int replayed = 0, seeds = 0;
  for (const char* sub : {"/fuzz/corpus_branch", "/fuzz/regressions_branch"}) {
    for (const auto& [name, bytes] : ReadCorpus(std::string(DAXFS_SOURCE_DIR) + sub)) {
      const uint64_t problems =
          WalkBranchRegion(reinterpret_cast<const uint8_t*>(bytes.data()), bytes.size());
      // The seeds are intact regions: they must open and check clean (else
      // the fuzzer would start from inputs refused at the first check).
      if (std::strcmp(sub, "/fuzz/corpus_branch") == 0) {
        EXPECT_EQ(problems, 0u) << name;
        ++seeds;
      }
      ++replayed;
    }
  }
  EXPECT_GE(seeds, 2);
  EXPECT_GE(replayed, seeds);
}

// A seed of the harness's own format must open at all: the store is opened
// and a branch is found (guards against a harness that refuses everything).
TEST(BranchFuzz, SeedsOpenAsBranchRegions) {
  int opened = 0;
  for (const auto& [name, bytes] : ReadCorpus(std::string(DAXFS_SOURCE_DIR) + "/fuzz/corpus_branch")) {
    const size_t padded = (bytes.size() + kBranchFuzzUnit - 1) / kBranchFuzzUnit * kBranchFuzzUnit;
    std::vector<std::byte> mem(padded + format::kBlockSize);
    auto* p = reinterpret_cast<std::byte*>(
        (reinterpret_cast<uintptr_t>(mem.data()) + format::kBlockSize - 1) & ~uintptr_t{format::kBlockSize - 1});
    std::memcpy(p, bytes.data(), bytes.size());
    auto s = BranchStore::Open(std::make_shared<FuzzMemoryRegion>(p, padded));
    ASSERT_TRUE(s.ok()) << name << ": " << s.status().ToString();
    auto list = (*s)->List();
    ASSERT_TRUE(list.ok());
    int active = 0;
    for (const auto& b : *list) active += b.state == "active";
    EXPECT_GE(active, 1) << name;
    ++opened;
  }
  EXPECT_GE(opened, 2);
}

// Makes a region of `src` whose size is a multiple of kBranchFuzzUnit.
std::shared_ptr<BranchStore> SizedRegion(const std::string& image, const std::string& spec) {
  auto probe = BranchStore::Init(image, spec + ".probe", 1u << 20);
  EXPECT_TRUE(probe.ok()) << probe.status().ToString();
  if (!probe.ok()) return nullptr;
  const auto bytes = (*probe)->region().bytes();
  const auto sb = format::Load<format::Superblock>(bytes.data());
  uint64_t coff;
  std::memcpy(&coff, sb.ext.reserved + format::kExtBranchControlOffset, 8);
  const uint64_t delta_off = format::Load<bf::ControlHeader>(bytes.data() + coff).delta_offset;
  probe->reset();
  unlink((spec + ".probe").c_str());
  const uint64_t total = (delta_off + (1u << 20) + kBranchFuzzUnit - 1) / kBranchFuzzUnit * kBranchFuzzUnit;
  auto s = BranchStore::Init(image, spec, total - delta_off);
  EXPECT_TRUE(s.ok()) << s.status().ToString();
  if (s.ok()) {
    EXPECT_EQ((*s)->region().bytes().size() % kBranchFuzzUnit, 0u);
  }
  return s.ok() ? *s : nullptr;
}

void Save(const BranchStore& s, const std::string& name) {
  auto bytes = s.region().bytes();
  size_t n = bytes.size();
  while (n > 0 && bytes[n - 1] == std::byte{0}) --n;
  const std::string path = std::string(DAXFS_SOURCE_DIR) + "/fuzz/corpus_branch/" + name;
  WriteFile(path, std::string(reinterpret_cast<const char*>(bytes.data()), n));
}

TEST(BranchFuzz, DISABLED_WriteSeeds) {
  TempDir src, tmp;
  WriteFile(src / "f", "base file");
  mkdir((src / "d").c_str(), 0755);
  WriteFile(src / "d/g", std::string(9000, 'g'));
  ASSERT_EQ(symlink("f", (src / "s").c_str()), 0);
  ASSERT_TRUE(BuildFromDirectory(src.path(), tmp / "base.img", {}).ok());
  const std::string spec = "/dev/shm/daxfs-fuzz-seed-" + std::to_string(getpid());

  {  // committed, aborted and active branches, nested, with every kind of record
    auto s = SizedRegion(tmp / "base.img", spec);
    ASSERT_TRUE(s);
    ASSERT_TRUE(s->Create("a").ok());
    {
      auto a = *s->OpenBranch("a", true);
      for (int i = 0; i < 5; ++i) {
        auto f = a->create(a->root(), "f" + std::to_string(i), 0644);
        ASSERT_TRUE(f.ok());
        ASSERT_DAXFS_OK(a->write(*f, static_cast<uint64_t>(i) * 5000, B("data")));
      }
      ASSERT_DAXFS_OK(a->setxattr(*a->resolve("/f1"), "user.x", B("v"), 0));
      ASSERT_DAXFS_OK(a->write(*a->resolve("/d/g"), 4000, B("CoW")));
      ASSERT_TRUE(a->mkdir(a->root(), "e", 0755).ok());
      ASSERT_DAXFS_OK(a->rename(a->root(), "f2", *a->resolve("/e"), "moved"));
      ASSERT_DAXFS_OK(a->link(*a->resolve("/f3"), a->root(), "hard"));
      ASSERT_DAXFS_OK(a->unlink(a->root(), "s"));
    }
    ASSERT_TRUE(s->Create("b", "a").ok());
    {
      auto b = *s->OpenBranch("b", true);
      ASSERT_TRUE(b->symlink(b->root(), "s2", "f0").ok());
      ASSERT_DAXFS_OK(b->truncate(*b->resolve("/f4"), 3));
    }
    ASSERT_DAXFS_OK(s->Commit("b"));
    ASSERT_TRUE(s->Create("c", "a").ok());
    ASSERT_TRUE(s->Create("gone").ok());
    {
      auto g = *s->OpenBranch("gone", true);
      ASSERT_TRUE(g->create(g->root(), "x", 0600).ok());
    }
    ASSERT_DAXFS_OK(s->Abort("gone"));
    Save(*s, "nested-committed-aborted.bin");
    s.reset();
    unlink(spec.c_str());
  }
  {  // main moved by a commit; a sibling with its own snapshot and changes
    auto s = SizedRegion(tmp / "base.img", spec);
    ASSERT_TRUE(s);
    ASSERT_TRUE(s->Create("one").ok());
    ASSERT_TRUE(s->Create("two").ok());
    {
      auto one = *s->OpenBranch("one", true);
      ASSERT_DAXFS_OK(one->write(*one->resolve("/f"), 0, B("changed by one")));
      ASSERT_TRUE(one->mkdir(one->root(), "new", 0700).ok());
      auto two = *s->OpenBranch("two", true);
      ASSERT_DAXFS_OK(two->write(*two->resolve("/d/g"), 8999, B("tail")));
      ASSERT_DAXFS_OK(two->unlink(two->root(), "f"));  // conflicts with one's commit
    }
    ASSERT_DAXFS_OK(s->Commit("one"));
    Save(*s, "sibling-after-commit.bin");
    s.reset();
    unlink(spec.c_str());
  }
}

}  // namespace
}  // namespace daxfs::testing
