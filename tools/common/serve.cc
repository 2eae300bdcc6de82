#include "common/serve.h"

#include <signal.h>

#include <atomic>

#include "daxfs/region_server.h"
#include "region/fd_passing.h"

namespace daxfs::tools {
namespace {
std::atomic<bool> g_stop{false};
}  // namespace

Status CheckSocketPath(const std::string& socket) { return ClaimSocketPath(socket, false); }

Status ServeUntilInterrupted(const Region& region, const std::string& socket) {
  struct sigaction sa {};
  sa.sa_handler = [](int) { g_stop = true; };
  sigaction(SIGINT, &sa, nullptr);
  sigaction(SIGTERM, &sa, nullptr);
  return ServeRegion(region, socket, g_stop);
}

}  // namespace daxfs::tools
