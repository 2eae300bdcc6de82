// FUSE over io_uring (kernel 6.14+, fuse.enable_uring=Y): requests arrive
// in ring entries, one io_uring queue per CPU, served by a thread pinned to
// that CPU; the kernel puts a request on the queue of the CPU its caller runs
// on, so request, handler and reply stay on one CPU.
//
// The protocol (include/uapi/linux/fuse.h 7.42+, fs/fuse/dev_uring.c):
// - The daemon asks for FUSE_OVER_IO_URING in its INIT reply (the transport
//   does that). INIT itself, and every request until the ring is ready, come
//   through /dev/fuse; so do FORGET, BATCH_FORGET and INTERRUPT always.
// - Each entry is registered with an IORING_OP_URING_CMD SQE (128-byte SQEs)
//   FUSE_IO_URING_CMD_REGISTER: addr/len point to two iovecs, a 288-byte
//   header (in_out[128], op_in[128], ring_ent_in_out[32]) and a payload
//   buffer of at least max(max_write, max_pages pages, 8 KiB); the 80-byte
//   command area holds {flags, commit_id, qid}. The kernel refuses it with
//   EAGAIN before INIT was answered.
// - Until every queue of every possible CPU has an entry, requests wait
//   (blocked in the kernel); then they go to the ring. A failed REGISTER
//   turns the ring off for the connection and the waiters go to /dev/fuse.
// - A completion (res 0) means a request is in the entry: fuse_in_header in
//   in_out, the first in-argument in op_in (its size is in.len minus the
//   header and the payload), the other in-arguments one after the other in
//   the payload, whose size and the commit id are in ring_ent_in_out.
// - The reply: fuse_out_header in in_out, the out arguments in the payload,
//   their size in ring_ent_in_out.payload_sz; FUSE_IO_URING_CMD_COMMIT_AND_FETCH
//   with the commit id hands it over and waits for the next request.
// - At unmount or abort the waiting entries complete with -ENOTCONN.
#pragma once

#define FUSE_USE_VERSION 314
#include <fuse_lowlevel.h>

#include <cstdint>
#include <functional>
#include <memory>
#include <span>
#include <string>

namespace daxfs::fuse {

// Whether a request (opcode, nodeid, its first in-argument) may wait for
// other requests of the mount while it is handled (e.g. sends
// FUSE_NOTIFY_INVAL_ENTRY, which takes a directory lock a caller waiting for
// a reply may hold). Such requests run on a helper thread: a ring queue has
// one thread, which must not wait for a request queued behind the one it
// serves. Keep it to the few requests that need it: each one offloaded holds
// one of its queue's entries until the helper is done with it.
using RingOffload = std::function<bool(uint32_t opcode, uint64_t nodeid, std::span<const std::byte> arg)>;

class UringServer {
 public:
  // Sets up one io_uring per possible CPU for the session's /dev/fuse `fd`
  // and starts their threads, which wait for Start(). nullptr (and `error`)
  // when io_uring is unavailable.
  static std::unique_ptr<UringServer> Create(fuse_session* se, int fd, bool debug, RingOffload offload,
                                             std::string* error);
  ~UringServer();  // Stop()
  UringServer(const UringServer&) = delete;
  UringServer& operator=(const UringServer&) = delete;

  // After the INIT reply that asked for the ring: register the entries,
  // payload buffers sized for max_write / max_pages, and serve.
  void Start(uint32_t max_write, uint32_t max_pages);
  // Ends the threads (serving or still waiting) and frees the rings.
  void Stop();
  // Requests served through the ring so far.
  uint64_t Served() const;

  struct Impl;

 private:
  explicit UringServer(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

// Whether this process can set up a ring for FUSE at all (io_uring with
// 128-byte SQEs; io_uring may be disabled by kernel.io_uring_disabled).
bool UringUsable(std::string* why);

// Whether the kernel would offer the ring: fuse.enable_uring is Y (the
// kernel reads it when INIT is sent). `why` says what is missing otherwise.
bool KernelUringEnabled(std::string* why);

}  // namespace daxfs::fuse
