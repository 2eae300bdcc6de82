// Micro-benchmarks of the reader: path lookup in a 100k-entry image and the
// bandwidth of reading through zero-copy spans compared with memcpy.
// Images are built into /dev/shm at start-up (shared memory, like production).
#include <benchmark/benchmark.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>
#define XXH_STATIC_LINKING_ONLY
#include <xxhash.h>

#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <random>
#include <string>
#include <vector>

#include "daxfs/builder.h"
#include "daxfs/image.h"

namespace {

constexpr int kFiles = 100000;
constexpr size_t kBigFile = 256u << 20;

struct Fixture {
  std::string dir;
  std::shared_ptr<const daxfs::Image> many;  // 100 dirs x 1000 files
  std::shared_ptr<const daxfs::Image> flat;  // 100k files in one directory
  std::shared_ptr<const daxfs::Image> many_v5, flat_v5;  // the same, upstream-readable layout
  std::shared_ptr<const daxfs::Image> big;   // one 256 MiB file
  std::vector<std::string> many_paths, flat_paths;
  daxfs::Ino big_ino = 0;

  Fixture() {
    char tmpl[] = "/dev/shm/daxfs-bench.XXXXXX";
    dir = mkdtemp(tmpl);
    const std::string src = dir + "/src", flat_src = dir + "/flat", big_src = dir + "/big";
    mkdir(src.c_str(), 0755);
    mkdir(flat_src.c_str(), 0755);
    mkdir(big_src.c_str(), 0755);
    for (int d = 0; d < 100; ++d) {
      const std::string sub = src + "/dir" + std::to_string(d);
      mkdir(sub.c_str(), 0755);
      for (int f = 0; f < kFiles / 100; ++f) {
        const std::string rel = "dir" + std::to_string(d) + "/file_" + std::to_string(f) + ".dat";
        close(open((src + "/" + rel).c_str(), O_WRONLY | O_CREAT, 0644));
        many_paths.push_back("/" + rel);
      }
    }
    for (int f = 0; f < kFiles; ++f) {
      const std::string name = "entry_" + std::to_string(f);
      close(open((flat_src + "/" + name).c_str(), O_WRONLY | O_CREAT, 0644));
      flat_paths.push_back("/" + name);
    }
    {
      std::vector<char> data(kBigFile);
      std::mt19937_64 rng(1);
      for (size_t i = 0; i < data.size(); i += 8) {
        const uint64_t v = rng();
        std::memcpy(&data[i], &v, 8);
      }
      int fd = open((big_src + "/weights.bin").c_str(), O_WRONLY | O_CREAT, 0644);
      if (write(fd, data.data(), data.size()) != static_cast<ssize_t>(data.size())) std::abort();
      close(fd);
    }
    many = Build(src, dir + "/many.img");
    flat = Build(flat_src, dir + "/flat.img");
    many_v5 = Build(src, dir + "/many-v5.img", false);
    flat_v5 = Build(flat_src, dir + "/flat-v5.img", false);
    big = Build(big_src, dir + "/big.img");
    big_ino = *big->resolve("weights.bin");
    std::shuffle(many_paths.begin(), many_paths.end(), std::mt19937(7));
    std::shuffle(flat_paths.begin(), flat_paths.end(), std::mt19937(7));
  }
  ~Fixture() { std::system(("rm -rf '" + dir + "'").c_str()); }

  static std::shared_ptr<const daxfs::Image> Build(const std::string& src, const std::string& img,
                                                   bool compact_dirs = true) {
    daxfs::BuildOptions o;
    o.compact_dirs = compact_dirs;
    if (!daxfs::BuildFromDirectory(src, img, o).ok()) std::abort();
    auto image = daxfs::Image::Open(img);
    if (!image.ok()) std::abort();
    return *image;
  }
};

Fixture& F() {
  static Fixture f;
  return f;
}

// Arg 1: compact directories (the default); arg 0: upstream-readable layout.
void BM_ResolvePath_100Dirs(benchmark::State& state) {
  auto& f = F();
  const auto& image = state.range(0) ? f.many : f.many_v5;
  size_t i = 0;
  for (auto _ : state) {
    auto ino = image->resolve(f.many_paths[i++ % f.many_paths.size()]);
    benchmark::DoNotOptimize(ino);
  }
  state.SetItemsProcessed(state.iterations());
}
BENCHMARK(BM_ResolvePath_100Dirs)->Arg(1)->Arg(0);

void BM_ResolvePath_FlatDir100k(benchmark::State& state) {
  auto& f = F();
  const auto& image = state.range(0) ? f.flat : f.flat_v5;
  size_t i = 0;
  for (auto _ : state) {
    auto ino = image->resolve(f.flat_paths[i++ % f.flat_paths.size()]);
    benchmark::DoNotOptimize(ino);
  }
  state.SetItemsProcessed(state.iterations());
}
BENCHMARK(BM_ResolvePath_FlatDir100k)->Arg(1)->Arg(0);

void BM_ResolveMissing_FlatDir100k(benchmark::State& state) {
  auto& f = F();
  for (auto _ : state) {
    auto ino = f.flat->resolve("/entry_zzz");
    benchmark::DoNotOptimize(ino);
  }
}
BENCHMARK(BM_ResolveMissing_FlatDir100k);

void BM_Stat(benchmark::State& state) {
  auto& f = F();
  daxfs::Ino ino = 1;
  const daxfs::Ino n = f.many->info().inode_count;
  for (auto _ : state) {
    auto a = f.many->stat(ino);
    benchmark::DoNotOptimize(a);
    ino = ino % n + 1;
  }
}
BENCHMARK(BM_Stat);

// Consuming the file's bytes where they lie (zero-copy span) ...
void BM_SpanRead_Hash(benchmark::State& state) {
  auto& f = F();
  const size_t chunk = static_cast<size_t>(state.range(0));
  uint64_t off = 0;
  for (auto _ : state) {
    auto s = f.big->read(f.big_ino, off, chunk);
    benchmark::DoNotOptimize(XXH3_64bits(s->data(), s->size()));
    off = (off + chunk) % kBigFile;
  }
  state.SetBytesProcessed(static_cast<int64_t>(state.iterations() * chunk));
}
BENCHMARK(BM_SpanRead_Hash)->Arg(4096)->Arg(1 << 20);

// ... against the classic read path: copy into a private buffer, then consume.
void BM_MemcpyThenHash(benchmark::State& state) {
  auto& f = F();
  const size_t chunk = static_cast<size_t>(state.range(0));
  std::vector<std::byte> buf(chunk);
  auto whole = *f.big->contents(f.big_ino);
  uint64_t off = 0;
  for (auto _ : state) {
    std::memcpy(buf.data(), whole.data() + off, chunk);
    benchmark::DoNotOptimize(XXH3_64bits(buf.data(), chunk));
    off = (off + chunk) % kBigFile;
  }
  state.SetBytesProcessed(static_cast<int64_t>(state.iterations() * chunk));
}
BENCHMARK(BM_MemcpyThenHash)->Arg(4096)->Arg(1 << 20);

// Raw bandwidth: memcpy out of the mapping through a span vs plain memcpy of
// the same bytes (the span costs one bounds-checked inode read per call).
void BM_SpanRead_Copy(benchmark::State& state) {
  auto& f = F();
  const size_t chunk = static_cast<size_t>(state.range(0));
  std::vector<std::byte> buf(chunk);
  uint64_t off = 0;
  for (auto _ : state) {
    auto s = f.big->read(f.big_ino, off, chunk);
    std::memcpy(buf.data(), s->data(), s->size());
    benchmark::ClobberMemory();
    off = (off + chunk) % kBigFile;
  }
  state.SetBytesProcessed(static_cast<int64_t>(state.iterations() * chunk));
}
BENCHMARK(BM_SpanRead_Copy)->Arg(4096)->Arg(1 << 20);

void BM_Memcpy(benchmark::State& state) {
  auto& f = F();
  const size_t chunk = static_cast<size_t>(state.range(0));
  std::vector<std::byte> buf(chunk);
  auto whole = *f.big->contents(f.big_ino);
  uint64_t off = 0;
  for (auto _ : state) {
    std::memcpy(buf.data(), whole.data() + off, chunk);
    benchmark::ClobberMemory();
    off = (off + chunk) % kBigFile;
  }
  state.SetBytesProcessed(static_cast<int64_t>(state.iterations() * chunk));
}
BENCHMARK(BM_Memcpy)->Arg(4096)->Arg(1 << 20);

}  // namespace

BENCHMARK_MAIN();
