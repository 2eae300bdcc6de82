// Concurrent writers on one branch region: branch create and commit latency
// and commits per second with N writer processes, and how long a dead or a
// stopped writer's lease takes to be recovered.
//
// Usage:
//   daxfs_branch_writers init IMAGE REGION DELTA_MB
//   daxfs_branch_writers run REGION WRITERS ROUNDS [TAG]
//   daxfs_branch_writers recover REGION [WAIT_S]
//
// run: WRITERS processes (fork) each do ROUNDS times: create a branch of
// main, open it for writing, write one 4 KiB file, commit it into main (all
// writers commit into the same parent, so commits contend). Prints one line
// of medians and 99th percentiles. TAG makes branch names unique when
// several machines (guests) run against one region at once.
// recover: a child takes a branch's writer lease and is then killed
// (SIGKILL) or stopped (SIGSTOP); prints how long until another process
// gets the lease, or that it did not within WAIT_S seconds.
//
// Only the stable library API is used, so the same source builds against
// older versions of libdaxfs (bench/compare_branch_writers.sh compares the
// current protocol with the mutex one of control block version 3).
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <thread>
#include <vector>

#include "daxfs/branch.h"

using namespace daxfs;
using Clock = std::chrono::steady_clock;

namespace {

double Us(Clock::time_point a, Clock::time_point b) { return std::chrono::duration<double, std::micro>(b - a).count(); }

[[noreturn]] void Die(const std::string& what, const Status& s) {
  std::fprintf(stderr, "daxfs_branch_writers: %s: %s\n", what.c_str(), s.ToString().c_str());
  std::_Exit(1);
}

double Percentile(std::vector<double> v, double p) {
  if (v.empty()) return 0;
  std::sort(v.begin(), v.end());
  const size_t i = std::min(v.size() - 1, static_cast<size_t>(p * static_cast<double>(v.size() - 1) + 0.5));
  return v[i];
}

// One writer's rounds; latencies (create, commit) in µs to `fd`.
void Writer(const std::string& region, int k, int rounds, const std::string& tag, int fd) {
  auto store = BranchStore::Open(region);
  if (!store.ok()) Die("open " + region, store.status());
  std::vector<double> out;
  const std::vector<std::byte> data(4096, std::byte{'x'});
  for (int r = 0; r < rounds; ++r) {
    const std::string name = "w" + tag + "-" + std::to_string(k) + "-" + std::to_string(r);
    const auto t0 = Clock::now();
    if (auto made = (*store)->Create(name); !made.ok()) Die("create " + name, made.status());
    const auto t1 = Clock::now();
    auto b = (*store)->OpenBranch(name, true);
    if (!b.ok()) Die("open " + name, b.status());
    auto ino = (*b)->create((*b)->root(), "f-" + name, 0100644);
    if (!ino.ok()) Die("create a file in " + name, ino.status());
    if (Status st = (*b)->write(*ino, 0, data); !st.ok()) Die("write in " + name, st);
    b->reset();  // the lease goes before the commit, as a tool's would
    const auto t2 = Clock::now();
    for (int attempt = 0;; ++attempt) {
      Status st = (*store)->Commit(name);
      if (st.ok()) break;
      // EBUSY: another commit into main holds its turn (the v3 mutex never
      // says so; the lease protocol may, briefly).
      if (st.errno_value() != EBUSY || attempt > 100000) Die("commit " + name, st);
      std::this_thread::yield();
    }
    const auto t3 = Clock::now();
    out.push_back(Us(t0, t1));
    out.push_back(Us(t2, t3));
  }
  store->reset();
  const char* p = reinterpret_cast<const char*>(out.data());
  size_t left = out.size() * sizeof(double);
  while (left > 0) {
    const ssize_t n = write(fd, p, left);
    if (n <= 0) std::_Exit(1);
    p += n;
    left -= static_cast<size_t>(n);
  }
}

int Run(const std::string& region, int writers, int rounds, const std::string& tag) {
  std::vector<pid_t> pids;
  std::vector<int> fds;
  const auto start = Clock::now();
  for (int k = 0; k < writers; ++k) {
    int p[2];
    if (pipe(p) != 0) return 1;
    const pid_t pid = fork();
    if (pid == 0) {
      close(p[0]);
      Writer(region, k, rounds, tag, p[1]);
      std::_Exit(0);
    }
    close(p[1]);
    pids.push_back(pid);
    fds.push_back(p[0]);
  }
  std::vector<double> create, commit;
  bool ok = true;
  for (int k = 0; k < writers; ++k) {
    std::vector<double> v(2 * static_cast<size_t>(rounds));
    char* p = reinterpret_cast<char*>(v.data());
    size_t got = 0;
    while (got < v.size() * sizeof(double)) {
      const ssize_t n = read(fds[k], p + got, v.size() * sizeof(double) - got);
      if (n <= 0) break;
      got += static_cast<size_t>(n);
    }
    close(fds[k]);
    int status = 0;
    waitpid(pids[k], &status, 0);
    if (!WIFEXITED(status) || WEXITSTATUS(status) != 0 || got != v.size() * sizeof(double)) ok = false;
    for (size_t i = 0; i + 1 < v.size(); i += 2) {
      create.push_back(v[i]);
      commit.push_back(v[i + 1]);
    }
  }
  const double wall_s = Us(start, Clock::now()) / 1e6;
  if (!ok) {
    std::fprintf(stderr, "daxfs_branch_writers: a writer failed\n");
    return 1;
  }
  std::printf("writers=%d rounds=%d create_us_median=%.1f create_us_p99=%.1f commit_us_median=%.1f "
              "commit_us_p99=%.1f commits_per_s=%.0f\n",
              writers, rounds, Percentile(create, 0.5), Percentile(create, 0.99), Percentile(commit, 0.5),
              Percentile(commit, 0.99), static_cast<double>(writers) * rounds / wall_s);
  return 0;
}

// How long until this process gets the writer lease of a branch whose
// holder was killed (SIGKILL) or stopped (SIGSTOP) at time 0.
void Recover(const std::string& region, int sig, double wait_s) {
  auto store = BranchStore::Open(region);
  if (!store.ok()) Die("open " + region, store.status());
  const std::string name = std::string("recover-") + (sig == SIGKILL ? "kill" : "stop") + "-" +
                           std::to_string(getpid());
  if (auto made = (*store)->Create(name); !made.ok()) Die("create " + name, made.status());
  int ready[2];
  if (pipe(ready) != 0) std::_Exit(1);
  const pid_t pid = fork();
  if (pid == 0) {
    close(ready[0]);
    auto s = BranchStore::Open(region);
    if (!s.ok()) std::_Exit(1);
    auto b = (*s)->OpenBranch(name, true);
    if (!b.ok()) std::_Exit(1);
    const std::byte one{'x'};
    auto ino = (*b)->create((*b)->root(), "held", 0100644);
    if (!ino.ok() || !(*b)->write(*ino, 0, {&one, 1}).ok()) std::_Exit(1);
    (void)!write(ready[1], "r", 1);
    for (;;) pause();
  }
  close(ready[1]);
  char c;
  if (read(ready[0], &c, 1) != 1) Die("the lease holder", Status::FromErrno(ECHILD, "did not start"));
  close(ready[0]);
  kill(pid, sig);
  const auto t0 = Clock::now();
  std::string result;
  for (;;) {
    auto b = (*store)->OpenBranch(name, true);
    const double s = Us(t0, Clock::now()) / 1e6;
    if (b.ok()) {
      char buf[64];
      std::snprintf(buf, sizeof buf, "%.3f s", s);
      result = buf;
      break;
    }
    if (s > wait_s) {
      char buf[128];
      std::snprintf(buf, sizeof buf, "not within %.0f s (%s)", wait_s, b.status().message().c_str());
      result = buf;
      break;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  }
  if (sig == SIGSTOP) kill(pid, SIGKILL);
  waitpid(pid, nullptr, 0);
  std::printf("lease of a %s holder recovered after: %s\n", sig == SIGKILL ? "killed" : "stopped", result.c_str());
  (void)(*store)->Abort(name);
}

int Usage() {
  std::fprintf(stderr,
               "usage: daxfs_branch_writers init IMAGE REGION DELTA_MB\n"
               "       daxfs_branch_writers run REGION WRITERS ROUNDS [TAG]\n"
               "       daxfs_branch_writers recover REGION [WAIT_S]\n");
  return 2;
}

}  // namespace

int main(int argc, char** argv) {
  if (argc < 2) return Usage();
  const std::string mode = argv[1];
  if (mode == "init" && argc == 5) {
    auto s = BranchStore::Init(argv[2], argv[3], std::strtoull(argv[4], nullptr, 10) << 20);
    if (!s.ok()) Die(std::string("init ") + argv[3], s.status());
    return 0;
  }
  if (mode == "run" && (argc == 5 || argc == 6)) {
    const int writers = std::atoi(argv[3]), rounds = std::atoi(argv[4]);
    if (writers < 1 || rounds < 1) return Usage();
    return Run(argv[2], writers, rounds, argc == 6 ? argv[5] : "");
  }
  if (mode == "recover" && (argc == 3 || argc == 4)) {
    const double wait_s = argc == 4 ? std::atof(argv[3]) : 15;
    Recover(argv[2], SIGKILL, wait_s);
    Recover(argv[2], SIGSTOP, wait_s);
    return 0;
  }
  return Usage();
}
