// Branch timings: create on an image of a given size, commit against the
// number of changed files, reading an unchanged branch against main, and
// the bytes a 4 KiB overwrite copies.
// Usage: daxfs_branch_bench IMAGE_MB [REGION_DIR]
#include <sys/stat.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <cinttypes>
#include <cstring>
#include <string>
#include <vector>

#include "daxfs/branch.h"
#include "daxfs/builder.h"

using namespace daxfs;
using Clock = std::chrono::steady_clock;

static double Us(Clock::time_point a, Clock::time_point b) {
  return std::chrono::duration<double, std::micro>(b - a).count();
}

static void Die(const Status& s) {
  std::fprintf(stderr, "%s\n", s.ToString().c_str());
  std::exit(1);
}

int main(int argc, char** argv) {
  const uint64_t mb = argc > 1 ? std::strtoull(argv[1], nullptr, 10) : 100;
  const std::string dir = argc > 2 ? argv[2] : "/dev/shm";
  const std::string src = dir + "/daxfs-bb-src", img = dir + "/daxfs-bb.img", reg = dir + "/daxfs-bb.region";
  std::system(("rm -rf " + src + " && mkdir -p " + src + "/files").c_str());
  std::system(("head -c " + std::to_string(mb) + "M /dev/urandom > " + src + "/big").c_str());
  for (int i = 0; i < 1000; ++i) {
    FILE* f = std::fopen((src + "/files/f" + std::to_string(i)).c_str(), "w");
    std::fprintf(f, "file %d\n", i);
    std::fclose(f);
  }
  BuildOptions bo;
  if (auto r = BuildFromDirectory(src, img, bo); !r.ok()) Die(r.status());
  auto store_r = BranchStore::Init(img, reg, 1ull << 30);
  if (!store_r.ok()) Die(store_r.status());
  auto store = *store_r;
  // create
  const int n = 100;
  auto t0 = Clock::now();
  for (int i = 0; i < n; ++i)
    if (auto r = store->Create("c" + std::to_string(i)); !r.ok()) Die(r.status());
  auto t1 = Clock::now();
  for (int i = 0; i < n; ++i) (void)store->Abort("c" + std::to_string(i));
  (void)store->Gc();
  std::printf("image %" PRIu64 " MB: branch create %.1f us (mean of %d)\n", mb, Us(t0, t1) / n, n);
  // open (replay) an empty branch
  (void)store->Create("o");
  t0 = Clock::now();
  auto ob = store->OpenBranch("o", true);
  t1 = Clock::now();
  std::printf("open an unchanged branch for writing: %.1f us\n", Us(t0, t1));
  // 4 KiB overwrite in the big file
  const Ino big = *(*ob)->resolve("/big");
  std::vector<std::byte> page(4096, std::byte{1});
  const uint64_t before = store->Usage().delta_used;
  if (auto s = (*ob)->write(big, (mb << 20) / 2, page); !s.ok()) Die(s);
  std::printf("4 KiB overwrite in a %" PRIu64 " MB file copied %" PRIu64 " bytes into the delta area\n", mb,
              store->Usage().delta_used - before);
  ob->reset();
  (void)store->Abort("o");
  // commit vs changed files
  for (int files : {1, 10, 100, 1000}) {
    const std::string b = "k" + std::to_string(files);
    (void)store->Create(b);
    {
      auto w = *store->OpenBranch(b, true);
      const Ino d = *w->resolve("/files");
      for (int i = 0; i < files; ++i) {
        const Ino f = *w->lookup(d, "f" + std::to_string(i));
        if (auto s = w->write(f, 0, std::span<const std::byte>(page.data(), 16)); !s.ok()) Die(s);
      }
    }
    t0 = Clock::now();
    if (auto s = store->Commit(b); !s.ok()) Die(s);
    t1 = Clock::now();
    // A sibling commit after main moved: the conflict check and replay run.
    const std::string s2 = "s" + std::to_string(files);
    (void)store->Create(s2);
    (void)store->Create(s2 + "x");
    {
      auto w = *store->OpenBranch(s2 + "x", true);
      (void)w->create(w->root(), "moved-main", 0644);
    }
    (void)store->Commit(s2 + "x");
    {
      auto w = *store->OpenBranch(s2, true);
      const Ino d = *w->resolve("/files");
      for (int i = 0; i < files; ++i) {
        const Ino f = *w->lookup(d, "f" + std::to_string(i));
        (void)w->chmod(f, 0600);
      }
    }
    auto t2 = Clock::now();
    Status st = store->Commit(s2);
    auto t3 = Clock::now();
    std::printf("commit with %4d changed files: %.1f us (parent unchanged), %.1f us (parent moved, %s)\n",
                files, Us(t0, t1), Us(t2, t3), st.ok() ? "merged" : "conflict");
  }
  // gc after 50 aborted branches of 1 MiB each: time, and memory handed back
  {
    std::vector<std::byte> mib(1 << 20, std::byte{7});
    for (int i = 0; i < 50; ++i) {
      const std::string b = "g" + std::to_string(i);
      (void)store->Create(b);
      auto w = *store->OpenBranch(b, true);
      auto f = w->create(w->root(), "scratch", 0644);
      if (!f.ok()) Die(f.status());
      if (auto st = w->write(*f, 0, mib); !st.ok()) Die(st);
    }
    for (int i = 0; i < 50; ++i) (void)store->Abort("g" + std::to_string(i));
    struct stat before_st {}, after_st {};
    stat(reg.c_str(), &before_st);
    t0 = Clock::now();
    auto g = store->Gc();
    t1 = Clock::now();
    if (!g.ok()) Die(g.status());
    stat(reg.c_str(), &after_st);
    std::printf("gc after 50 aborted 1 MiB branches: %.0f us, %" PRIu64 " bytes reclaimed, region memory %.1f -> %.1f MiB\n",
                Us(t0, t1), g->bytes_reclaimed, before_st.st_blocks * 512.0 / (1 << 20),
                after_st.st_blocks * 512.0 / (1 << 20));
  }
  // reading an unchanged branch vs main
  (void)store->Create("r");
  auto main = *store->OpenBranch("main");
  auto r = *store->OpenBranch("r");
  auto read_all = [&](const FsView& v) {
    const Ino f = *v.resolve("/big");
    uint64_t sum = 0;
    auto t = Clock::now();
    for (int rep = 0; rep < 5; ++rep)
      for (uint64_t off = 0;;) {
        auto s = v.read(f, off, 1 << 20);
        if (!s.ok() || s->empty()) break;
        for (size_t i = 0; i < s->size(); i += 4096) sum += static_cast<uint64_t>((*s)[i]);
        off += s->size();
      }
    return std::make_pair(Us(t, Clock::now()), sum);
  };
  auto [tm, s1] = read_all(*main);
  auto [tb, s2] = read_all(*r);
  std::printf("read /big 5x (1 MiB reads, touch every page): main %.0f us, unchanged branch %.0f us (%.2fx)%s\n",
              tm, tb, tb / tm, s1 == s2 ? "" : " MISMATCH");
  unlink(reg.c_str());
  unlink(img.c_str());
  std::system(("rm -rf " + src).c_str());
  return 0;
}
