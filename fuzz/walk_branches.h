// Shared by fuzz_branches and its replay test: treats arbitrary bytes as a
// branch region (base image + control block + delta area) and drives the
// branch engine over all of it: open, check, list, every active branch's
// tree through CheckView (reading every file), then commit and abort, a
// write in a new branch, and gc.
//
// Input format: the region with its trailing zero bytes cut off; it is
// padded with zeros to the next multiple of kBranchFuzzUnit (the seeds are
// made with region sizes that are such multiples, see
// tests/fuzz_regressions_test.cc), so a seed stays small on disk.
#pragma once

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <memory>
#include <string>
#include <vector>

#include "daxfs/branch.h"
#include "daxfs/branch_format.h"
#include "daxfs/check.h"
#include "daxfs/format.h"
#include "daxfs/region.h"

namespace daxfs::testing {

// 2 MiB: the smallest region with a small image and the minimum 1 MiB delta.
inline constexpr size_t kBranchFuzzUnit = 2u << 20;

// Heap memory as a read-write Region (Region::FromMemory is read-only).
class FuzzMemoryRegion final : public Region {
 public:
  FuzzMemoryRegion(std::byte* data, size_t size) : Region(data, size, Access::kReadWrite, "fuzz") {}
};

// Runs everything; returns the number of problems reported (for the tests:
// the seeds must give 0).
inline uint64_t WalkBranchRegion(const uint8_t* data, size_t size) {
  if (size == 0 || size > 8 * kBranchFuzzUnit) return 0;
  const size_t padded = (size + kBranchFuzzUnit - 1) / kBranchFuzzUnit * kBranchFuzzUnit;
  // Page aligned like a mapping (the control block holds atomics), exactly sized so ASan flags reads past the end.
  std::unique_ptr<std::byte, decltype(&std::free)> mem(
      static_cast<std::byte*>(std::aligned_alloc(format::kBlockSize, padded)), &std::free);
  if (!mem) return 0;
  std::memcpy(mem.get(), data, size);
  std::memset(mem.get() + size, 0, padded - size);
  // The shortest lease timeout: a holder met for the first time is watched
  // that long before it counts as gone (commit, abort and writers wait for
  // it), and a fuzzed timeout of minutes would only make inputs slow.
  {
    format::Superblock sb;
    std::memcpy(&sb, mem.get(), std::min(sizeof sb, padded));
    uint64_t control = 0;
    std::memcpy(&control, sb.ext.reserved + format::kExtBranchControlOffset, sizeof control);
    const uint64_t field = control + offsetof(format::branch::ControlHeader, lease_timeout_ms);
    if (control != 0 && control < padded && field + sizeof(uint32_t) <= padded) {
      const uint32_t shortest = format::branch::kLeaseTimeoutMinMs;
      std::memcpy(mem.get() + field, &shortest, sizeof shortest);
    }
  }
  auto region = std::make_shared<FuzzMemoryRegion>(mem.get(), padded);
  auto store = BranchStore::Open(region);
  if (!store.ok()) return 0;
  BranchStore& s = **store;
  uint64_t problems = s.Check(nullptr);
  auto list = s.List();
  if (!list.ok()) return problems + 1;
  std::vector<std::string> views{"main"};
  for (const auto& b : *list)
    if (b.state == "active") views.push_back(b.name);
  for (const auto& name : views) {
    auto v = s.OpenBranch(name, false);
    if (!v.ok()) {
      ++problems;
      continue;
    }
    CheckOptions o;
    problems += CheckView(**v, o).problems;
  }
  // Writers: commit the active leaves, abort what is left.
  for (const auto& b : *list)
    if (b.state == "active" && b.children == 0) (void)s.Commit(b.name);
  for (const auto& b : *list)
    if (b.state == "active") (void)s.Abort(b.name);
  // A writer allocates from whatever the free table and cursor say, then gc
  // marks whatever the logs say; a good region must still check clean.
  if (s.Create("fuzz-writer").ok()) {
    if (auto w = s.OpenBranch("fuzz-writer", true); w.ok()) {
      const std::vector<std::byte> data(3 * format::kBlockSize, std::byte{0x5a});
      if (auto f = (*w)->create((*w)->root(), "f", 0644); f.ok()) (void)(*w)->write(*f, 100, data);
    }
    (void)s.Abort("fuzz-writer");
  }
  if (s.Gc().ok()) problems += s.Check(nullptr);
  return problems;
}

}  // namespace daxfs::testing
