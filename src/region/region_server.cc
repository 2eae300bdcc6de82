#include "daxfs/region_server.h"

#include <poll.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <cstring>

#include "region/fd_passing.h"

namespace daxfs {

Status ServeRegion(const Region& region, const std::string& socket_path,
                   const std::atomic<bool>& stop, const std::function<void(int)>& on_client) {
  if (region.fd() < 0) return Status::InvalidArgument(region.name() + ": region has no file descriptor to share");
  sockaddr_un addr;
  DAXFS_RETURN_IF_ERROR(UnixSocketAddress(socket_path, &addr));
  int sock = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (sock < 0) return Status::IOError("socket", errno);
  unlink(socket_path.c_str());  // a stale socket from a previous server
  if (bind(sock, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0 || listen(sock, 64) != 0) {
    int err = errno;
    close(sock);
    return Status::IOError(socket_path + ": bind/listen", err);
  }
  Status result;
  while (!stop.load()) {
    pollfd p{sock, POLLIN, 0};
    int r = poll(&p, 1, 200);
    if (r < 0 && errno != EINTR) {
      result = Status::IOError(socket_path + ": poll", errno);
      break;
    }
    if (r <= 0) continue;
    int client = accept4(sock, nullptr, nullptr, SOCK_CLOEXEC);
    if (client < 0) continue;
    if (on_client) {
      ucred cred{};
      socklen_t len = sizeof cred;
      getsockopt(client, SOL_SOCKET, SO_PEERCRED, &cred, &len);
      on_client(cred.pid);
    }
    (void)SendRegionFd(client, region.fd());  // a client that went away is not our problem
    close(client);
  }
  close(sock);
  unlink(socket_path.c_str());
  return result;
}

}  // namespace daxfs
