// Leases without pids: a writer stopped past the lease timeout is taken
// over and fenced (its next publish fails, nothing it acknowledged is
// lost); a user whose pid means nothing here (another pid namespace, as
// another kernel's would) is judged by its heartbeat alone; an older
// region is refused until upgraded, and the upgrade keeps every branch.
#include <sched.h>
#include <signal.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <cstring>
#include <fstream>
#include <sstream>
#include <thread>

#include "branch_test_util.h"
#include "daxfs/branch_format.h"
#include "../fuzz/walk_branches.h"

namespace daxfs::testing {
namespace {

constexpr uint32_t kTimeoutMs = 400;

struct Shared {
  std::atomic<int> written;   // records the child had acknowledged
  std::atomic<int> resumed;   // set by the test after SIGCONT
  std::atomic<int> after_ok;  // writes that succeeded after the resume
  std::atomic<int> after_errno;
  std::atomic<int> done;
  std::atomic<int> inner_pid;
};

Shared* MapShared() {
  void* p = mmap(nullptr, sizeof(Shared), PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
  return p == MAP_FAILED ? nullptr : new (p) Shared{};
}

TEST(BranchLease, StoppedWriterIsTakenOverAndFenced) {
  TempDir src;
  WriteFile(src / "a", "a");
  BranchRegion region(src.path(), 16ull << 20, "/dev/shm", kTimeoutMs);
  ASSERT_TRUE(region->Create("w").ok());
  Shared* sh = MapShared();
  ASSERT_NE(sh, nullptr);
  pid_t child = fork();
  if (child == 0) {
    auto s = BranchStore::Open(region.spec());
    if (!s.ok()) _exit(2);
    auto w = (*s)->OpenBranch("w", true);
    if (!w.ok()) _exit(3);
    for (int i = 0; sh->resumed.load() == 0; ++i) {
      auto f = (*w)->create((*w)->root(), "c" + std::to_string(i), 0644);
      if (!f.ok()) {
        // The call the stop interrupted, failing once resumed: fenced.
        if (sh->resumed.load() == 0) _exit(4);
        sh->after_errno = f.status().errno_value();
        break;
      }
      sh->written = i + 1;
    }
    // Resumed after being taken over: nothing may be published any more.
    for (int i = 0; i < 20; ++i) {
      auto f = (*w)->create((*w)->root(), "late" + std::to_string(i), 0644);
      if (f.ok()) {
        ++sh->after_ok;
      } else {
        sh->after_errno = f.status().errno_value();
      }
    }
    sh->done = 1;
    _exit(0);
  }
  while (sh->written.load() < 50) std::this_thread::yield();
  ASSERT_EQ(kill(child, SIGSTOP), 0);
  int st = 0;
  ASSERT_EQ(waitpid(child, &st, WUNTRACED), child);
  const int acked = sh->written.load();
  // Its pid exists but it is stopped, so its heartbeat is watched: the next
  // writer waits until it stood still for the timeout, then takes over.
  const auto t0 = std::chrono::steady_clock::now();
  auto b = region->OpenBranch("w", true);
  const auto waited = std::chrono::steady_clock::now() - t0;
  ASSERT_TRUE(b.ok()) << b.status().ToString();
  std::shared_ptr<Branch> w = *b;
  EXPECT_GE(waited, std::chrono::milliseconds(kTimeoutMs * 3 / 4));
  EXPECT_LT(waited, std::chrono::milliseconds(kTimeoutMs * 3));
  // Everything it acknowledged is there; the new writer writes.
  for (int i = 0; i < acked; ++i) ASSERT_TRUE(w->resolve("/c" + std::to_string(i)).ok()) << i;
  ASSERT_TRUE(w->create(w->root(), "new-writer", 0644).ok());
  sh->resumed = 1;
  ASSERT_EQ(kill(child, SIGCONT), 0);
  ASSERT_EQ(waitpid(child, &st, 0), child);
  ASSERT_TRUE(WIFEXITED(st)) << st;
  EXPECT_EQ(WEXITSTATUS(st), 0);
  // At most the one record in flight at the stop was published; none after.
  EXPECT_EQ(sh->after_ok.load(), 0);
  EXPECT_EQ(sh->after_errno.load(), ESTALE);
  ASSERT_TRUE(w->create(w->root(), "after", 0644).ok());
  for (int i = 0; i < 20; ++i) EXPECT_FALSE(w->resolve("/late" + std::to_string(i)).ok());
  w.reset();
  std::string problems;
  EXPECT_EQ(region->Check([&](const std::string& m) { problems += m + "\n"; }), 0u) << problems;
  ASSERT_TRUE(region->Commit("w").ok());
  auto main = region->OpenBranch("main");
  ASSERT_TRUE(main.ok());
  EXPECT_TRUE((*main)->resolve("/new-writer").ok());
  EXPECT_TRUE((*main)->resolve("/c0").ok());
}

TEST(BranchLease, UserOfAnotherPidNamespaceIsJudgedByItsHeartbeat) {
  if (geteuid() != 0) GTEST_SKIP() << "needs root (a new pid namespace)";
  TempDir src;
  WriteFile(src / "a", "a");
  BranchRegion region(src.path(), 16ull << 20, "/dev/shm", kTimeoutMs);
  ASSERT_TRUE(region->Create("w").ok());
  Shared* sh = MapShared();
  ASSERT_NE(sh, nullptr);
  // The writer runs as pid 1 of a new pid namespace: its pid names nobody
  // here, as a process of another kernel would not.
  pid_t outer = fork();
  if (outer == 0) {
    if (unshare(CLONE_NEWPID) != 0) _exit(70);
    pid_t inner = fork();
    if (inner > 0) sh->inner_pid = inner;
    if (inner == 0) {
      auto s = BranchStore::Open(region.spec());
      if (!s.ok()) _exit(2);
      auto w = (*s)->OpenBranch("w", true);
      if (!w.ok()) _exit(3);
      if (!(*w)->create((*w)->root(), "from-ns", 0644).ok()) _exit(4);
      sh->written = 1;
      pause();
      _exit(0);
    }
    int st = 0;
    waitpid(inner, &st, 0);
    _exit(WIFEXITED(st) ? WEXITSTATUS(st) : 0);
  }
  while (sh->written.load() == 0) {
    int st = 0;
    if (waitpid(outer, &st, WNOHANG) == outer) {
      if (WIFEXITED(st) && WEXITSTATUS(st) == 70) GTEST_SKIP() << "no pid namespaces here";
      FAIL() << "writer exited early: " << st;
    }
    std::this_thread::yield();
  }
  // Its heartbeat runs: busy, for longer than the timeout.
  for (int i = 0; i < 3; ++i) {
    EXPECT_EQ(region->OpenBranch("w", true).status().errno_value(), EBUSY);
    std::this_thread::sleep_for(std::chrono::milliseconds(kTimeoutMs / 2));
  }
  auto busy = region->OpenBranch("w", true);
  EXPECT_EQ(busy.status().errno_value(), EBUSY);
  EXPECT_NE(busy.status().message().find("another kernel or pid namespace"), std::string::npos)
      << busy.status().message();
  // It dies: no pid tells us (its entry names pid 1 of its namespace),
  // the heartbeat stops; taken over after the timeout.
  ASSERT_GT(sh->inner_pid.load(), 0);
  kill(sh->inner_pid.load(), SIGKILL);
  int st = 0;
  waitpid(outer, &st, 0);
  const auto t0 = std::chrono::steady_clock::now();
  std::shared_ptr<Branch> w;
  while (!w) {
    auto b = region->OpenBranch("w", true);
    if (b.ok()) w = *b;
    else std::this_thread::sleep_for(std::chrono::milliseconds(10));
    ASSERT_LT(std::chrono::steady_clock::now() - t0, std::chrono::seconds(10));
  }
  EXPECT_TRUE(w->resolve("/from-ns").ok());
}

TEST(BranchLease, OlderRegionIsRefusedUntilUpgraded) {
  // A version 3 region (made by daxfs before the atomics-only protocol).
  const std::string fixture = std::string(DAXFS_SOURCE_DIR) + "/tests/compat/region-v3.bin";
  TempDir tmp;
  const std::string path = tmp / "region";
  auto bytes = ReadBytes(fixture);
  ASSERT_FALSE(bytes.empty()) << fixture;
  bytes.resize((bytes.size() + kBranchFuzzUnit - 1) / kBranchFuzzUnit * kBranchFuzzUnit, std::byte{0});
  WriteFile(path, std::string(reinterpret_cast<const char*>(bytes.data()), bytes.size()));
  // Its first user entry names a live pid (ours) with another process's
  // start time: a pid reused since (CI once met the fixture's pid alive),
  // which must not block the upgrade; with our own start time it does.
  {
    const auto sb = format::Load<format::Superblock>(bytes.data());
    uint64_t coff;
    std::memcpy(&coff, sb.ext.reserved + format::kExtBranchControlOffset, 8);
    ASSERT_LT(coff + format::branch::kAttachOffset + 16, bytes.size());
    uint64_t entry[2] = {static_cast<uint64_t>(getpid()), 1};  // pid, start (ticks): not ours
    auto write_entry = [&] {
      std::memcpy(bytes.data() + coff + format::branch::kAttachOffset, entry, sizeof entry);
      WriteFile(path, std::string(reinterpret_cast<const char*>(bytes.data()), bytes.size()));
    };
    std::ifstream stat_file("/proc/self/stat");
    std::string stat_line;
    std::getline(stat_file, stat_line);
    std::istringstream fields(stat_line.substr(stat_line.rfind(')') + 2));
    std::string field;
    for (int i = 3; i <= 22; ++i) fields >> field;
    entry[1] = std::strtoull(field.c_str(), nullptr, 10);  // ours: in use
    write_entry();
    EXPECT_EQ(BranchStore::Upgrade(path).code(), Status::Code::kBusy);
    entry[1] = entry[1] + 12345;  // another process that had our pid: gone
    write_entry();
  }
  auto refused = BranchStore::Open(path);
  ASSERT_FALSE(refused.ok());
  EXPECT_NE(refused.status().message().find("daxfs branch upgrade"), std::string::npos) << refused.status().ToString();
  ASSERT_DAXFS_OK(BranchStore::Upgrade(path));
  ASSERT_DAXFS_OK(BranchStore::Upgrade(path));  // twice: nothing to do
  auto s = BranchStore::Open(path);
  ASSERT_TRUE(s.ok()) << s.status().ToString();
  std::string problems;
  EXPECT_EQ((*s)->Check([&](const std::string& m) { problems += m + "\n"; }), 0u) << problems;
  auto list = (*s)->List();
  ASSERT_TRUE(list.ok());
  EXPECT_GE(list->size(), 2u);
  // It works as a region of today: a branch made, written and committed.
  ASSERT_TRUE((*s)->Create("after-upgrade").ok());
  {
    auto b = (*s)->OpenBranch("after-upgrade", true);
    ASSERT_TRUE(b.ok()) << b.status().ToString();
    ASSERT_TRUE((*b)->create((*b)->root(), "upgraded", 0644).ok());
  }
  ASSERT_DAXFS_OK((*s)->Commit("after-upgrade"));
  auto main = (*s)->OpenBranch("main");
  ASSERT_TRUE(main.ok());
  EXPECT_TRUE((*main)->resolve("/upgraded").ok());
}

}  // namespace
}  // namespace daxfs::testing
