// Benchmark helper used by the shell scripts in bench/.
//   daxfs_readall walk SPEC [--hold]   read every file of the image through
//                                      the library; with --hold, print the
//                                      process's Pss then wait for stdin EOF
//   daxfs_readall randread SPEC N [B]  N random B-byte reads (default 4096)
//                                      over the file data; prints ns per read
#include <sys/stat.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <random>
#include <string>
#include <vector>

#include "daxfs/image.h"

namespace {

uint64_t Walk(const daxfs::Image& img) {
  uint64_t sum = 0;
  std::vector<daxfs::Ino> dirs{img.root()};
  for (size_t i = 0; i < dirs.size(); ++i) {
    auto d = img.opendir(dirs[i]);
    if (!d.ok()) continue;
    for (size_t k = 0; k < d->size(); ++k) {
      auto e = d->entry(k);
      if (!e.ok()) continue;
      if (S_ISDIR(e->mode)) dirs.push_back(e->ino);
      if (!S_ISREG(e->mode)) continue;
      auto data = img.contents(e->ino);
      if (!data.ok()) continue;
      for (size_t off = 0; off < data->size(); off += 64) sum += static_cast<uint8_t>((*data)[off]);
    }
  }
  return sum;
}

std::string PssKiB() {
  std::ifstream in("/proc/self/smaps_rollup");
  std::string line;
  while (std::getline(in, line))
    if (line.rfind("Pss:", 0) == 0) return line.substr(4);
  return "?";
}

}  // namespace

int main(int argc, char** argv) {
  if (argc < 3) {
    std::fprintf(stderr, "usage: %s walk SPEC [--hold] | randread SPEC N [BYTES]\n", argv[0]);
    return 2;
  }
  auto img = daxfs::Image::Open(argv[2]);
  if (!img.ok()) {
    std::fprintf(stderr, "%s\n", img.status().ToString().c_str());
    return 1;
  }
  const std::string mode = argv[1];
  if (mode == "walk") {
    const uint64_t sum = Walk(**img);
    if (argc > 3 && std::strcmp(argv[3], "--hold") == 0) {
      std::printf("pss_kib %s sum %llu\n", PssKiB().c_str(), static_cast<unsigned long long>(sum));
      std::fflush(stdout);
      char c;
      while (read(0, &c, 1) > 0) {
      }
    }
    return 0;
  }
  if (mode == "randread" && argc > 3) {
    const uint64_t n = std::strtoull(argv[3], nullptr, 10);
    const size_t len = argc > 4 ? std::strtoul(argv[4], nullptr, 10) : 4096;
    if (len == 0 || len > 4096) {
      std::fprintf(stderr, "read size must be 1..4096\n");
      return 2;
    }
    const auto bytes = (*img)->region().bytes();
    const uint64_t begin = (*img)->info().base_offset + (*img)->info().meta_size;
    const uint64_t pages = (bytes.size() - begin) / 4096;
    std::mt19937_64 rng(1);
    std::vector<char> buf(4096);
    uint64_t sum = 0;
    for (uint64_t i = 0; i < std::min<uint64_t>(pages, 1 << 20); ++i) sum += static_cast<uint8_t>(bytes[begin + (i % pages) * 4096]);  // fault in
    const auto t0 = std::chrono::steady_clock::now();
    for (uint64_t i = 0; i < n; ++i) {
      const uint64_t page = rng() % pages;
      std::memcpy(buf.data(), bytes.data() + begin + page * 4096, len);
      sum += static_cast<uint8_t>(buf[i & 4095]);
    }
    const double ns = std::chrono::duration<double, std::nano>(std::chrono::steady_clock::now() - t0).count();
    std::printf("%.1f ns per random %zu-byte read (%llu)\n", ns / static_cast<double>(n), len,
                static_cast<unsigned long long>(sum & 1));
    return 0;
  }
  std::fprintf(stderr, "unknown mode %s\n", mode.c_str());
  return 2;
}
