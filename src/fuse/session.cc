#include "fuse/session.h"

#include <fcntl.h>
#include <poll.h>
#include <sys/mount.h>
#include <sys/prctl.h>
#include <syslog.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <memory>
#include <optional>
#include <vector>

#include "fuse/mount_ownership.h"
#include "fuse/region_guard.h"
#include "fuse/transport.h"
#include "fuse/uring.h"

namespace daxfs::fuse {
namespace {

std::atomic<bool> g_detached{false};

// --- Mounting ourselves (as root) -----------------------------------------
// mount(2) directly rather than through fusermount3, with the options a
// read-only image wants.

// Returns the /dev/fuse fd mounted at mountpoint, or -1 (errno set).
int MountDirect(const MountOptions& o, bool writable) {
  int fd = open("/dev/fuse", O_RDWR | O_CLOEXEC);
  if (fd < 0) return -1;
  char opts[256];
  std::snprintf(opts, sizeof opts, "fd=%d,rootmode=40000,user_id=%u,group_id=%u,default_permissions%s",
                fd, getuid(), getgid(), o.allow_other ? ",allow_other" : "");
  const std::string source = o.fsname.empty() ? o.image : o.fsname;
  const unsigned long flags =
      (writable ? 0 : MS_RDONLY) | (o.suid ? 0 : MS_NOSUID) | (o.dev ? 0 : MS_NODEV) | (o.exec ? 0 : MS_NOEXEC);
  if (mount(source.c_str(), o.mountpoint.c_str(), ("fuse." + o.fstype).c_str(), flags, opts) != 0) {
    int err = errno;
    close(fd);
    errno = err;
    return -1;
  }
  return fd;
}

// libfuse splits -o at commas and reads "\\," as a literal comma: an image
// named "a,b" must not become the options "fsname=a" and "b".
std::string EscapeOption(const std::string& value) {
  std::string out;
  for (char c : value) {
    if (c == ',' || c == '\\') out.push_back('\\');
    out.push_back(c);
  }
  return out;
}

}  // namespace

void LogProblem(const std::string& message) {
  if (g_detached) syslog(LOG_ERR, "%s", message.c_str());
  else std::fprintf(stderr, "daxfs-mount: %s\n", message.c_str());
}

int RunSession(const SessionSpec& spec, const MountOptions& options) {
  // Each worker's request buffer would otherwise become a 2 MiB transparent
  // huge page: N mounts x threads x 2 MiB of memory the image does not need.
  prctl(PR_SET_THP_DISABLE, 1, 0, 0, 0);

  // Options for the unprivileged path, where fusermount3 does the mount.
  std::vector<std::string> argv_store{
      "daxfs-mount", std::string(spec.writable ? "-orw" : "-oro") + ",default_permissions,subtype=" + options.fstype,
      "-ofsname=" + EscapeOption(options.fsname.empty() ? options.image : options.fsname)};
  if (options.allow_other) argv_store.push_back("-oallow_other");
  // libfuse mounts nosuid,nodev unless told otherwise; fusermount3 honours
  // suid and dev for root only (ApplyMountOptions cleared them for others).
  if (options.suid) argv_store.push_back("-osuid");
  if (options.dev) argv_store.push_back("-odev");
  if (!options.exec) argv_store.push_back("-onoexec");
  if (options.debug) argv_store.push_back("-d");
  std::vector<char*> argv;
  for (auto& s : argv_store) argv.push_back(s.data());
  fuse_args args = FUSE_ARGS_INIT(static_cast<int>(argv.size()), argv.data());
  fuse_session* se = fuse_session_new(&args, spec.ops, sizeof *spec.ops, spec.userdata);
  // Parsing may have replaced args' array with an allocated copy.
  fuse_opt_free_args(&args);
  if (se == nullptr) {
    std::fprintf(stderr, "daxfs-mount: cannot create FUSE session\n");
    return 1;
  }
  if (fuse_set_signal_handlers(se) != 0) {
    fuse_session_destroy(se);
    return 1;
  }
  // From here a fault on the image ends the session (SIGTERM) instead of the
  // process, so that whatever we mounted is unmounted.
  GuardRegion(spec.region);
  if (!spec.region_pinnable) BounceRepliesFrom(spec.region);
  bool own_mount = false;
  std::optional<MountOwnership> ours;
  auto close_session = [&] {
    fuse_remove_signal_handlers(se);
    fuse_session_destroy(se);
  };
  int fd = -1;
  if (geteuid() == 0) {
    fd = MountDirect(options, spec.writable);
    if (fd >= 0) {
      own_mount = true;
    } else if (errno != EPERM) {
      std::fprintf(stderr, "daxfs-mount: mount %s on %s: %s\n", options.image.c_str(),
                   options.mountpoint.c_str(), std::strerror(errno));
      close_session();
      return 1;
    }
  }
  if (!own_mount) {
    // Unprivileged: fusermount3 mounts and hands us the /dev/fuse fd.
    if (fuse_session_mount(se, options.mountpoint.c_str()) != 0) {
      close_session();
      return 1;
    }
    fd = fuse_session_fd(se);
  }
  // Remember which mount is ours before anything else can happen at the path.
  if (auto claim = MountOwnership::Claim(options.mountpoint); claim.ok()) {
    ours = *claim;
  } else {
    // Cannot happen short of running out of memory: the mount is microseconds old.
    std::fprintf(stderr, "daxfs-mount: %s\n", claim.status().message().c_str());
    if (own_mount) umount2(options.mountpoint.c_str(), MNT_DETACH | UMOUNT_NOFOLLOW);
    else fuse_session_unmount(se);
    if (own_mount) close(fd);
    close_session();
    return 1;
  }
  // Unmounts ours, and only while it is the top mount at the path: after an
  // external umount (the usual way a session ends) the path shows what was
  // there before us, and a mount made over ours later is not ours either.
  auto unmount = [&] {
    if (own_mount) {
      std::string error;
      if (ours->UnmountIfOurs(&error) == MountOwnership::State::kOurs) {
        if (!error.empty()) LogProblem(error);
        return;
      }
    } else if (ours->Check() == MountOwnership::State::kOurs) {
      fuse_session_unmount(se);
      return;
    }
    // POLLERR: the kernel ended the session (unmounted, aborted). Otherwise
    // our mount still exists somewhere: say why we leave it.
    pollfd p{fd, 0, 0};
    if (poll(&p, 1, 0) == 1 && (p.revents & POLLERR)) return;
    LogProblem(options.mountpoint + ": our mount is no longer the top one there (another mount covers it, or "
               "it was detached with umount -l); not unmounting anything");
  };
  if (fuse_session_custom_io(se, DaxfsTransport(), fd) != 0) {
    std::fprintf(stderr, "daxfs-mount: cannot attach to /dev/fuse\n");
    unmount();
    close_session();
    return 1;
  }
  // FUSE over io_uring: what can be checked before the mount is handed
  // over (uring=on fails here, with the exit status the caller sees).
  std::string ring_why;
  bool ring_possible = false;
  if (options.uring != UringMode::kOff) {
    ring_possible = KernelUringEnabled(&ring_why) && UringUsable(&ring_why);
    if (!ring_possible && options.uring == UringMode::kOn) {
      std::fprintf(stderr, "daxfs-mount: -o uring=on: %s\n", ring_why.c_str());
      unmount();
      close_session();
      return 1;
    }
  }
  if (!options.foreground) {
    openlog("daxfs-mount", LOG_PID, LOG_DAEMON);
    g_detached = true;
  }
  fuse_daemonize(options.foreground ? 1 : 0);
  // The ring's threads start after daemonizing (a fork keeps no threads).
  std::unique_ptr<UringServer> ring;
  if (ring_possible) {
    ring = UringServer::Create(se, fd, options.debug, spec.ring_offload, &ring_why);
    if (!ring && options.uring == UringMode::kOn) {
      LogProblem("-o uring=on: " + ring_why);
      unmount();
      close_session();
      return 1;
    }
  }
  const bool say = options.foreground;
  RequestUring(ring != nullptr, [&](bool asked, uint32_t max_write, uint32_t max_pages) {
    if (asked) {
      ring->Start(max_write, max_pages);
      if (say) std::fprintf(stderr, "daxfs-mount: transport: FUSE over io_uring (one queue per CPU)\n");
      return;
    }
    if (ring != nullptr) ring_why = "the kernel's INIT did not offer FUSE over io_uring";
    if (options.uring == UringMode::kOn) {
      LogProblem("-o uring=on: " + ring_why + "; unmounting");
      fuse_session_exit(se);
      return;
    }
    if (say)
      std::fprintf(stderr, "daxfs-mount: transport: /dev/fuse%s%s%s\n",
                   options.uring == UringMode::kOff ? " (uring=off)" : "", ring_why.empty() ? "" : " (",
                   ring_why.empty() ? "" : (ring_why + ")").c_str());
  });
  if (spec.started) spec.started(se);
  int rc;
  if (options.single_thread) {
    rc = fuse_session_loop(se);
  } else {
    fuse_loop_config* cfg = fuse_loop_cfg_create();
    // Requests are served from memory without blocking: a few threads per
    // CPU saturate the machine; more only cost stacks and buffers.
    const unsigned cpus = static_cast<unsigned>(std::max(1L, sysconf(_SC_NPROCESSORS_ONLN)));
    fuse_loop_cfg_set_max_threads(cfg, options.max_threads ? options.max_threads : 2 * cpus);
    rc = fuse_session_loop_mt(se, cfg);
    fuse_loop_cfg_destroy(cfg);
  }
  if (ring != nullptr) {
    ring->Stop();
    if (say) std::fprintf(stderr, "daxfs-mount: io_uring served %llu requests\n",
                          static_cast<unsigned long long>(ring->Served()));
  }
  RequestUring(false, nullptr);
  if (spec.stopping) spec.stopping();
  if (RegionLost() && g_detached) {
    // The guard could only write to stderr, which is /dev/null by now.
    LogProblem("the memory of " + options.image + " went away under " + options.mountpoint + "; unmounted");
  }
  unmount();
  close_session();
  return rc == 0 && !RegionLost() ? 0 : 1;
}

}  // namespace daxfs::fuse
