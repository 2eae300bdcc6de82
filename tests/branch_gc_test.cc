// gc: the delta space of aborted branches (and of writers that died before
// publishing) is found by marking what live logs refer to, handed back to
// the memory behind the region, and reused; committed history is kept.
#include <sys/mount.h>
#include <sys/stat.h>

#include <cerrno>
#include <cstring>

#include "branch_test_util.h"
#include "daxfs/branch_format.h"
#include "daxfs/format.h"

namespace daxfs::testing {
namespace {

namespace bf = daxfs::format::branch;

std::string Pattern(size_t n, char seed) {
  std::string s(n, '\0');
  for (size_t i = 0; i < n; ++i) s[i] = static_cast<char>(seed + i % 23);
  return s;
}

uint64_t AllocatedBytes(const std::string& path) {
  struct stat st {};
  EXPECT_EQ(stat(path.c_str(), &st), 0) << path;
  return static_cast<uint64_t>(st.st_blocks) * 512;
}

// A branch region over a base holding one file, with `delta` bytes of delta area.
struct BaseRegion {
  explicit BaseRegion(uint64_t delta) : region(WriteBase(src), delta) {}
  static std::string WriteBase(const TempDir& d) {
    WriteFile(d / "base", "base");
    return d.path();
  }
  BranchStore& store() { return *region.store(); }
  TempDir src;
  BranchRegion region;
};

// Writes `bytes` of new data into a fresh branch `name`, in the file /`name`.
void FillBranch(BranchStore& s, const std::string& name, size_t bytes, char seed) {
  SCOPED_TRACE("branch " + name);
  ASSERT_TRUE(s.Create(name).ok());
  auto b = s.OpenBranch(name, true);
  ASSERT_TRUE(b.ok()) << b.status().ToString();
  auto f = (*b)->create((*b)->root(), name, 0644);
  ASSERT_TRUE(f.ok()) << f.status().ToString();
  ASSERT_DAXFS_OK((*b)->write(*f, 0, B(Pattern(bytes, seed))));
}

// A delta area of 8 MiB takes 4 MiB branches only if gc gives the space of
// each aborted one back: without reclaim the third one fails with ENOSPC.
TEST(BranchGc, AbortedSpaceIsReclaimedReusedAndReturnedToMemory) {
  BaseRegion base(8 << 20);
  auto& store = base.store();
  // Committed history must survive every gc.
  ASSERT_TRUE(store.Create("keep").ok());
  {
    auto k = *store.OpenBranch("keep", true);
    auto f = k->create(k->root(), "kept", 0644);
    ASSERT_TRUE(f.ok());
    ASSERT_DAXFS_OK(k->write(*f, 0, B(Pattern(100000, 'k'))));
  }
  ASSERT_DAXFS_OK(store.Commit("keep"));
  const uint64_t used_before = store.Usage().delta_used;
  for (int round = 0; round < 6; ++round) {
    const std::string name = "try" + std::to_string(round);
    FillBranch(store, name, 4 << 20, static_cast<char>('a' + round));
    const uint64_t mem_full = AllocatedBytes(base.region.spec());
    {
      auto v = *store.OpenBranch(name);
      EXPECT_TRUE(ReadPath(*v, "/" + name) == Pattern(4 << 20, static_cast<char>('a' + round)));
      // With a view open gc works online, and never frees what a view of
      // an ended branch may still point into.
      ASSERT_DAXFS_OK(store.Abort(name));
      auto online = store.Gc();
      ASSERT_TRUE(online.ok()) << online.status().ToString();
      EXPECT_NE(online->note.find("view"), std::string::npos) << online->note;
      auto info = store.Info(name);
      ASSERT_TRUE(info.ok()) << "the viewed aborted branch was freed";
      EXPECT_EQ(info->state, "aborted");
    }
    auto g = store.Gc();
    ASSERT_TRUE(g.ok()) << g.status().ToString();
    EXPECT_EQ(g->slots_freed, 1u);
    EXPECT_GE(g->bytes_reclaimed, 4u << 20) << "round " << round;
    EXPECT_LE(store.Usage().delta_used, used_before + (64 << 10)) << "round " << round;
    // tmpfs pages behind the freed blocks are released.
    EXPECT_LE(AllocatedBytes(base.region.spec()) + (4 << 20), mem_full + (64 << 10)) << "round " << round;
    std::string problems;
    EXPECT_EQ(store.Check([&](const std::string& m) { problems += m + "\n"; }), 0u) << problems;
    auto main = *store.OpenBranch("main");
    EXPECT_TRUE(ReadPath(*main, "/kept") == Pattern(100000, 'k'));
    EXPECT_EQ(ReadPath(*main, "/base"), "base");
  }
}

// Online reclamation: with another process attached (here a second store,
// its own attach entry) branches are made, written, committed or aborted
// far past the 255 slots, the delta area stays bounded because aborted
// branches' pages are reused, a branch another attached store still views
// is kept until that view closes, and committed history stays readable
// through self-contained merge records after its slots are reused.
TEST(BranchGc, OnlineReclamationWithOthersAttached) {
  BaseRegion base(32 << 20);
  auto& store = base.store();
  auto other = BranchStore::Open(base.region.spec());
  ASSERT_TRUE(other.ok()) << other.status().ToString();
  // The other process has a view of a branch that gets aborted.
  ASSERT_TRUE(store.Create("held").ok());
  auto held = (*other)->OpenBranch("held");
  ASSERT_TRUE(held.ok());
  ASSERT_DAXFS_OK(store.Abort("held"));
  uint64_t cursor_after_warmup = 0;
  int committed = 0;
  for (int i = 0; i < 1200; ++i) {
    const std::string name = "b" + std::to_string(i);
    auto made = store.Create(name);
    ASSERT_TRUE(made.ok()) << i << ": " << made.status().ToString();
    {
      auto b = *store.OpenBranch(name, true);
      auto f = b->create(b->root(), i % 10 == 0 ? name : "scratch", 0644);
      ASSERT_TRUE(f.ok()) << f.status().ToString();
      ASSERT_DAXFS_OK(b->write(*f, 0, B(Pattern(20000, static_cast<char>('a' + i % 20)))));
    }
    if (i % 10 == 0) {
      ASSERT_DAXFS_OK(store.Commit(name));
      ++committed;
    } else {
      ASSERT_DAXFS_OK(store.Abort(name));
    }
    if (i == 300) cursor_after_warmup = store.Usage().delta_used + store.Usage().delta_free;
  }
  // Bounded: 900 more branches after the warm-up grew the handed-out area
  // only by the committed history (each commit keeps its 24 KiB log+data).
  const uint64_t cursor_end = store.Usage().delta_used + store.Usage().delta_free;
  EXPECT_LE(cursor_end, cursor_after_warmup + 90 * (32 << 10)) << "aborted branches' pages were not reused";
  // The held branch is still there; once its view closes it goes.
  auto info = store.Info("held");
  ASSERT_TRUE(info.ok()) << "a branch another process views was reclaimed";
  held->reset();
  auto g = store.ReclaimEnded();
  ASSERT_TRUE(g.ok()) << g.status().ToString();
  EXPECT_FALSE(store.Info("held").ok());
  // History, read by this store, by the other one and by a fresh one.
  for (auto* s : {&store, other->get()}) {
    auto main = *s->OpenBranch("main");
    for (int i = 0; i < 1200; i += 10)
      EXPECT_TRUE(ReadPath(*main, "/b" + std::to_string(i)) == Pattern(20000, static_cast<char>('a' + i % 20))) << i;
  }
  auto fresh = BranchStore::Open(base.region.spec());
  ASSERT_TRUE(fresh.ok());
  auto main = *(*fresh)->OpenBranch("main");
  EXPECT_TRUE(ReadPath(*main, "/b1190") == Pattern(20000, static_cast<char>('a' + 1190 % 20)));
  EXPECT_EQ(committed, 120);
  std::string problems;
  EXPECT_EQ(store.Check([&](const std::string& m) { problems += m + "\n"; }), 0u) << problems;
}

// Nested commits (grandchild into child into main), over and over past the
// 255 slots with another store attached: the grandchildren's slots are
// reclaimed with their parents', nothing is left behind a freed slot, and
// check and gc keep working (no log reached through a freed slot).
TEST(BranchGc, NestedCommitsAreReclaimedOnline) {
  BaseRegion base(32 << 20);
  auto& store = base.store();
  auto other = BranchStore::Open(base.region.spec());
  ASSERT_TRUE(other.ok());
  for (int i = 0; i < 200; ++i) {
    const std::string c = "c" + std::to_string(i), g = "g" + std::to_string(i);
    ASSERT_TRUE(store.Create(c).ok()) << i;
    ASSERT_TRUE(store.Create(g, c).ok()) << i;
    {
      auto w = *store.OpenBranch(g, true);
      ASSERT_TRUE(w->create(w->root(), g, 0644).ok());
    }
    ASSERT_DAXFS_OK(store.Commit(g));
    if (i % 2) {
      ASSERT_DAXFS_OK(store.Commit(c));
    } else {
      ASSERT_DAXFS_OK(store.Abort(c));  // the committed grandchild dies with it
    }
  }
  EXPECT_LT(store.Usage().slots_used, 200u) << "ended nested branches were not reclaimed";
  std::string problems;
  EXPECT_EQ(store.Check([&](const std::string& m) { problems += m + "\n"; }), 0u) << problems;
  auto g = store.ReclaimEnded();
  ASSERT_TRUE(g.ok()) << g.status().ToString();
  auto main = *(*other)->OpenBranch("main");
  for (int i = 0; i < 200; ++i)
    EXPECT_EQ(main->resolve("/g" + std::to_string(i)).ok(), i % 2 == 1) << i;
}

// A directory removed while open takes no new entries (Linux: ENOENT).
TEST(BranchGc, RemovedOpenDirectoryTakesNoEntries) {
  BaseRegion base(8 << 20);
  auto& store = base.store();
  ASSERT_TRUE(store.Create("d").ok());
  auto w = *store.OpenBranch("d", true);
  Ino dir = *w->mkdir(w->root(), "dir", 0755);
  Ino f = *w->create(w->root(), "f", 0644);
  ASSERT_DAXFS_OK(w->rmdir(w->root(), "dir", /*keep_open=*/true));
  EXPECT_EQ(w->create(dir, "x", 0644).status().errno_value(), ENOENT);
  EXPECT_EQ(w->mkdir(dir, "y", 0755).status().errno_value(), ENOENT);
  EXPECT_EQ(w->link(f, dir, "z").errno_value(), ENOENT);
  EXPECT_EQ(w->rename(w->root(), "f", dir, "f").errno_value(), ENOENT);
  ASSERT_DAXFS_OK(w->forget(dir));
  EXPECT_EQ(store.Check(nullptr), 0u);
}

// Holes in the middle (an aborted branch between two live ones) go to the
// free table and are handed out again, while the live branches' data stays.
TEST(BranchGc, FreeExtentsBetweenLiveBranchesAreReused) {
  BaseRegion base(16 << 20);
  auto& store = base.store();
  FillBranch(store, "left", 1 << 20, 'l');
  FillBranch(store, "hole", 3 << 20, 'h');
  FillBranch(store, "right", 1 << 20, 'r');
  ASSERT_DAXFS_OK(store.Abort("hole"));
  auto g = store.Gc();
  ASSERT_TRUE(g.ok()) << g.status().ToString();
  EXPECT_GE(g->bytes_free, 3u << 20);
  EXPECT_EQ(store.Usage().delta_free, g->bytes_free);
  // The next writer takes the hole first; nobody else's bytes change.
  FillBranch(store, "refill", 2 << 20, 'f');
  EXPECT_LE(store.Usage().delta_free + (2 << 20), g->bytes_free + (64 << 10));
  for (auto [name, n, seed] : {std::tuple{"left", 1 << 20, 'l'}, std::tuple{"right", 1 << 20, 'r'},
                               std::tuple{"refill", 2 << 20, 'f'}}) {
    auto v = *store.OpenBranch(name);
    EXPECT_TRUE(ReadPath(*v, std::string("/") + name) == Pattern(static_cast<size_t>(n), seed)) << name;
  }
  std::string problems;
  EXPECT_EQ(store.Check([&](const std::string& m) { problems += m + "\n"; }), 0u) << problems;
  // Another process sees the same free table and allocates from it too.
  ASSERT_DAXFS_OK(store.Commit("left"));
  auto other = BranchStore::Open(base.region.spec());
  ASSERT_TRUE(other.ok());
  FillBranch(**other, "other", 512 << 10, 'o');
  auto v = *(*other)->OpenBranch("other");
  EXPECT_TRUE(ReadPath(*v, "/other") == Pattern(512 << 10, 'o'));
  EXPECT_EQ((*other)->Check(nullptr), 0u);
}

// A free extent that overlaps a live block (another process's bug or a
// damaged region) is reported by check and never crashes an allocator.
TEST(BranchGc, CheckReportsADamagedFreeTable) {
  BaseRegion base(8 << 20);
  auto& store = base.store();
  FillBranch(store, "live", 1 << 20, 'x');
  FillBranch(store, "gone", 1 << 20, 'y');
  ASSERT_DAXFS_OK(store.Abort("gone"));
  ASSERT_TRUE(store.Gc().ok());
  ASSERT_EQ(store.Check(nullptr), 0u);
  // Find the control header and point a free extent at live pages.
  auto* mem = const_cast<std::byte*>(store.region().bytes().data());
  const auto sb = format::Load<format::Superblock>(mem);
  uint64_t control = 0;
  std::memcpy(&control, sb.ext.reserved + format::kExtBranchControlOffset, 8);
  auto* hdr = reinterpret_cast<bf::ControlHeader*>(mem + control);
  ASSERT_EQ(hdr->magic, bf::kControlMagic);
  const uint64_t saved = hdr->free_extents[1];
  hdr->free_extents[1] = bf::FreeExtent(bf::kDeltaReserved / bf::kPage, 8);  // main's log
  std::string problems;
  EXPECT_GT(store.Check([&](const std::string& m) { problems += m + "\n"; }), 0u);
  EXPECT_NE(problems.find("in use by a live branch"), std::string::npos) << problems;
  // Out of range: ignored by the allocator, reported by check.
  hdr->free_extents[1] = bf::FreeExtent(uint64_t{1} << 38, 1000);
  hdr->free_pages = 1u << 20;
  problems.clear();
  EXPECT_GT(store.Check([&](const std::string& m) { problems += m + "\n"; }), 0u);
  EXPECT_NE(problems.find("free extent 1"), std::string::npos) << problems;
  FillBranch(store, "after", 8192, 'z');
  auto v = *store.OpenBranch("live");
  EXPECT_TRUE(ReadPath(*v, "/live") == Pattern(1 << 20, 'x'));
  hdr->free_extents[1] = saved;
}

}  // namespace
}  // namespace daxfs::testing

namespace daxfs::testing {
namespace {

// The delta area is sparse: a region costs memory for what branches write,
// and a tmpfs too small for the stated --delta gives ENOSPC on the write
// that does not fit (never a SIGBUS), with everything before it intact.
TEST(BranchSpace, DeltaIsAllocatedAsWrittenAndAFullTmpfsIsENOSPC) {
  TempDir src, mnt;
  WriteFile(src / "base", "base");
  if (mount("daxfs-test", mnt.path().c_str(), "tmpfs", 0, "size=8m") != 0)
    GTEST_SKIP() << "cannot mount a tmpfs here (needs root): " << std::strerror(errno);
  struct Unmount {
    std::string p;
    ~Unmount() { umount2(p.c_str(), MNT_DETACH); }
  } unmount{mnt.path()};
  auto region = std::make_unique<BranchRegion>(src.path(), 256ull << 20, mnt.path());
  ASSERT_TRUE(region->store());
  auto& store = *region->store();
  EXPECT_LT(AllocatedBytes(region->spec()), 1u << 20) << "the 256 MiB delta area was allocated up front";
  ASSERT_TRUE(store.Create("fill").ok());
  auto b = *store.OpenBranch("fill", true);
  Status last;
  int written = 0;
  for (; written < 64; ++written) {
    auto f = b->create(b->root(), "f" + std::to_string(written), 0644);
    if (!f.ok()) {
      last = f.status();
      break;
    }
    last = b->write(*f, 0, B(Pattern(512 << 10, static_cast<char>('a' + written % 20))));
    if (!last.ok()) break;
  }
  ASSERT_FALSE(last.ok()) << "8 MiB of tmpfs took 32 MiB of branch data";
  EXPECT_EQ(last.errno_value(), ENOSPC) << last.ToString();
  EXPECT_NE(last.message().find("full"), std::string::npos) << last.ToString();
  for (int i = 0; i < written; ++i)
    EXPECT_TRUE(ReadPath(*b, "/f" + std::to_string(i)) == Pattern(512 << 10, static_cast<char>('a' + i % 20)))
        << "f" << i;
  b.reset();
  EXPECT_EQ(store.Check(nullptr), 0u);
  // Aborting and gc give the memory back: the branch can be written again.
  ASSERT_DAXFS_OK(store.Abort("fill"));
  ASSERT_TRUE(store.Gc().ok());
  FillBranch(store, "again", 4 << 20, 'q');
  region.reset();
}

}  // namespace
}  // namespace daxfs::testing
