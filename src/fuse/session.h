// Mounting and serving one FUSE session: mount(2) as root (or fusermount3),
// the transport, the worker loop and a clean unmount. The request handlers
// (image_ops.cc for read-only images, branch_ops.cc for branch regions) come
// in as a fuse_lowlevel_ops table.
#pragma once

#define FUSE_USE_VERSION 314
#include <fuse_lowlevel.h>

#include <cstddef>
#include <functional>
#include <span>
#include <string>

#include "fuse/daxfs_fuse.h"

namespace daxfs::fuse {

struct SessionSpec {
  const fuse_lowlevel_ops* ops = nullptr;
  void* userdata = nullptr;
  // The memory the replies point into: guarded against SIGBUS (region_guard.h).
  std::span<const std::byte> region;
  // False for a region the kernel cannot pin (Region::kernel_can_pin):
  // replies carrying its bytes are then copied first (BounceRepliesFrom).
  bool region_pinnable = true;
  bool writable = false;   // mount read-write (a branch mount)
  // FUSE over io_uring serves a CPU's requests on one thread: requests that
  // may wait for other requests while handled (see RingOffload in uring.h)
  // are named here and run on a helper thread instead. Empty: none.
  std::function<bool(uint32_t opcode, uint64_t nodeid, std::span<const std::byte> arg)> ring_offload;
  // Called once the session exists and is mounted, before serving.
  std::function<void(fuse_session*)> started;
  // Called once serving has ended, before the session is unmounted and freed.
  std::function<void()> stopping;
};

// Mounts and serves until unmounted or signalled. Returns the exit status.
int RunSession(const SessionSpec& spec, const MountOptions& options);

// Problems found while serving go to stderr, or to syslog once the daemon
// has detached from its terminal.
void LogProblem(const std::string& message);

}  // namespace daxfs::fuse
