// Keeps a bus error in a mapping made by the library from killing the
// process: a tmpfs that cannot provide a page of a sparse image (full), a
// truncated file, a removed device.
//
// A process-wide SIGBUS handler (installed with the first guarded mapping,
// chaining to whatever handler was there for faults elsewhere) replaces the
// whole faulting mapping with zero pages, so the access is retried and
// succeeds, and records the offset. The owner then reports the loss
// (Region::status()). A program that installs its own SIGBUS handler later
// replaces this one (daxfs-mount does, see src/fuse/region_guard.h).
#pragma once

#include <cstddef>
#include <cstdint>

namespace daxfs {

// Guards the page-aligned mapping [base, base + size) made with `prot`.
// Returns a handle, or -1 when too many mappings are guarded already (the
// mapping then stays unguarded).
int GuardMapping(void* base, size_t size, int prot);
// Stops guarding; call before munmap.
void UnguardMapping(int handle);
// The offset from base of the first bus error, or -1 while none happened.
int64_t MappingFaultOffset(int handle);

}  // namespace daxfs
