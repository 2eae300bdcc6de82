// Prefetch: have the page tables for a range of an image's region filled
// before it is read, so that reading it takes no page faults.
//
// A fresh mapping costs one page fault per 64 KiB read (the kernel maps 16
// pages around each fault on tmpfs) or per 4 KiB page on other mappings.
// Prefetch asks the kernel to fill the range's page tables in one call
// (MADV_POPULATE_READ, Linux 5.14+; MADV_WILLNEED on older kernels, which
// only starts reading ahead). It never copies: the pages stay the region's
// shared pages. Reading a prefetched range is then as fast as reading any
// memory (docs/PERFORMANCE.md, "First touch").
//
// Safe on any range of any region: a range that cannot be provided (a sparse
// file on a full tmpfs) is reported as an IOError, and reading it afterwards
// behaves as it would have without the prefetch (see Region::status()).
#pragma once

#include <cstddef>
#include <span>

#include "daxfs/export.h"
#include "daxfs/image.h"
#include "daxfs/region.h"
#include "daxfs/status.h"

namespace daxfs {

enum class PrefetchMode {
  kPopulate,  // fill the page tables now; returns when done
  kWillNeed,  // start it in the background (MADV_WILLNEED); returns at once
};

// Prefetches the pages holding `range`, which must lie within region.bytes().
DAXFS_EXPORT Status Prefetch(const Region& region, std::span<const std::byte> range,
                             PrefetchMode mode = PrefetchMode::kPopulate);

// Prefetches a regular file's data (whole file).
DAXFS_EXPORT Status Prefetch(const Image& image, Ino ino, PrefetchMode mode = PrefetchMode::kPopulate);
// Part of an object-store file's mapping (Image::pin); `range` must lie in
// data.bytes.
DAXFS_EXPORT Status Prefetch(const PinnedData& data, std::span<const std::byte> range,
                             PrefetchMode mode = PrefetchMode::kPopulate);

}  // namespace daxfs
