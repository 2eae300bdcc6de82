#include "daxfs/region_server.h"

#include <poll.h>
#include <sys/socket.h>
#include <sys/stat.h>
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
  DAXFS_RETURN_IF_ERROR(ClaimSocketPath(socket_path, /*remove_stale=*/true));
  int sock = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (sock < 0) return Status::IOError("socket", errno);
  if (bind(sock, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0) {
    int err = errno;
    close(sock);
    if (err == EADDRINUSE)  // someone else created something there just now
      return Status::FromErrno(err, socket_path + ": bind: the path was taken meanwhile");
    return Status::IOError(socket_path + ": bind", err);
  }
  // What we created, so that at exit we remove our socket and nothing else
  // (another server may have replaced it after we stopped answering).
  struct stat ours {};
  const bool have_ours = lstat(socket_path.c_str(), &ours) == 0;
  if (listen(sock, 64) != 0) {
    int err = errno;
    close(sock);
    unlink(socket_path.c_str());
    return Status::IOError(socket_path + ": listen", err);
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
  struct stat now;
  if (have_ours && lstat(socket_path.c_str(), &now) == 0 && now.st_ino == ours.st_ino &&
      now.st_dev == ours.st_dev)
    unlink(socket_path.c_str());
  return result;
}

}  // namespace daxfs
