#include "fuse/mount_options.h"

#include <cstdint>
#include <map>

namespace daxfs::fuse {

const char kMountOptionsHelp[] =
    "Options (-o, comma separated; a repeat with another value is an error):\n"
    "  cache=direct         no page-cache copy per mount; N mounts share one image (default)\n"
    "  cache=kernel         kernel page cache (fastest re-reads, one copy per mount)\n"
    "  cache=auto           direct I/O for files >= auto_threshold bytes, page cache below\n"
    "  auto_threshold=SIZE  for cache=auto: bytes, or with a K, M or G suffix (default 64K)\n"
    "  allow_other          let other users access the mount (permissions are always checked)\n"
    "  verify               verify the metadata checksum before mounting\n"
    "  threads=N            at most N worker threads, 1 to 1024 (default: 2 per CPU)\n"
    "  fsname=NAME          source shown in /proc/mounts (default: the image)\n"
    "  objects=DIR          object directory of an object-store image (default: the one it\n"
    "                       records); as root its files are served by FUSE passthrough\n"
    "  overlay_lower        object-store images: be the metadata layer of an OverlayFS\n"
    "                       data-only lower stack (files carry trusted.overlay.metacopy and\n"
    "                       .redirect to their object); see README\n"
    "  uring=MODE           how requests travel: off (default) /dev/fuse only; auto uses\n"
    "                       FUSE over io_uring (Linux 6.14+, one queue per CPU served on\n"
    "                       that CPU) when the kernel offers it (as root: echo Y >\n"
    "                       /sys/module/fuse/parameters/enable_uring), /dev/fuse otherwise;\n"
    "                       on requires it (no mount without it)\n"
    "  debug                same as -d\n"
  "  branch=NAME          (branch region) mount branch NAME writable at the root\n"
  "  fstype=branchfs      /proc/mounts shows fuse.branchfs (for multikernel/branching);\n"
  "                       fstype=daxfs is the default. branchfs also makes the three\n"
  "                       options below default to what branchfs does: main=writable,\n"
  "                       siblings=first-wins, branches=listed\n"
  "  main=MODE            (branch region) readonly: main at the root is read-only (daxfs\n"
  "                       default); writable: writes at the root go straight into main,\n"
  "                       each published like a one-record commit\n"
  "  siblings=POLICY      (branch region) for branches made through .branchfs_ctl:\n"
  "                       merge (daxfs default): a sibling commits unless it touched what\n"
  "                       the parent changed since it was made; first-wins: once one\n"
  "                       sibling committed, the others' commits fail with ESTALE\n"
  "  branches=LISTING     (branch region) hidden (daxfs default): @NAME entries are found\n"
  "                       by lookup only; listed: readdir shows them too\n"
    "  suid, dev            honour set-user-ID bits and device files (root only)\n"
    "  nosuid, nodev        the defaults, as for FUSE; as mount.fuse.daxfs under mount(8),\n"
    "                       suid and dev are the defaults, as for mount.fuse3\n"
    "  noexec, exec         forbid or allow running programs from the mount (default exec)\n"
    "  ro                   the mount is always read-only; rw is ignored with a warning\n"
    "  Accepted with a warning that they have no effect on a read-only image:\n"
    "    atime, noatime, relatime, norelatime, strictatime, nostrictatime,\n"
    "    diratime, nodiratime, lazytime, nolazytime, sync, dirsync\n"
    "  Accepted for mount(8) and fstab: defaults, auto, noauto, user, nouser, users,\n"
    "    owner, group, nofail, _netdev, x-*, comment=*, async, default_permissions\n";

namespace {

constexpr unsigned kMaxThreads = 1024;

// Options meant for mount(8) or fstab, not for the filesystem: accepted
// silently, as mount.fuse3 does.
bool ForMountCommand(const std::string& o) {
  static const char* const kNames[] = {"defaults", "auto",    "noauto",  "user",  "nouser",
                                       "users",    "owner",   "group",   "nofail", "_netdev",
                                       "async",    "default_permissions"};
  for (const char* k : kNames)
    if (o == k) return true;
  return o.rfind("x-", 0) == 0 || o.rfind("comment=", 0) == 0;
}

bool IsAtimeOption(const std::string& k) {
  static const char* const kNames[] = {"atime",       "noatime",       "relatime", "norelatime",
                                       "strictatime", "nostrictatime", "diratime", "nodiratime",
                                       "lazytime",    "nolazytime"};
  for (const char* n : kNames)
    if (k == n) return true;
  return false;
}

bool IsDigit(char c) { return c >= '0' && c <= '9'; }

// Digits with an optional K, M or G suffix (powers of 1024), no overflow.
bool ParseSize(const std::string& s, uint64_t* out) {
  size_t i = 0;
  uint64_t v = 0;
  for (; i < s.size() && IsDigit(s[i]); ++i) {
    const unsigned d = static_cast<unsigned>(s[i] - '0');
    if (v > (UINT64_MAX - d) / 10) return false;
    v = v * 10 + d;
  }
  if (i == 0) return false;
  unsigned shift = 0;
  if (i < s.size()) {
    switch (s[i]) {
      case 'k': case 'K': shift = 10; break;
      case 'm': case 'M': shift = 20; break;
      case 'g': case 'G': shift = 30; break;
      default: return false;
    }
    if (++i != s.size()) return false;
    if (v > (UINT64_MAX >> shift)) return false;
  }
  *out = v << shift;
  return true;
}

// A whole number in [lo, hi], digits only (no sign, no spaces).
bool ParseCount(const std::string& s, unsigned lo, unsigned hi, unsigned* out) {
  if (s.empty() || s.size() > 9) return false;
  unsigned v = 0;
  for (char c : s) {
    if (!IsDigit(c)) return false;
    v = v * 10 + static_cast<unsigned>(c - '0');
  }
  if (v < lo || v > hi) return false;
  *out = v;
  return true;
}

}  // namespace

Status ApplyMountOptions(const std::vector<std::string>& opts, const OptionContext& ctx, MountOptions* o,
                         std::vector<std::string>* warnings) {
  auto bad = [](const std::string& opt, const std::string& why) {
    return Status::InvalidArgument("-o " + opt + ": " + why);
  };
  // The first spelling given per option family ("cache" -> "cache=auto",
  // "suid" -> "nosuid"): a repeat must say the same.
  std::map<std::string, std::string> given;
  auto once = [&](const std::string& family, const std::string& opt) {
    auto [it, fresh] = given.emplace(family, opt);
    if (!fresh && it->second != opt)
      return Status::InvalidArgument("conflicting options -o " + it->second + " and -o " + opt);
    return Status::OK();
  };
  bool suid = ctx.mount_helper, dev = ctx.mount_helper;
  for (const std::string& opt : opts) {
    if (opt.empty() || ForMountCommand(opt)) continue;
    const auto eq = opt.find('=');
    const std::string key = opt.substr(0, eq);
    const bool has_value = eq != std::string::npos;
    const std::string val = has_value ? opt.substr(eq + 1) : "";
    const bool is_flag = key == "allow_other" || key == "verify" || key == "debug" || key == "ro" ||
                         key == "overlay_lower" ||
                         key == "rw" || key == "suid" || key == "nosuid" || key == "dev" || key == "nodev" ||
                         key == "exec" || key == "noexec" || key == "sync" || key == "dirsync" ||
                         IsAtimeOption(key);
    if (is_flag && has_value) return bad(opt, "takes no value");
    if (key == "cache") {
      if (val == "direct") o->cache = CacheMode::kDirect;
      else if (val == "kernel") o->cache = CacheMode::kKernel;
      else if (val == "auto") o->cache = CacheMode::kAuto;
      else return bad(opt, "expected cache=direct, cache=kernel or cache=auto");
      DAXFS_RETURN_IF_ERROR(once(key, opt));
    } else if (key == "auto_threshold") {
      if (!ParseSize(val, &o->auto_threshold))
        return bad(opt, "expected a size in bytes: digits with an optional K, M or G suffix");
      DAXFS_RETURN_IF_ERROR(once(key, opt));
    } else if (key == "threads") {
      if (!ParseCount(val, 1, kMaxThreads, &o->max_threads))
        return bad(opt, "expected a whole number of threads from 1 to " + std::to_string(kMaxThreads));
      DAXFS_RETURN_IF_ERROR(once(key, opt));
    } else if (key == "fsname") {
      if (val.empty()) return bad(opt, "expected a name");
      o->fsname = val;
      DAXFS_RETURN_IF_ERROR(once(key, opt));
    } else if (key == "objects") {
      if (val.empty()) return bad(opt, "expected a directory");
      o->object_dir = val;
      DAXFS_RETURN_IF_ERROR(once(key, opt));
    } else if (key == "branch") {
      if (val.empty()) return bad(opt, "expected a branch name");
      o->branch = val;
      DAXFS_RETURN_IF_ERROR(once(key, opt));
    } else if (key == "fstype") {
      if (val != "daxfs" && val != "branchfs") return bad(opt, "expected fstype=daxfs or fstype=branchfs");
      o->fstype = val;
      DAXFS_RETURN_IF_ERROR(once(key, opt));
    } else if (key == "main") {
      if (val != "writable" && val != "readonly") return bad(opt, "expected main=writable or main=readonly");
      o->main_mode = val;
      DAXFS_RETURN_IF_ERROR(once(key, opt));
    } else if (key == "siblings") {
      if (val != "first-wins" && val != "merge") return bad(opt, "expected siblings=first-wins or siblings=merge");
      o->siblings = val;
      DAXFS_RETURN_IF_ERROR(once(key, opt));
    } else if (key == "branches") {
      if (val != "listed" && val != "hidden") return bad(opt, "expected branches=listed or branches=hidden");
      o->listing = val;
      DAXFS_RETURN_IF_ERROR(once(key, opt));
    } else if (key == "uring") {
      if (val == "auto") o->uring = UringMode::kAuto;
      else if (val == "on") o->uring = UringMode::kOn;
      else if (val == "off") o->uring = UringMode::kOff;
      else return bad(opt, "expected uring=auto, uring=on or uring=off");
      DAXFS_RETURN_IF_ERROR(once(key, opt));
    } else if (key == "allow_other") {
      o->allow_other = true;
    } else if (key == "verify") {
      o->verify = true;
    } else if (key == "overlay_lower") {
      o->overlay_lower = true;
    } else if (key == "debug") {
      o->debug = o->foreground = true;
    } else if (key == "ro" || key == "rw") {
      DAXFS_RETURN_IF_ERROR(once("ro", key));
      if (key == "rw")
        warnings->push_back("rw ignored: a daxfs image is read-only, so the mount is read-only "
                            "(say ro to silence this)");
    } else if (key == "suid" || key == "nosuid") {
      DAXFS_RETURN_IF_ERROR(once("suid", key));
      suid = key == "suid";
      if (suid && !ctx.privileged)
        warnings->push_back("suid ignored: only root may honour set-user-ID bits on a FUSE mount");
    } else if (key == "dev" || key == "nodev") {
      DAXFS_RETURN_IF_ERROR(once("dev", key));
      dev = key == "dev";
      if (dev && !ctx.privileged)
        warnings->push_back("dev ignored: only root may allow device files on a FUSE mount");
    } else if (key == "exec" || key == "noexec") {
      DAXFS_RETURN_IF_ERROR(once("exec", key));
      o->exec = key == "exec";
    } else if (IsAtimeOption(key)) {
      warnings->push_back(key + " ignored: access times of a read-only image never change");
    } else if (key == "sync" || key == "dirsync") {
      warnings->push_back(key + " ignored: nothing is ever written to a read-only image");
    } else if (ctx.sloppy) {
      warnings->push_back(opt + " ignored: unknown option (mount -s)");
    } else {
      return bad(opt, "unknown option (see --help)");
    }
  }
  const bool branchfs = o->fstype == "branchfs";
  if (o->main_mode.empty()) o->main_mode = branchfs ? "writable" : "readonly";
  if (o->siblings.empty()) o->siblings = branchfs ? "first-wins" : "merge";
  if (o->listing.empty()) o->listing = branchfs ? "listed" : "hidden";
  if (given.count("auto_threshold") && o->cache != CacheMode::kAuto)
    warnings->push_back(given["auto_threshold"] + " ignored: it applies to cache=auto only");
  // fusermount3 mounts every unprivileged FUSE filesystem nosuid,nodev.
  o->suid = suid && ctx.privileged;
  o->dev = dev && ctx.privileged;
  return Status::OK();
}

}  // namespace daxfs::fuse
