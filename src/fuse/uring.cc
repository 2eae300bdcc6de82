#include "fuse/uring.h"

#include <liburing.h>
#include <linux/fuse.h>
#include <poll.h>
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <sys/eventfd.h>
#include <sys/mman.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <condition_variable>
#include <cstddef>
#include <cstdio>
#include <cstring>
#include <deque>
#include <fstream>
#include <mutex>
#include <optional>
#include <system_error>
#include <thread>
#include <vector>

#include "fuse/session.h"
#include "fuse/transport.h"

namespace daxfs::fuse {
namespace {

// --- The kernel's ABI (include/uapi/linux/fuse.h 7.42+) --------------------
// Debian 12's header predates it, so the layouts are spelled out here.
// struct fuse_uring_req_header: in_out[128], op_in[128], ring_ent_in_out.
constexpr size_t kHdrInOut = 0, kHdrOpIn = 128, kHdrEntInOut = 256, kHdrSize = 288;
constexpr size_t kOpInMax = 128;
// struct fuse_uring_ent_in_out: flags u64, commit_id u64, payload_sz u32, ...
constexpr size_t kEntCommitId = 8, kEntPayloadSz = 16;
// The request and reply headers are as on /dev/fuse (<linux/fuse.h>).
constexpr size_t kInHeader = sizeof(fuse_in_header), kInLen = offsetof(fuse_in_header, len),
                 kInUnique = offsetof(fuse_in_header, unique);
constexpr size_t kOutHeader = sizeof(fuse_out_header);
// enum fuse_uring_cmd.
constexpr uint32_t kCmdRegister = 1, kCmdCommitAndFetch = 2;
// struct fuse_uring_cmd_req in the SQE's 80-byte command area: flags u64,
// commit_id u64, qid u16.
constexpr size_t kCmdCommitId = 8, kCmdQid = 16;
constexpr size_t kSqe128 = 128;
// FUSE_MIN_READ_BUFFER: the kernel's floor for the payload buffer.
constexpr size_t kMinPayload = 8192;

// Entries per queue. A queue's thread serves them one after the other; more
// than one lets the kernel hand over the next request (readahead, parallel
// callers on one CPU) while one is being answered, and lets one wake-up
// serve several.
constexpr unsigned kDepth = 4;
constexpr uint64_t kStopTag = ~uint64_t{0};
constexpr uint64_t kWakeTag = ~uint64_t{0} - 1;
constexpr size_t kInOpcode = offsetof(fuse_in_header, opcode), kInNodeid = offsetof(fuse_in_header, nodeid);

struct Entry {
  std::byte* base = nullptr;  // [header page][payload]
  size_t mapped = 0;
  iovec iov[2]{};
  uint32_t last_cmd = 0;
  uint64_t commit_id = 0;
  bool dead = false;
};

struct Queue {
  unsigned qid = 0;
  io_uring ring{};
  bool ring_ok = false;
  int stop_fd = -1;
  // Requests handed to the helper thread come back through `done`, and
  // wake_fd (polled by the ring) says so.
  int wake_fd = -1;
  std::mutex done_mu;
  std::vector<Entry*> done;
  std::thread thread;
  std::vector<Entry> entries;
  std::atomic<uint64_t> served{0};
};

// The number of possible CPUs (the kernel has one queue per possible CPU,
// and the ring is not ready until every one of them has an entry).
unsigned PossibleCpus() {
  std::ifstream in("/sys/devices/system/cpu/possible");
  std::string s;
  unsigned count = 0;
  if (in >> s) {
    size_t at = 0;
    while (at < s.size()) {
      size_t end = s.find(',', at);
      if (end == std::string::npos) end = s.size();
      const std::string part = s.substr(at, end - at);
      const size_t dash = part.find('-');
      try {
        if (dash == std::string::npos) count += 1;
        else count += static_cast<unsigned>(std::stoul(part.substr(dash + 1)) - std::stoul(part.substr(0, dash)) + 1);
      } catch (...) {
        return 0;
      }
      at = end + 1;
    }
  }
  if (count == 0) count = static_cast<unsigned>(std::max(1L, sysconf(_SC_NPROCESSORS_CONF)));
  return count;
}

// The size of a request's first in-argument (in op_in): in.len less the
// header and the payload. nullopt for a request whose sizes do not add up
// (or whose payload would not fit `payload_capacity`).
std::optional<size_t> FirstArgSize(const std::byte* h, size_t payload_capacity) {
  uint32_t in_len, payload_sz;
  std::memcpy(&in_len, h + kHdrInOut + kInLen, 4);
  std::memcpy(&payload_sz, h + kHdrEntInOut + kEntPayloadSz, 4);
  const size_t fixed = size_t{kInHeader} + payload_sz;
  if (in_len < fixed || in_len - fixed > kOpInMax || payload_sz > payload_capacity) return std::nullopt;
  return in_len - fixed;
}

void PrepareCmd(io_uring_sqe* sqe, Entry* e, uint32_t cmd, unsigned qid) {
  std::memset(static_cast<void*>(sqe), 0, kSqe128);
  sqe->opcode = IORING_OP_URING_CMD;
  sqe->flags = IOSQE_FIXED_FILE;
  sqe->fd = 0;  // the /dev/fuse fd, registered as fixed file 0
  sqe->cmd_op = cmd;
  if (cmd == kCmdRegister) {
    sqe->addr = reinterpret_cast<uintptr_t>(e->iov);
    sqe->len = 2;
  }
  io_uring_sqe_set_data(sqe, e);
  auto* area = reinterpret_cast<std::byte*>(sqe->cmd);
  const uint64_t commit_id = cmd == kCmdRegister ? 0 : e->commit_id;
  const uint16_t q = static_cast<uint16_t>(qid);
  std::memcpy(area + kCmdCommitId, &commit_id, 8);
  std::memcpy(area + kCmdQid, &q, 2);
  e->last_cmd = cmd;
}

}  // namespace

struct UringServer::Impl {
  fuse_session* se = nullptr;
  int fd = -1;
  bool debug = false;
  size_t page = 4096;
  std::vector<std::unique_ptr<Queue>> queues;
  std::mutex mu;
  std::condition_variable cv;
  bool started = false, stopping = false;
  size_t payload_size = 0;
  bool stopped = false;
  // Requests that may wait for other requests (UringServer::Create) run on
  // the helper thread, so that the ring thread keeps serving its queue.
  RingOffload offload;
  std::thread helper;
  std::deque<std::pair<Queue*, Entry*>> jobs;
  bool helper_stop = false;

  void Run(Queue& q);
  void Help();
  bool Submit(Queue& q, Entry* e, uint32_t cmd);
  void Serve(Queue& q, Entry& e);
  void Process(Queue& q, Entry& e);
  bool ArmWake(Queue& q);
  void Note(const std::string& what) {
    if (debug) std::fprintf(stderr, "daxfs-mount: io_uring: %s\n", what.c_str());
  }
};

bool UringServer::Impl::Submit(Queue& q, Entry* e, uint32_t cmd) {
  io_uring_sqe* sqe = io_uring_get_sqe(&q.ring);
  if (sqe == nullptr) {
    // Cannot happen: the SQ has a slot per entry plus the stop poll.
    LogProblem("io_uring: no free submission slot on queue " + std::to_string(q.qid));
    return false;
  }
  PrepareCmd(sqe, e, cmd, q.qid);
  return true;
}

// One request: rebuild what /dev/fuse would have delivered (header, first
// argument, the rest) in front of the payload, so that libfuse's handlers run
// unchanged and the payload (write data) is not copied; the transport puts
// the reply into the entry; commit it.
void UringServer::Impl::Serve(Queue& q, Entry& e) {
  TmpfileAsCreate(e.base + kHdrInOut);
  if (offload) {
    uint32_t opcode;
    uint64_t nodeid;
    std::memcpy(&opcode, e.base + kHdrInOut + kInOpcode, 4);
    std::memcpy(&nodeid, e.base + kHdrInOut + kInNodeid, 8);
    // A malformed request stays here: Process answers it.
    const auto arg_size = FirstArgSize(e.base, payload_size);
    if (arg_size && offload(opcode, nodeid, {e.base + kHdrOpIn, *arg_size})) {
      {
        std::lock_guard lock(mu);
        jobs.emplace_back(&q, &e);
      }
      cv.notify_all();
      return;
    }
  }
  Process(q, e);
  if (!Submit(q, &e, kCmdCommitAndFetch)) e.dead = true;
}

void UringServer::Impl::Help() {
  std::unique_lock lock(mu);
  for (;;) {
    cv.wait(lock, [&] { return helper_stop || !jobs.empty(); });
    if (jobs.empty()) return;
    auto [q, e] = jobs.front();
    jobs.pop_front();
    lock.unlock();
    Process(*q, *e);
    {
      std::lock_guard done_lock(q->done_mu);
      q->done.push_back(e);
    }
    const uint64_t one = 1;
    (void)!write(q->wake_fd, &one, sizeof one);
    lock.lock();
  }
}

bool UringServer::Impl::ArmWake(Queue& q) {
  io_uring_sqe* sqe = io_uring_get_sqe(&q.ring);
  if (sqe == nullptr) return false;
  io_uring_prep_poll_add(sqe, q.wake_fd, POLLIN);
  io_uring_sqe_set_data64(sqe, kWakeTag);
  return true;
}

void UringServer::Impl::Process(Queue& q, Entry& e) {
  std::byte* h = e.base;
  std::byte* payload = e.base + page;
  uint32_t in_len, payload_sz;
  uint64_t unique;
  std::memcpy(&in_len, h + kHdrInOut + kInLen, 4);
  std::memcpy(&unique, h + kHdrInOut + kInUnique, 8);
  std::memcpy(&e.commit_id, h + kHdrEntInOut + kEntCommitId, 8);
  std::memcpy(&payload_sz, h + kHdrEntInOut + kEntPayloadSz, 4);
  RingReply reply;
  reply.unique = unique;
  reply.out_header = h + kHdrInOut;
  reply.payload = payload;
  reply.capacity = payload_size;
  if (const auto op_size = FirstArgSize(h, payload_size)) {
    std::byte* start = payload - kInHeader - *op_size;
    std::memcpy(start, h + kHdrInOut, kInHeader);
    std::memcpy(start + kInHeader, h + kHdrOpIn, *op_size);
    fuse_buf buf{};
    buf.size = in_len;
    buf.mem = start;
    SetThreadRingReply(&reply);
    fuse_session_process_buf(se, &buf);
    SetThreadRingReply(nullptr);
  } else {
    LogProblem("io_uring: malformed request (length " + std::to_string(in_len) + ", payload " +
               std::to_string(payload_sz) + ")");
  }
  if (!reply.replied) {
    // Every request on the ring expects a reply (FORGET and INTERRUPT never
    // come here); one that got none must not keep the entry.
    const uint32_t len = kOutHeader;
    const int32_t error = -EIO;
    std::memcpy(h + kHdrInOut, &len, 4);
    std::memcpy(h + kHdrInOut + 4, &error, 4);
    std::memcpy(h + kHdrInOut + 8, &unique, 8);
    reply.payload_size = 0;
  }
  std::memcpy(h + kHdrEntInOut + kEntPayloadSz, &reply.payload_size, 4);
  q.served.fetch_add(1, std::memory_order_relaxed);
}

void UringServer::Impl::Run(Queue& q) {
  char name[16];
  std::snprintf(name, sizeof name, "daxfs-ring-%u", q.qid);
  pthread_setname_np(pthread_self(), name);
  // Requests of callers on CPU qid arrive here: serve them on that CPU.
  cpu_set_t set;
  CPU_ZERO(&set);
  if (q.qid < CPU_SETSIZE) {
    CPU_SET(q.qid, &set);
    if (int rc = pthread_setaffinity_np(pthread_self(), sizeof set, &set); rc != 0)
      Note("queue " + std::to_string(q.qid) + " not pinned to its CPU: " + std::strerror(rc));
  }
  {
    std::unique_lock lock(mu);
    cv.wait(lock, [&] { return started || stopping; });
    if (stopping) return;
  }
  // The payload buffer follows the header page; the page's tail takes the
  // rebuilt request header and first argument in front of the payload.
  bool ok = true;
  for (Entry& e : q.entries) {
    e.mapped = page + payload_size;
    void* p = mmap(nullptr, e.mapped, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (p == MAP_FAILED) {
      e.mapped = 0;
      ok = false;
      break;
    }
    e.base = static_cast<std::byte*>(p);
    e.iov[0] = {e.base, kHdrSize};
    e.iov[1] = {e.base + page, payload_size};
  }
  if (!ok) {
    // Requests wait in the kernel until every queue has an entry: a
    // REGISTER the kernel refuses (no payload buffer) turns the ring off for
    // this connection and sends them to /dev/fuse instead.
    LogProblem("io_uring: cannot allocate the buffers of queue " + std::to_string(q.qid) +
               "; requests go through /dev/fuse");
    Entry& e = q.entries.front();
    e.iov[0] = {e.base, e.base ? kHdrSize : 0};
    e.iov[1] = {nullptr, 0};
    for (Entry& x : q.entries) x.dead = true;
    e.dead = false;
    Submit(q, &e, kCmdRegister);
    io_uring_submit(&q.ring);
  } else {
    for (Entry& e : q.entries) Submit(q, &e, kCmdRegister);
  }
  if (io_uring_sqe* sqe = io_uring_get_sqe(&q.ring); sqe != nullptr) {
    io_uring_prep_poll_add(sqe, q.stop_fd, POLLIN);
    io_uring_sqe_set_data64(sqe, kStopTag);
  }
  if (offload && !ArmWake(q))
    LogProblem("io_uring: queue " + std::to_string(q.qid) + ": cannot wait for the helper's replies");
  for (;;) {
    const int rc = io_uring_submit_and_wait(&q.ring, 1);
    if (rc < 0 && rc != -EINTR && rc != -EAGAIN && rc != -EBUSY) {
      LogProblem("io_uring: queue " + std::to_string(q.qid) + ": " + std::strerror(-rc));
      break;
    }
    unsigned head, seen = 0;
    io_uring_cqe* cqe;
    bool stop = false;
    io_uring_for_each_cqe(&q.ring, head, cqe) {
      ++seen;
      if (cqe->user_data == kStopTag) {
        stop = true;
        continue;
      }
      if (cqe->user_data == kWakeTag) {
        // Replies the helper finished: commit them here (only this thread
        // submits to its ring).
        uint64_t count;
        (void)!read(q.wake_fd, &count, sizeof count);
        std::vector<Entry*> finished;
        {
          std::lock_guard lock(q.done_mu);
          finished.swap(q.done);
        }
        for (Entry* e : finished)
          if (!Submit(q, e, kCmdCommitAndFetch)) e->dead = true;
        if (!ArmWake(q)) LogProblem("io_uring: queue " + std::to_string(q.qid) + ": cannot wait for the helper's replies");
        continue;
      }
      auto* e = static_cast<Entry*>(io_uring_cqe_get_data(cqe));
      if (cqe->res == 0) {
        Serve(q, *e);
      } else if (cqe->res == -EAGAIN || cqe->res == -EINTR) {
        if (!Submit(q, e, e->last_cmd)) e->dead = true;
      } else {
        // -ENOTCONN, -ECONNABORTED, -ECANCELED: the connection ended.
        e->dead = true;
        if (cqe->res != -ENOTCONN && cqe->res != -ECONNABORTED && cqe->res != -ECANCELED) {
          LogProblem(std::string("io_uring: queue ") + std::to_string(q.qid) + ": " +
                     (e->last_cmd == kCmdRegister ? "REGISTER" : "COMMIT_AND_FETCH") + " failed: " +
                     std::strerror(-cqe->res) +
                     (e->last_cmd == kCmdRegister ? "; requests go through /dev/fuse" : ""));
        }
      }
    }
    io_uring_cq_advance(&q.ring, seen);
    const bool all_dead = std::all_of(q.entries.begin(), q.entries.end(), [](const Entry& x) { return x.dead; });
    if (stop || all_dead) break;
  }
  // Replies committed in the last round must still reach the kernel.
  io_uring_submit(&q.ring);
}

UringServer::UringServer(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
UringServer::~UringServer() { Stop(); }

std::unique_ptr<UringServer> UringServer::Create(fuse_session* se, int fd, bool debug, RingOffload offload,
                                                 std::string* error) {
  auto impl = std::make_unique<Impl>();
  impl->offload = std::move(offload);
  impl->se = se;
  impl->fd = fd;
  impl->debug = debug;
  impl->page = static_cast<size_t>(sysconf(_SC_PAGESIZE));
  const unsigned n = PossibleCpus();
  for (unsigned qid = 0; qid < n; ++qid) {
    auto q = std::make_unique<Queue>();
    q->qid = qid;
    q->entries.resize(kDepth);
    q->stop_fd = eventfd(0, EFD_CLOEXEC);
    q->wake_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
    if (q->stop_fd < 0 || q->wake_fd < 0) {
      *error = std::string("eventfd: ") + std::strerror(errno);
      impl->queues.push_back(std::move(q));
      UringServer(std::move(impl)).Stop();
      return nullptr;
    }
    io_uring_params params{};
    params.flags = IORING_SETUP_SQE128 | IORING_SETUP_CQSIZE;
    params.cq_entries = 2 * (kDepth + 2);
    int rc = io_uring_queue_init_params(kDepth + 2, &q->ring, &params);
    if (rc == 0) {
      q->ring_ok = true;
      rc = io_uring_register_files(&q->ring, &fd, 1);
    }
    impl->queues.push_back(std::move(q));
    if (rc != 0) {
      *error = std::string("io_uring setup: ") + std::strerror(-rc);
      UringServer(std::move(impl)).Stop();
      return nullptr;
    }
  }
  Impl* raw = impl.get();
  // The signals that end the session go to the thread that waits for the
  // session's end (as libfuse's own workers do), never to a ring thread
  // blocked in io_uring_enter. SIGBUS stays open: the region guard needs it
  // in whichever thread copies a reply.
  sigset_t block, old;
  sigemptyset(&block);
  for (int sig : {SIGTERM, SIGINT, SIGHUP, SIGQUIT}) sigaddset(&block, sig);
  pthread_sigmask(SIG_BLOCK, &block, &old);
  try {
    for (auto& q : raw->queues) q->thread = std::thread([raw, q = q.get()] { raw->Run(*q); });
    if (raw->offload) raw->helper = std::thread([raw] { raw->Help(); });
  } catch (const std::system_error& e) {  // out of threads (pids limit)
    pthread_sigmask(SIG_SETMASK, &old, nullptr);
    *error = std::string("cannot start the ring threads: ") + e.what();
    UringServer(std::move(impl)).Stop();
    return nullptr;
  }
  pthread_sigmask(SIG_SETMASK, &old, nullptr);
  return std::unique_ptr<UringServer>(new UringServer(std::move(impl)));
}

void UringServer::Start(uint32_t max_write, uint32_t max_pages) {
  Impl& m = *impl_;
  size_t size = std::max<size_t>({kMinPayload, max_write, size_t{max_pages} * m.page});
  size = (size + m.page - 1) / m.page * m.page;
  {
    std::lock_guard lock(m.mu);
    if (m.started || m.stopping) return;
    m.payload_size = size;
    m.started = true;
  }
  m.cv.notify_all();
}

void UringServer::Stop() {
  if (!impl_) return;
  Impl& m = *impl_;
  if (m.stopped) return;
  m.stopped = true;
  // The helper first, while the rings still serve: a commit it runs may wait
  // (FUSE_NOTIFY_INVAL_ENTRY) for a caller whose request sits on a ring.
  {
    std::lock_guard lock(m.mu);
    m.helper_stop = true;
  }
  m.cv.notify_all();
  if (m.helper.joinable()) m.helper.join();
  {
    std::lock_guard lock(m.mu);
    m.stopping = true;
  }
  m.cv.notify_all();
  for (auto& q : m.queues) {
    if (q->stop_fd >= 0) {
      const uint64_t one = 1;
      (void)!write(q->stop_fd, &one, sizeof one);
    }
  }
  for (auto& q : m.queues)
    if (q->thread.joinable()) q->thread.join();
  for (auto& q : m.queues) {
    if (q->ring_ok) io_uring_queue_exit(&q->ring);
    q->ring_ok = false;
    if (q->stop_fd >= 0) close(q->stop_fd);
    q->stop_fd = -1;
    if (q->wake_fd >= 0) close(q->wake_fd);
    q->wake_fd = -1;
    for (Entry& e : q->entries)
      if (e.base != nullptr) munmap(e.base, e.mapped);
    q->entries.clear();
  }
}

uint64_t UringServer::Served() const {
  uint64_t n = 0;
  for (auto& q : impl_->queues) n += q->served.load(std::memory_order_relaxed);
  return n;
}


bool UringUsable(std::string* why) {
  io_uring ring;
  io_uring_params params{};
  params.flags = IORING_SETUP_SQE128;
  const int rc = io_uring_queue_init_params(2, &ring, &params);
  if (rc != 0) {
    *why = std::string("cannot set up an io_uring: ") + std::strerror(-rc) +
           (rc == -EPERM ? " (see /proc/sys/kernel/io_uring_disabled)" : "");
    return false;
  }
  io_uring_queue_exit(&ring);
  return true;
}

bool KernelUringEnabled(std::string* why) {
  const char* const kParam = "/sys/module/fuse/parameters/enable_uring";
  std::ifstream in(kParam);
  std::string v;
  if (!(in >> v)) {
    *why = std::string("this kernel has no FUSE over io_uring (it needs Linux 6.14+ built with "
                       "CONFIG_FUSE_IO_URING; ") + kParam + " does not exist)";
    return false;
  }
  if (v != "Y" && v != "y" && v != "1") {
    *why = std::string("FUSE over io_uring is switched off in this kernel: ") + kParam + " is " + v +
           " (as root: echo Y > " + kParam + ")";
    return false;
  }
  return true;
}

}  // namespace daxfs::fuse
