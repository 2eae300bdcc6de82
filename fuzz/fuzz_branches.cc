// libFuzzer target: arbitrary bytes as a branch region (control block,
// branch slots, logs and delta data are written by other processes and
// untrusted). See walk_branches.h for the input format; seeds in
// fuzz/corpus_branch/, findings in fuzz/regressions_branch/.
#include <cstddef>
#include <cstdint>

#include "walk_branches.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  (void)daxfs::testing::WalkBranchRegion(data, size);
  return 0;
}
