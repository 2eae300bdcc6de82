// A one-line progress display on stderr, shown only when stderr is a tty.
#pragma once

#include <chrono>
#include <cstdint>
#include <string>

#include "daxfs/builder.h"

namespace daxfs::tools {

class ProgressLine {
 public:
  explicit ProgressLine(bool enabled);
  ~ProgressLine() { Finish(); }
  void Update(const BuildProgress& p);
  // Clears the line (call before printing anything else).
  void Finish();

 private:
  bool enabled_;
  bool shown_ = false;
  std::chrono::steady_clock::time_point last_;
};

std::string HumanBytes(uint64_t n);

}  // namespace daxfs::tools
