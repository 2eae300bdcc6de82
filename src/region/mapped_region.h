// Mapping a file that Region::Create is making (see output/new_file.h).
#pragma once

#include <cstdint>
#include <memory>

#include "daxfs/region.h"
#include "output/new_file.h"

namespace daxfs {

// Maps `size` bytes of `file` read-write; the region's Publish() publishes it.
Result<std::shared_ptr<Region>> MapNewFile(std::unique_ptr<output::NewFile> file, uint64_t size);

}  // namespace daxfs
