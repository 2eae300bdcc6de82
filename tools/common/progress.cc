#include "common/progress.h"

#include <unistd.h>

#include <cstdio>

namespace daxfs::tools {

ProgressLine::ProgressLine(bool enabled) : enabled_(enabled && isatty(STDERR_FILENO)) {}

std::string HumanBytes(uint64_t n) {
  const char* units[] = {"B", "KiB", "MiB", "GiB", "TiB"};
  double v = static_cast<double>(n);
  int u = 0;
  while (v >= 1024 && u < 4) {
    v /= 1024;
    ++u;
  }
  char buf[32];
  std::snprintf(buf, sizeof buf, u == 0 ? "%.0f %s" : "%.1f %s", v, units[u]);
  return buf;
}

void ProgressLine::Update(const BuildProgress& p) {
  if (!enabled_) return;
  const auto now = std::chrono::steady_clock::now();
  if (shown_ && now - last_ < std::chrono::milliseconds(100)) return;
  last_ = now;
  shown_ = true;
  if (p.bytes_total > 0) {
    const double pct = 100.0 * static_cast<double>(p.bytes_done) / static_cast<double>(p.bytes_total);
    std::fprintf(stderr, "\r\033[K%s: %5.1f%%  %llu/%llu files  %s/%s", p.phase, pct,
                 static_cast<unsigned long long>(p.items_done),
                 static_cast<unsigned long long>(p.items_total), HumanBytes(p.bytes_done).c_str(),
                 HumanBytes(p.bytes_total).c_str());
  } else {
    std::fprintf(stderr, "\r\033[K%s: %llu entries", p.phase,
                 static_cast<unsigned long long>(p.items_done));
  }
  std::fflush(stderr);
}

void ProgressLine::Finish() {
  if (shown_) std::fprintf(stderr, "\r\033[K");
  shown_ = false;
}

}  // namespace daxfs::tools
