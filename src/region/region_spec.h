// Pieces of region-descriptor parsing shared by Region::Open and
// Region::Create.
#pragma once

#include <string>

#include "daxfs/status.h"

namespace daxfs {

inline constexpr long kHugetlbfsMagic = 0x958458f6;

// "shm:/img" -> {"shm", "/img"}; a plain path (no kind, or a '/' before the
// first ':') -> {"", path}.
struct RegionSpec {
  std::string kind;
  std::string rest;
};
RegionSpec SplitRegionSpec(const std::string& spec);

// The /dev/shm path for the `rest` of a "shm:/NAME" descriptor.
Result<std::string> ShmPath(const std::string& spec, const std::string& rest);

}  // namespace daxfs
