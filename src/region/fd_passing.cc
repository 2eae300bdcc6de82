#include "region/fd_passing.h"

#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <cstring>

namespace daxfs {

Status UnixSocketAddress(const std::string& path, sockaddr_un* addr) {
  *addr = sockaddr_un{};
  addr->sun_family = AF_UNIX;
  // An empty path would bind or connect to Linux's abstract namespace.
  if (path.empty()) return Status::InvalidArgument("memfd:SOCKET / serve: the socket path is empty");
  if (path.size() >= sizeof(addr->sun_path))
    return Status::InvalidArgument(path + ": socket path too long");
  std::memcpy(addr->sun_path, path.c_str(), path.size() + 1);
  return Status::OK();
}

Status ClaimSocketPath(const std::string& path, bool remove_stale) {
  sockaddr_un addr;
  DAXFS_RETURN_IF_ERROR(UnixSocketAddress(path, &addr));
  struct stat st;
  if (lstat(path.c_str(), &st) != 0) {
    if (errno == ENOENT) return Status::OK();
    return Status::IOError(path, errno);
  }
  if (S_ISDIR(st.st_mode))
    return Status::FromErrno(EISDIR, path + ": is a directory; give the path of a socket to create");
  if (!S_ISSOCK(st.st_mode))
    return Status::Exists(path + ": exists and is not a socket; not replacing it (remove it or choose another path)");
  int s = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (s < 0) return Status::IOError("socket", errno);
  const bool live = connect(s, reinterpret_cast<const sockaddr*>(&addr), sizeof addr) == 0;
  const int err = errno;
  close(s);
  if (live) return Status::FromErrno(EADDRINUSE, path + ": a live server already listens on this socket");
  if (err != ECONNREFUSED && err != ENOENT)
    return Status::IOError(path + ": cannot tell whether a server listens on this socket", err);
  if (remove_stale && unlink(path.c_str()) != 0 && errno != ENOENT)
    return Status::IOError(path + ": removing the stale socket", errno);
  return Status::OK();
}

Result<int> ReceiveRegionFd(const std::string& path) {
  sockaddr_un addr;
  DAXFS_RETURN_IF_ERROR(UnixSocketAddress(path, &addr));
  int sock = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (sock < 0) return Status::IOError("socket", errno);
  if (connect(sock, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0) {
    int err = errno;
    close(sock);
    return Status::IOError(path + ": connect", err);
  }
  char byte;
  iovec iov{&byte, 1};
  alignas(cmsghdr) char control[CMSG_SPACE(sizeof(int))];
  msghdr msg{};
  msg.msg_iov = &iov;
  msg.msg_iovlen = 1;
  msg.msg_control = control;
  msg.msg_controllen = sizeof control;
  ssize_t n = recvmsg(sock, &msg, MSG_CMSG_CLOEXEC);
  int err = errno;
  close(sock);
  if (n < 0) return Status::IOError(path + ": recvmsg", err);
  cmsghdr* c = CMSG_FIRSTHDR(&msg);
  if (n == 0 || c == nullptr || c->cmsg_level != SOL_SOCKET || c->cmsg_type != SCM_RIGHTS)
    return Status::InvalidArgument(path + ": server sent no file descriptor");
  int fd;
  std::memcpy(&fd, CMSG_DATA(c), sizeof fd);
  return fd;
}

Status SendRegionFd(int sock, int fd) {
  char byte = 'D';
  iovec iov{&byte, 1};
  alignas(cmsghdr) char control[CMSG_SPACE(sizeof(int))] = {};
  msghdr msg{};
  msg.msg_iov = &iov;
  msg.msg_iovlen = 1;
  msg.msg_control = control;
  msg.msg_controllen = sizeof control;
  cmsghdr* c = CMSG_FIRSTHDR(&msg);
  c->cmsg_level = SOL_SOCKET;
  c->cmsg_type = SCM_RIGHTS;
  c->cmsg_len = CMSG_LEN(sizeof(int));
  std::memcpy(CMSG_DATA(c), &fd, sizeof fd);
  if (sendmsg(sock, &msg, MSG_NOSIGNAL) < 0) return Status::IOError("sendmsg", errno);
  return Status::OK();
}

}  // namespace daxfs
