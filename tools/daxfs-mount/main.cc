// daxfs-mount: mount a daxfs image with FUSE.
// Installed also as mount.fuse.daxfs so that `mount -t fuse.daxfs IMG DIR`
// and /etc/fstab lines work.
#include "common/cli.h"
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <vector>

#include "daxfs/branch.h"
#include "daxfs/format.h"
#include "daxfs/image.h"
#include "fuse/daxfs_fuse.h"
#include "fuse/image_open.h"
#include "fuse/mount_options.h"

namespace {

const char* KindOf(mode_t mode) {
  if (S_ISREG(mode)) return "a regular file";
  if (S_ISCHR(mode)) return "a character device";
  if (S_ISBLK(mode)) return "a block device";
  if (S_ISFIFO(mode)) return "a FIFO";
  if (S_ISSOCK(mode)) return "a socket";
  if (S_ISLNK(mode)) return "a symbolic link";
  return "not a directory";
}

// What mount(8) passes to a helper besides -o: -f (fake: do everything but
// mount), -n (no mtab), -v (verbose), -s (sloppy: tolerate unknown options).
// Taken out of the arguments here, as mount.fuse3 does: as ours, -f and -s
// would mean foreground (mount(8) would wait for the unmount) and one thread.
struct HelperFlags {
  bool fake = false;
  bool sloppy = false;
};
HelperFlags TakeHelperFlags(std::vector<char*>* args) {
  HelperFlags h;
  std::vector<char*> kept;
  for (char* a : *args) {
    const std::string s = a;
    if (s.size() >= 2 && s[0] == '-' && s.find_first_not_of("fnvs", 1) == std::string::npos) {
      h.fake |= s.find('f') != std::string::npos;
      h.sloppy |= s.find('s') != std::string::npos;
      continue;
    }
    kept.push_back(a);
  }
  *args = kept;
  return h;
}

}  // namespace

int main(int argc, char** argv) {
  std::string prog = argv[0];
  prog = prog.substr(prog.rfind('/') + 1);
  const bool mount_helper = prog.rfind("mount.", 0) == 0;
  std::vector<char*> args(argv, argv + argc);
  HelperFlags helper;
  if (mount_helper) helper = TakeHelperFlags(&args);

  CLI::App app{std::string("Mount a daxfs image read-only with FUSE.\n\n") + daxfs::fuse::kMountOptionsHelp +
                   "IMAGE may be a path or a region descriptor (shm:/NAME, hugetlbfs:PATH, dax:DEV, ...).\n"
                   "Exit status: 0 mounted (with -f: served, then unmounted), 1 failure, 2 usage.",
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
  DAXFS_PARSE_OR_EXIT(app, static_cast<int>(args.size()), args.data());
  if (o.debug) o.foreground = true;
  if (!from_socket.empty()) {
    if (!o.image.empty() && o.mountpoint.empty()) std::swap(o.image, o.mountpoint);
    o.image = "memfd:" + from_socket;
  }
  if (o.image.empty() || o.mountpoint.empty()) {
    std::fprintf(stderr, "%s: need IMAGE and MOUNTPOINT (or --from-socket SOCKET MOUNTPOINT)\n", prog.c_str());
    return 2;
  }

  daxfs::fuse::OptionContext octx;
  octx.mount_helper = mount_helper;
  octx.sloppy = helper.sloppy;
  octx.privileged = geteuid() == 0;
  std::vector<std::string> warnings;
  if (auto st = daxfs::fuse::ApplyMountOptions(opts, octx, &o, &warnings); !st.ok()) {
    std::fprintf(stderr, "%s: %s\n", prog.c_str(), st.message().c_str());
    return 2;
  }
  for (const std::string& w : warnings) std::fprintf(stderr, "%s: warning: %s\n", prog.c_str(), w.c_str());

  // The daemon leaves its working directory when it detaches and finds its
  // mount by path when it ends: keep absolute paths.
  if (char* abs = realpath(o.mountpoint.c_str(), nullptr)) {
    o.mountpoint = abs;
    std::free(abs);
  } else {
    std::fprintf(stderr, "%s: mountpoint %s: %s\n", prog.c_str(), o.mountpoint.c_str(), std::strerror(errno));
    return 1;
  }
  struct stat mst;
  if (stat(o.mountpoint.c_str(), &mst) != 0) {
    std::fprintf(stderr, "%s: mountpoint %s: %s\n", prog.c_str(), o.mountpoint.c_str(), std::strerror(errno));
    return 1;
  }
  if (!S_ISDIR(mst.st_mode)) {
    std::fprintf(stderr, "%s: mountpoint %s is %s; a daxfs image mounts on a directory\n", prog.c_str(),
                 o.mountpoint.c_str(), KindOf(mst.st_mode));
    return 1;
  }
  if (o.fsname.empty()) {
    if (char* abs = realpath(o.image.c_str(), nullptr)) {
      o.fsname = abs;
      std::free(abs);
    }
  }
  if (helper.fake) return 0;  // mount -f: checked, not mounted
  daxfs::OpenOptions oo;
  oo.verify_metadata = o.verify;
  oo.object_dir = o.object_dir;
  auto image = daxfs::fuse::OpenImageForMount(o.image, oo);
  if (!image.ok()) {
    struct stat ist;
    if (stat(o.image.c_str(), &ist) == 0 && S_ISDIR(ist.st_mode)) {
      // Usually IMAGE and MOUNTPOINT given the other way round.
      std::fprintf(stderr, "%s: %s is a directory, not a daxfs image (usage: %s IMAGE MOUNTPOINT)\n",
                   prog.c_str(), o.image.c_str(), prog.c_str());
    } else {
      std::fprintf(stderr, "%s: %s\n", prog.c_str(), image.status().ToString().c_str());
    }
    return 1;
  }
  // Options for object-store images do nothing elsewhere: say so rather
  // than mount as if they had been applied.
  const bool branch_region = (*image)->info().features_incompat & daxfs::format::kFeatureBranchRegion;
  if ((o.overlay_lower || !o.object_dir.empty()) && (branch_region || !(*image)->info().objects)) {
    std::fprintf(stderr, "%s: -o %s needs an object-store image (mkdaxfs --objects); %s is %s\n", prog.c_str(),
                 o.overlay_lower ? "overlay_lower" : "objects=DIR", o.image.c_str(),
                 branch_region ? "a branch region" : "an image that holds its own data");
    return 2;
  }
  if (branch_region) {
    // A branch region: main at the root, branches at /@NAME/ (or -o branch=).
    auto store = daxfs::BranchStore::Open(o.image);
    image->reset();
    if (!store.ok()) {
      std::fprintf(stderr, "%s: %s\n", prog.c_str(), store.status().ToString().c_str());
      return 1;
    }
    return daxfs::fuse::ServeBranches(std::move(*store), o);
  }
  if (!o.branch.empty()) {
    std::fprintf(stderr, "%s: -o branch=%s: %s is not a branch region\n", prog.c_str(), o.branch.c_str(),
                 o.image.c_str());
    return 2;
  }
  return daxfs::fuse::Serve(std::move(*image), o);
}
