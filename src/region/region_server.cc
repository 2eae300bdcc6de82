#include "daxfs/region_server.h"

#include <poll.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <atomic>
#include <cstring>

#include "region/fd_passing.h"

namespace daxfs {
namespace {

// A name beside `socket_path` (same directory, so it can be linked there)
// for the socket while it is bound but not yet listening.
std::string StagingPath(const std::string& socket_path) {
  static std::atomic<unsigned> counter{0};
  const size_t slash = socket_path.rfind('/');
  const std::string dir = slash == std::string::npos ? "." : socket_path.substr(0, slash == 0 ? 1 : slash);
  return dir + (dir == "/" ? "" : "/") + ".daxfs-serve." + std::to_string(getpid()) + "." +
         std::to_string(counter.fetch_add(1));
}

}  // namespace

Status ServeRegion(const Region& region, const std::string& socket_path,
                   const std::atomic<bool>& stop, const std::function<void(int)>& on_client) {
  if (region.fd() < 0) return Status::InvalidArgument(region.name() + ": region has no file descriptor to share");
  sockaddr_un addr;
  DAXFS_RETURN_IF_ERROR(UnixSocketAddress(socket_path, &addr));
  DAXFS_RETURN_IF_ERROR(ClaimSocketPath(socket_path, /*remove_stale=*/true));
  // Bound and listening under a staging name first, then linked to its
  // name: whoever finds the path can connect (between bind and listen a
  // socket refuses connections, and ClaimSocketPath would take it for a
  // stale one). Without room for the staging name, bound in place.
  const std::string staging = StagingPath(socket_path);
  sockaddr_un staging_addr;
  const bool staged = UnixSocketAddress(staging, &staging_addr).ok();
  const std::string& bound = staged ? staging : socket_path;
  int sock = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (sock < 0) return Status::IOError("socket", errno);
  if (staged) unlink(staging.c_str());  // a crashed earlier server's (same pid)
  if (bind(sock, reinterpret_cast<const sockaddr*>(staged ? &staging_addr : &addr), sizeof addr) != 0) {
    int err = errno;
    close(sock);
    if (err == EADDRINUSE)  // someone else created something there just now
      return Status::FromErrno(err, bound + ": bind: the path was taken meanwhile");
    return Status::IOError(bound + ": bind", err);
  }
  if (listen(sock, 64) != 0) {
    int err = errno;
    close(sock);
    unlink(bound.c_str());
    return Status::IOError(bound + ": listen", err);
  }
  if (staged) {
    // link() fails rather than replace what another server put there.
    const int rc = link(staging.c_str(), socket_path.c_str());
    const int err = errno;
    unlink(staging.c_str());
    if (rc != 0) {
      close(sock);
      if (err == EEXIST)
        return Status::FromErrno(EADDRINUSE, socket_path + ": the path was taken meanwhile");
      return Status::IOError(socket_path + ": linking the listening socket " + staging + " there", err);
    }
  }
  // What we created, so that at exit we remove our socket and nothing else
  // (another server may have replaced it after we stopped answering).
  struct stat ours {};
  const bool have_ours = lstat(socket_path.c_str(), &ours) == 0;
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
