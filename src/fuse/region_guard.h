// Turns the loss of the image's memory under a running mount (a tmpfs file
// truncated by someone, a DAX device or dma-buf revoked) from a crash that
// leaves a dead mount ("Transport endpoint is not connected") into EIO for
// the requests in flight and a clean unmount.
#pragma once

#include <cstddef>
#include <span>

namespace daxfs::fuse {

// Installs a SIGBUS handler for faults inside `mapping`. On the first one it
// replaces the mapping with zero pages (so the faulting thread and every
// other one can finish without faulting again), records the loss, reports it
// on stderr and sends the process SIGTERM, which ends the FUSE loop.
// Faults outside `mapping` keep the default action (a core dump).
void GuardRegion(std::span<const std::byte> mapping);

// True once the region was lost: replies must not carry its bytes.
bool RegionLost();

// Touches the last byte of `bytes`: if the memory behind it is gone this
// faults now, in our process, rather than inside the kernel's copy of a reply.
// Loss past the end of a mapping always takes the tail first (truncation).
void ProbeTail(std::span<const std::byte> bytes);

}  // namespace daxfs::fuse
