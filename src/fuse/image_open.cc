#include "fuse/image_open.h"

#include <signal.h>
#include <unistd.h>

#include <atomic>
#include <cstdint>
#include <cstring>

namespace daxfs::fuse {
namespace {

std::atomic<uintptr_t> g_base{0};
std::atomic<size_t> g_size{0};
std::string g_message;  // written before the handler is installed, read-only after

void OnSigbus(int sig, siginfo_t* info, void*) {
  const auto addr = reinterpret_cast<uintptr_t>(info->si_addr);
  const uintptr_t base = g_base.load();
  if (addr < base || addr - base >= g_size.load()) {
    signal(sig, SIG_DFL);  // not the image: die as we would have
    return;
  }
  // Nothing is mounted yet and nothing needs undoing: say why and leave.
  (void)!write(STDERR_FILENO, g_message.data(), g_message.size());
  _exit(1);
}

}  // namespace

Result<std::shared_ptr<const Image>> OpenImageForMount(const std::string& spec, const OpenOptions& options) {
  DAXFS_ASSIGN_OR_RETURN(auto region, Region::Open(spec, Access::kReadOnly));
  const auto bytes = region->bytes();
  g_message = "daxfs-mount: " + region->name() +
              ": the image's memory cannot be read (bus error): its pages cannot be provided, "
              "as for a sparse file on a full tmpfs or hugetlbfs, or it was truncated or its "
              "device removed; nothing mounted\n";
  // Whole pages: a region need not start on a page boundary (phys:, BARs).
  const auto page = static_cast<uintptr_t>(sysconf(_SC_PAGESIZE));
  const auto start = reinterpret_cast<uintptr_t>(bytes.data());
  g_base = start & ~(page - 1);
  g_size = start - g_base + bytes.size();
  struct sigaction sa{};
  sa.sa_sigaction = OnSigbus;
  sa.sa_flags = SA_SIGINFO;
  sigemptyset(&sa.sa_mask);
  sigaction(SIGBUS, &sa, nullptr);
  return Image::Open(std::move(region), options);
}

}  // namespace daxfs::fuse
