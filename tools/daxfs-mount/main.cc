// daxfs-mount: mount a daxfs image with FUSE.
// Installed also as mount.fuse.daxfs so that `mount -t fuse.daxfs IMG DIR`
// and /etc/fstab lines work.
#include "common/cli.h"
#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>

#include "daxfs/image.h"
#include "fuse/daxfs_fuse.h"

namespace {

// Options mount(8) passes that mean nothing for a read-only FUSE image.
bool IgnoredMountOption(const std::string& o) {
  static const char* kIgnored[] = {"ro", "rw", "defaults", "auto", "noauto", "user", "nouser",
                                   "users", "nofail", "_netdev", "suid", "nosuid", "dev", "nodev",
                                   "exec", "noexec", "atime", "noatime", "relatime", "default_permissions"};
  for (const char* k : kIgnored)
    if (o == k) return true;
  return o.rfind("x-", 0) == 0 || o.rfind("comment=", 0) == 0;
}

}  // namespace

int main(int argc, char** argv) {
  std::string prog = argv[0];
  prog = prog.substr(prog.rfind('/') + 1);

  CLI::App app{
      "Mount a daxfs image read-only with FUSE.\n\n"
      "Options (-o, comma separated):\n"
      "  cache=direct   no page-cache copy per mount; N mounts share one image (default)\n"
      "  cache=kernel   kernel page cache (fastest re-reads, one copy per mount)\n"
      "  cache=auto     direct I/O for files >= auto_threshold bytes (default 65536)\n"
      "  allow_other    let other users access the mount\n"
      "  verify         verify the metadata checksum before mounting\n"
      "  threads=N      at most N worker threads\n"
      "  fsname=NAME    source name shown in /proc/mounts\n"
      "IMAGE may be a path or a region descriptor (shm:/NAME, hugetlbfs:PATH, dax:DEV, ...).",
      prog};
  daxfs::fuse::MountOptions o;
  std::vector<std::string> opts;
  std::string from_socket;
  app.add_option("IMAGE", o.image, "Image file or region descriptor");
  app.add_option("--from-socket", from_socket, "Get the image from `daxfs serve` at this socket");
  app.add_option("MOUNTPOINT", o.mountpoint, "Directory to mount on");
  app.add_option("-o", opts, "Mount options (see above)")->delimiter(',')->allow_extra_args(false);
  app.add_flag("-f,--foreground", o.foreground, "Stay in the foreground");
  app.add_flag("-d,--debug", o.debug, "Print FUSE requests (implies -f)");
  app.add_flag("-s,--single-thread", o.single_thread, "Serve requests on one thread");
  app.set_version_flag("-V,--version", "daxfs-mount 0.1.0");
  DAXFS_PARSE_OR_EXIT(app, argc, argv);
  if (o.debug) o.foreground = true;
  if (!from_socket.empty()) {
    if (!o.image.empty() && o.mountpoint.empty()) std::swap(o.image, o.mountpoint);
    o.image = "memfd:" + from_socket;
  }
  if (o.image.empty() || o.mountpoint.empty()) {
    std::fprintf(stderr, "%s: need IMAGE and MOUNTPOINT (or --from-socket SOCKET MOUNTPOINT)\n", prog.c_str());
    return 2;
  }

  for (const std::string& opt : opts) {
    if (opt.empty() || IgnoredMountOption(opt)) continue;
    const auto eq = opt.find('=');
    const std::string key = opt.substr(0, eq);
    const std::string val = eq == std::string::npos ? "" : opt.substr(eq + 1);
    if (key == "cache") {
      if (val == "direct") o.cache = daxfs::fuse::CacheMode::kDirect;
      else if (val == "kernel") o.cache = daxfs::fuse::CacheMode::kKernel;
      else if (val == "auto") o.cache = daxfs::fuse::CacheMode::kAuto;
      else {
        std::fprintf(stderr, "%s: cache=%s: expected direct, kernel or auto\n", prog.c_str(), val.c_str());
        return 2;
      }
    } else if (key == "auto_threshold") {
      o.auto_threshold = std::strtoull(val.c_str(), nullptr, 0);
    } else if (key == "allow_other") {
      o.allow_other = true;
    } else if (key == "verify") {
      o.verify = true;
    } else if (key == "threads") {
      o.max_threads = static_cast<unsigned>(std::strtoul(val.c_str(), nullptr, 10));
    } else if (key == "fsname") {
      o.fsname = val;
    } else if (key == "debug") {
      o.debug = o.foreground = true;
    } else {
      std::fprintf(stderr, "%s: unknown mount option '%s'\n", prog.c_str(), opt.c_str());
      return 2;
    }
  }
  // The daemon leaves its working directory when it detaches and unmounts
  // by path when it ends: keep absolute paths.
  if (char* abs = realpath(o.mountpoint.c_str(), nullptr)) {
    o.mountpoint = abs;
    std::free(abs);
  } else {
    std::fprintf(stderr, "%s: mountpoint %s: %s\n", prog.c_str(), o.mountpoint.c_str(), std::strerror(errno));
    return 1;
  }
  if (o.fsname.empty()) {
    if (char* abs = realpath(o.image.c_str(), nullptr)) {
      o.fsname = abs;
      std::free(abs);
    }
  }
  daxfs::OpenOptions oo;
  oo.verify_metadata = o.verify;
  auto image = daxfs::Image::Open(o.image, oo);
  if (!image.ok()) {
    std::fprintf(stderr, "%s: %s\n", prog.c_str(), image.status().ToString().c_str());
    return 1;
  }
  return daxfs::fuse::Serve(std::move(*image), o);
}
