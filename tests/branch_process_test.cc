// Branches across processes: SIGKILL at random moments during writes,
// commits and gc (then: no hang, a consistent region, nothing published or
// committed lost, every commit all or nothing), and 8 processes on 8
// branches of one region committing and aborting while others read main.
//
// DAXFS_CRASH_TRIALS (default 40) sets the number of kills.
#include <fcntl.h>
#include <signal.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <atomic>
#include <functional>
#include <random>

#include "branch_test_util.h"
#include "daxfs/region_server.h"

namespace daxfs::testing {
namespace {

std::string FileData(const std::string& name) {
  std::string s;
  while (s.size() < 300) s += name + ";";
  return s;
}

// Shared between the killed writer and the test.
struct Acks {
  std::atomic<int> files;        // f0..f(files-1) were created and written
  std::atomic<int> commits;      // children c0..c(commits-1) were committed
  std::atomic<int> started;      // the writer is running
  std::atomic<int> gcs;          // gc runs that completed
};

constexpr int kFilesPerChild = 3;

// The writer: files in `branch`, and every 4th step a child branch with
// kFilesPerChild files committed into it; a gc now and then.
[[noreturn]] void Writer(const std::string& spec, const std::string& branch, Acks* acks) {
  auto store = BranchStore::Open(spec);
  if (!store.ok()) _exit(2);
  auto& s = **store;
  auto w = s.OpenBranch(branch, true);
  if (!w.ok()) _exit(3);
  acks->started = 1;
  int commits = 0;
  for (int i = 0;; ++i) {
    const std::string f = "f" + std::to_string(i);
    auto ino = (*w)->create((*w)->root(), f, 0644);
    if (!ino.ok()) _exit(4);
    if (!(*w)->write(*ino, 0, B(FileData(f))).ok()) _exit(5);
    if (!(*w)->fsync().ok()) _exit(6);
    acks->files = i + 1;
    if (i % 4 == 3) {
      const std::string c = branch + "-c" + std::to_string(commits);
      if (!s.Create(c, branch).ok()) _exit(7);
      {
        auto cw = s.OpenBranch(c, true);
        if (!cw.ok()) _exit(8);
        for (int k = 0; k < kFilesPerChild; ++k) {
          const std::string n = "c" + std::to_string(commits) + "-" + std::to_string(k);
          auto ci = (*cw)->create((*cw)->root(), n, 0644);
          if (!ci.ok() || !(*cw)->write(*ci, 0, B(FileData(n))).ok()) _exit(9);
        }
      }
      if (!s.Commit(c).ok()) _exit(10);
      acks->commits = ++commits;
    }
    if (i % 7 == 6) {
      // gc frees and hands back blocks only with no view open; it then
      // runs for real (the test is not attached while the writer runs).
      w->reset();
      if (s.Gc().ok()) ++acks->gcs;
      w = s.OpenBranch(branch, true);
      if (!w.ok()) _exit(11);
    }
  }
}

TEST(BranchCrash, KillDuringWritesCommitsAndGcLosesNothing) {
  const int trials = getenv("DAXFS_CRASH_TRIALS") ? atoi(getenv("DAXFS_CRASH_TRIALS")) : 40;
  TempDir src;
  WriteFile(src / "base", "base");
  auto region = std::make_unique<BranchRegion>(src.path(), 1ull << 30);
  const std::string spec = region->spec();
  auto* acks = static_cast<Acks*>(
      mmap(nullptr, sizeof(Acks), PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0));
  ASSERT_NE(acks, MAP_FAILED);
  std::mt19937 rng(777);
  long total_files = 0, total_commits = 0, total_gcs = 0;
  region->store().reset();  // the writer's gc may run when nobody else is attached
  for (int t = 0; t < trials; ++t) {
    const std::string branch = "w" + std::to_string(t);
    {
      auto s = BranchStore::Open(spec);
      ASSERT_TRUE(s.ok());
      ASSERT_TRUE((*s)->Create(branch).ok());
    }
    new (acks) Acks{};
    pid_t pid = fork();
    if (pid == 0) Writer(spec, branch, acks);
    while (acks->started == 0) {
      int st;
      if (waitpid(pid, &st, WNOHANG) == pid) FAIL() << "writer exited early with " << WEXITSTATUS(st);
      usleep(100);
    }
    const long delay_us = static_cast<long>(rng() % 30000);
    timespec ts{0, delay_us * 1000};
    nanosleep(&ts, nullptr);
    kill(pid, SIGKILL);
    int st = 0;
    waitpid(pid, &st, 0);
    ASSERT_TRUE(WIFSIGNALED(st)) << "trial " << t << ": writer exited with " << WEXITSTATUS(st);
    const int files = acks->files, commits = acks->commits;
    total_files += files;
    total_commits += commits;
    total_gcs += acks->gcs;

    // Reopen as a new process would: the next lock recovers a dead holder.
    auto s = BranchStore::Open(spec);
    ASSERT_TRUE(s.ok()) << s.status().ToString();
    auto& store = **s;
    ASSERT_TRUE(store.Create("probe").ok());  // takes the mutex: recovery runs here
    ASSERT_DAXFS_OK(store.Abort("probe"));
    std::string problems;
    EXPECT_EQ(store.Check([&](const std::string& m) { problems += m + "\n"; }), 0u)
        << "trial " << t << ":\n" << problems;
    auto view = store.OpenBranch(branch);
    ASSERT_TRUE(view.ok()) << view.status().ToString();
    // Every acknowledged file is there, complete; at most one more (in flight).
    int seen = 0;
    while ((*view)->resolve("/f" + std::to_string(seen)).ok()) ++seen;
    EXPECT_GE(seen, files) << "trial " << t << ": lost an acknowledged file";
    EXPECT_LE(seen, files + 1) << "trial " << t;
    for (int i = 0; i < files; ++i)
      EXPECT_EQ(ReadPath(**view, "/f" + std::to_string(i)), FileData("f" + std::to_string(i)));
    // Commits: all files of a child or none; acknowledged ones all.
    for (int c = 0; c <= commits; ++c) {
      int present = 0;
      for (int k = 0; k < kFilesPerChild; ++k) {
        const std::string n = "c" + std::to_string(c) + "-" + std::to_string(k);
        if ((*view)->resolve("/" + n).ok()) {
          ++present;
          EXPECT_EQ(ReadPath(**view, "/" + n), FileData(n));
        }
      }
      EXPECT_TRUE(present == 0 || present == kFilesPerChild)
          << "trial " << t << ": commit " << c << " is partly visible (" << present << " files)";
      if (c < commits) {
        EXPECT_EQ(present, kFilesPerChild) << "trial " << t << ": lost commit " << c;
      }
      auto info = store.Info(branch + "-c" + std::to_string(c));
      if (info.ok() && info->state == "committed") {
        EXPECT_EQ(present, kFilesPerChild);
      }
      if (info.ok() && info->state == "active") {
        EXPECT_EQ(present, 0);
      }
    }
    // The lease of the dead writer is taken over.
    auto w = store.OpenBranch(branch, true);
    ASSERT_TRUE(w.ok()) << w.status().ToString();
    ASSERT_TRUE((*w)->create((*w)->root(), "after-crash", 0644).ok());
    w->reset();
    view->reset();
    // Clean up: abort what is left so the table's slots come back.
    for (int c = 0; c <= commits + 1; ++c) (void)store.Abort(branch + "-c" + std::to_string(c));
    ASSERT_DAXFS_OK(store.Abort(branch));
    auto gc = store.Gc();
    ASSERT_TRUE(gc.ok()) << gc.status().ToString();
  }
  munmap(acks, sizeof(Acks));
  printf("%d kills; %ld acknowledged files and %ld acknowledged commits checked; %ld gc runs\n",
         trials, total_files, total_commits, total_gcs);
  EXPECT_GT(total_gcs, 0) << "gc never ran in the writer: the kills did not cover it";
}

// 8 writer processes on 8 branches each commit or abort 20 branches while 2
// reader processes check that main shows every commit whole. `spec_of(i)`
// names the region for process i (a writer w is i = w, a reader kWriters + r).
void EightWritersCommitAndAbortWhileOthersReadMain(BranchStore& store,
                                                   const std::function<std::string(int)>& spec_of) {
  constexpr int kWriters = 8, kRounds = 20, kGroup = 4, kReaders = 2;
  auto* stop = static_cast<std::atomic<int>*>(
      mmap(nullptr, 4096, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0));
  stop->store(0);
  std::vector<pid_t> writers, readers;
  for (int r = 0; r < kReaders; ++r) {
    pid_t pid = fork();
    if (pid == 0) {
      // Readers of main: a commit's files appear all at once, complete.
      auto s = BranchStore::Open(spec_of(kWriters + r));
      if (!s.ok()) _exit(2);
      auto main = (*s)->OpenBranch("main");
      if (!main.ok()) _exit(3);
      while (stop->load() == 0) {
        for (int w = 0; w < kWriters; ++w)
          for (int round = 0; round < kRounds; ++round) {
            // Each lookup sees main as it is then; files are only ever
            // added, so once one of a group is seen, the rest must be too.
            bool seen = false;
            for (int k = 0; k < kGroup; ++k) {
              const std::string n = "w" + std::to_string(w) + "-" + std::to_string(round) + "-" + std::to_string(k);
              const bool present = (*main)->resolve("/" + n).ok();
              if (seen && !present) _exit(5);
              if (!present) continue;
              seen = true;
              if (ReadPath(**main, "/" + n) != FileData(n)) _exit(4);
            }
          }
      }
      _exit(0);
    }
    readers.push_back(pid);
  }
  for (int w = 0; w < kWriters; ++w) {
    pid_t pid = fork();
    if (pid == 0) {
      auto s = BranchStore::Open(spec_of(w));
      if (!s.ok()) _exit(20);
      for (int round = 0; round < kRounds; ++round) {
        const std::string b = "w" + std::to_string(w) + "-" + std::to_string(round);
        if (!(*s)->Create(b).ok()) _exit(21);
        {
          auto br = (*s)->OpenBranch(b, true);
          if (!br.ok()) _exit(22);
          for (int k = 0; k < kGroup; ++k) {
            const std::string n = b + "-" + std::to_string(k);
            auto ino = (*br)->create((*br)->root(), n, 0644);
            if (!ino.ok() || !(*br)->write(*ino, 0, B(FileData(n))).ok()) _exit(23);
          }
          if (ReadPath(**br, "/" + b + "-0") != FileData(b + "-0")) _exit(24);
        }
        const bool commit = (round + w) % 3 != 0;
        Status st = commit ? (*s)->Commit(b) : (*s)->Abort(b);
        if (!st.ok()) {
          fprintf(stderr, "%s: %s\n", b.c_str(), st.ToString().c_str());
          _exit(25);
        }
      }
      _exit(0);
    }
    writers.push_back(pid);
  }
  for (pid_t p : writers) {
    int st = 0;
    waitpid(p, &st, 0);
    EXPECT_TRUE(WIFEXITED(st) && WEXITSTATUS(st) == 0) << "writer exit " << WEXITSTATUS(st);
  }
  stop->store(1);
  for (pid_t p : readers) {
    int st = 0;
    waitpid(p, &st, 0);
    EXPECT_TRUE(WIFEXITED(st) && WEXITSTATUS(st) == 0) << "reader exit " << WEXITSTATUS(st);
  }
  auto main = store.OpenBranch("main");
  ASSERT_TRUE(main.ok());
  for (int w = 0; w < kWriters; ++w)
    for (int round = 0; round < kRounds; ++round) {
      const bool committed = (round + w) % 3 != 0;
      const std::string n = "w" + std::to_string(w) + "-" + std::to_string(round) + "-0";
      EXPECT_EQ((*main)->resolve("/" + n).ok(), committed) << n;
    }
  EXPECT_EQ(store.Check(nullptr), 0u);
  munmap(stop, 4096);
}

TEST(BranchConcurrency, EightWritersCommitAndAbortWhileOthersReadMain) {
  TempDir src;
  WriteFile(src / "base", "base");
  BranchRegion region(src.path(), 512ull << 20);
  const std::string spec = region.spec();
  // Half of the writers map the region through an inherited descriptor.
  EightWritersCommitAndAbortWhileOthersReadMain(*region.store(), [&](int i) {
    if (i % 2 == 0) return spec;
    return "fd:" + std::to_string(open(spec.c_str(), O_RDWR));
  });
}

// The same on a region that is a memfd (`daxfs branch init IMAGE
// memfd:SOCKET`): a server process hands its descriptor out on a socket;
// some processes get it there, the others inherit it.
TEST(BranchConcurrency, EightWritersOnAMemfdServedOnASocket) {
  TempDir src, tmp;
  WriteFile(src / "base", "base");
  const std::string image = tmp / "base.img", sock = tmp / "region.sock";
  ASSERT_TRUE(BuildFromDirectory(src.path(), image, BuildOptions{}).ok());
  auto store = BranchStore::Init(image, "memfd:" + sock, 512ull << 20);
  ASSERT_TRUE(store.ok()) << store.status().ToString();
  const int memfd = (*store)->region().fd();
  ASSERT_GE(memfd, 0);
  pid_t server = fork();
  if (server == 0) {
    std::atomic<bool> stop{false};
    auto r = Region::Open("fd:" + std::to_string(memfd), Access::kReadWrite);
    _exit(r.ok() && ServeRegion(**r, sock, stop).ok() ? 0 : 1);
  }
  for (int i = 0; i < 500 && access(sock.c_str(), F_OK) != 0; ++i) usleep(10000);
  ASSERT_EQ(access(sock.c_str(), F_OK), 0) << "the server did not start";
  EightWritersCommitAndAbortWhileOthersReadMain(**store, [&](int i) {
    return i % 2 == 0 ? "memfd:" + sock : "fd:" + std::to_string(memfd);
  });
  kill(server, SIGTERM);
  kill(server, SIGKILL);
  waitpid(server, nullptr, 0);
}

}  // namespace
}  // namespace daxfs::testing
