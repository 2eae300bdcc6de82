// The FUSE adapter: serves a daxfs Image through libfuse's low-level API.
#pragma once

#include <memory>
#include <string>

#include "daxfs/image.h"

namespace daxfs {
class BranchStore;
}

namespace daxfs::fuse {

// How file data reaches readers.
enum class CacheMode {
  // FOPEN_DIRECT_IO for every file: the kernel keeps no page-cache copy, so
  // N mounts of one image cost one image. mmap still works where the kernel
  // accepts FUSE_DIRECT_IO_ALLOW_MMAP (negotiated when we mount ourselves).
  kDirect,
  // Kernel page cache per mount (fastest re-reads, one copy per mount).
  kKernel,
  // Direct I/O for files of at least auto_threshold bytes, cache below.
  kAuto,
};

// How requests reach the daemon (and replies the kernel).
enum class UringMode {
  // FUSE over io_uring when the kernel offers it (fuse.enable_uring=Y),
  // /dev/fuse otherwise.
  kAuto,
  // FUSE over io_uring or no mount.
  kOn,
  // /dev/fuse only (the default: the ring is faster only for callers that
  // stay on one CPU and for opens, slower for a lone unpinned reader;
  // docs/PERFORMANCE.md, "FUSE over io_uring").
  kOff,
};

struct MountOptions {
  std::string image;          // path or region descriptor
  std::string mountpoint;
  CacheMode cache = CacheMode::kDirect;
  uint64_t auto_threshold = 64 * 1024;
  bool allow_other = false;
  bool foreground = false;
  bool debug = false;
  bool single_thread = false;
  unsigned max_threads = 0;   // 0: two per CPU
  // Mount flags a filesystem honours. Without -o suid/dev, nosuid and nodev
  // as FUSE does (as mount.fuse.daxfs, mount(8)'s suid,dev defaults).
  bool suid = false;
  bool dev = false;
  bool exec = true;
  bool verify = false;        // verify the metadata checksum at mount
  std::string fsname;         // shown in /proc/mounts (default: the image)
  std::string object_dir;     // object-store images: override the recorded directory
  // Object-store images: serve each regular file's trusted.overlay.metacopy
  // and trusted.overlay.redirect ("/ab/cdef...") so that OverlayFS with
  // lowerdir=MOUNT::OBJDIR reads data from the objects in the kernel.
  bool overlay_lower = false;
  // The type in /proc/mounts is fuse.<fstype>: "daxfs", or "branchfs" under
  // -o fstype=branchfs for tooling that looks for fuse.branchfs.
  std::string fstype = "daxfs";
  // Branch regions: serve this branch writable at the root instead of main.
  std::string branch;
  // Branch regions; empty = the default of fstype (branchfs: what the
  // multikernel/branching client expects; daxfs: the conservative one).
  std::string main_mode;    // "writable" (branchfs) or "readonly" (daxfs)
  std::string siblings;     // "first-wins" (branchfs) or "merge" (daxfs)
  std::string listing;      // "listed" (branchfs) or "hidden" (daxfs): @NAME entries in readdir
  UringMode uring = UringMode::kOff;
};

// Mounts and serves a read-only image until unmounted or signalled.
// Returns the exit status.
int Serve(std::shared_ptr<const Image> image, const MountOptions& options);

// Mounts a branch region (docs/BRANCHES.md, "Mounting branches"): main
// read-only at the root and every branch writable at /@NAME/, or the branch
// options.branch writable at the root.
int ServeBranches(std::shared_ptr<BranchStore> store, const MountOptions& options);

}  // namespace daxfs::fuse
