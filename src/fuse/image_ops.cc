// Request handlers for a read-only image (infinite cache timeouts).
#define FUSE_USE_VERSION 314
#include "fuse/daxfs_fuse.h"
#include "fuse/session.h"

#include <fcntl.h>
#include <poll.h>
#include <fuse_lowlevel.h>
#include <sys/mount.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <sys/sysmacros.h>
#include <syslog.h>
#include <unistd.h>
#include <xxhash.h>

#include <algorithm>
#include <atomic>
#include <cstdio>
#include <cstring>
#include <optional>
#include <set>
#include <string_view>
#include <vector>

#include "daxfs/format.h"
#include "format/overlay_xattrs.h"
#include "fuse/passthrough.h"
#include "fuse/region_guard.h"
#include "fuse/replies.h"
#include "fuse/stat_readers.h"
#include "fuse/transport.h"

namespace daxfs::fuse {
namespace {

// The image never changes under a mount, so the kernel may cache names and
// attributes for as long as it likes.
constexpr double kForever = 365.0 * 86400.0;

struct Context {
  std::shared_ptr<const Image> image;
  MountOptions options;
  Ino root = 1;
  uint32_t generation = 1;  // of every node id: ImageGeneration
  bool no_opendir = false;  // the kernel accepts ENOSYS for OPENDIR
  // The image has no xattr area: nothing to find, so GETXATTR answers
  // ENOSYS (the kernel stops asking for the whole connection) and
  // LISTXATTR an empty list (OpGetxattr says why).
  bool no_xattrs = false;
  // Every xattr name some inode carries (names_known: the area could be
  // walked), to answer probes for names no inode has (XattrUnsupported).
  std::set<std::string, std::less<>> xattr_names;
  bool names_known = false;
  StatReaders stat_readers;
  // Object-store images: the kernel serves file data from the object files
  // (FUSE passthrough); false when unavailable, or after the kernel refused.
  std::atomic<bool> passthrough{false};
  Backings backings;
  bool overlay_lower = false;  // MountOptions::overlay_lower
};

// OverlayFS data-only lower layers (kernel 6.5+, as composefs uses them):
// a metacopy file whose absolute redirect names its data in the data layer.
using format::kOverlayMetacopy;
using format::kOverlayRedirect;

// The overlay xattr `name` of `ino`, if it has one.
std::optional<std::string> OverlayXattr(const Context& c, Ino ino, std::string_view name) {
  if (!c.overlay_lower || (name != kOverlayMetacopy && name != kOverlayRedirect)) return std::nullopt;
  auto object = c.image->object_name(ino);
  if (!object.ok()) return std::nullopt;  // not a file with data
  if (name == kOverlayMetacopy) return std::string();
  return format::OverlayRedirect(*object);
}

// fi->fh of files opened with a backing file (0 for every other open).
constexpr uint64_t kPassthroughFh = 1;

// What an object-store mount loses without passthrough, said once.
void SayPassthroughLost(const std::string& why) {
  LogProblem("FUSE passthrough unavailable (" + why + "): file data is served through the daemon: "
             "a round trip per read with cache=direct, a page-cache copy per mount with "
             "cache=kernel, and mmap does not share the object files' pages");
}

constexpr std::string_view kAclAccess = "system.posix_acl_access";
constexpr std::string_view kAclDefault = "system.posix_acl_default";

bool HasName(const Context& c, std::string_view name) {
  return !c.names_known || c.xattr_names.find(name) != c.xattr_names.end();
}

bool ImageHasAcls(const Context& c) { return HasName(c, kAclAccess) || HasName(c, kAclDefault); }

// `ls -l` asks every entry for security.selinux and its POSIX ACLs, and FUSE
// caches no xattr answer, so an ENODATA costs a round trip per entry and per
// `ls`. EOPNOTSUPP ("this filesystem does not support that attribute") is
// remembered by ls (and libselinux, libacl users) for the whole device
// after the first answer. It is the truth for an LSM label or an ACL that no
// inode of this image carries: the image has no store for them. Other names
// (user.*, trusted.*) answer ENODATA per inode as usual.
// The two ACL names go together: ls asks for both and takes one EOPNOTSUPP
// as "this device has no ACLs", which must not hide the other kind.
bool XattrUnsupported(const Context& c, std::string_view name) {
  if (name == kAclAccess || name == kAclDefault) return !ImageHasAcls(c);
  return name.starts_with("security.") && !HasName(c, name);
}

Context& Ctx(fuse_req_t req) { return *static_cast<Context*>(fuse_req_userdata(req)); }

// FUSE's root is always 1; swap it with the image's root if that differs.
Ino ToImage(const Context& c, fuse_ino_t ino) {
  if (ino == FUSE_ROOT_ID) return c.root;
  if (ino == c.root) return FUSE_ROOT_ID;
  return ino;
}
fuse_ino_t ToFuse(const Context& c, Ino ino) { return ToImage(c, ino); }

// Whether reads of this inode bypass the kernel page cache.
bool ServedDirect(const Context& c, const Attr& a) {
  if (!S_ISREG(a.mode)) return false;
  // The kernel reads the object file itself (page-cache reads).
  if (c.passthrough && c.image->info().objects) return false;
  switch (c.options.cache) {
    case CacheMode::kDirect: return true;
    case CacheMode::kKernel: return false;
    case CacheMode::kAuto: return a.size >= c.options.auto_threshold;
  }
  return false;
}

void FillStat(const Context& c, const Attr& a, struct stat* st) {
  std::memset(st, 0, sizeof *st);
  st->st_ino = ToFuse(c, a.ino);
  st->st_mode = a.mode;
  st->st_nlink = a.nlink;
  st->st_uid = a.uid;
  st->st_gid = a.gid;
  st->st_size = static_cast<off_t>(a.size);
  st->st_blocks = static_cast<blkcnt_t>(a.blocks);
  // Tools size their reads by st_blksize (cat, cp: max(128 KiB, blksize)).
  // Direct I/O wants large reads (each is a round trip); page-cache reads
  // want a buffer that stays in the CPU cache (1 MiB ones ran 3x slower).
  // Directories: glibc sizes its getdents buffer by st_blksize (at least
  // 32 KiB), and the kernel allocates and zeroes that much for every
  // READDIR(PLUS) request, including the empty one that ends a listing:
  // with 128 KiB, clearing pages was the largest cost of a cold `find`.
  if (S_ISDIR(a.mode))
    st->st_blksize = 4096;
  else
    st->st_blksize = ServedDirect(c, a) ? 1 << 20 : 128 << 10;
  st->st_rdev = makedev(a.rdev_major, a.rdev_minor);
  st->st_mtim.tv_sec = a.mtime_sec;
  st->st_mtim.tv_nsec = a.mtime_nsec;
  st->st_atim = st->st_mtim;
  st->st_ctim = st->st_mtim;
}


bool FillEntry(fuse_req_t req, Ino ino, fuse_entry_param* e) {
  Context& c = Ctx(req);
  auto a = c.image->stat(ino);
  if (!a.ok()) {
    ReplyStatus(req, a.status());
    return false;
  }
  std::memset(e, 0, sizeof *e);
  e->ino = ToFuse(c, ino);
  e->generation = c.generation;
  e->attr_timeout = kForever;
  e->entry_timeout = kForever;
  FillStat(c, *a, &e->attr);
  return true;
}

void OpInit(void* userdata, fuse_conn_info* conn) {
  auto* c = static_cast<Context*>(userdata);
  auto want = [conn](unsigned cap) {
    if (conn->capable & cap) conn->want |= cap;
  };
  want(FUSE_CAP_READDIRPLUS);
  want(FUSE_CAP_CACHE_SYMLINKS);
  want(FUSE_CAP_EXPORT_SUPPORT);
  want(FUSE_CAP_PARALLEL_DIROPS);
  // Directories need no open: without OPENDIR the kernel caches them
  // (FOPEN_KEEP_CACHE | FOPEN_CACHE_DIR) and saves two round trips per
  // opendir. Files need OPEN only to ask for direct I/O.
  want(FUSE_CAP_NO_OPENDIR_SUPPORT);
  c->no_opendir = conn->want & FUSE_CAP_NO_OPENDIR_SUPPORT;
  if (c->passthrough && !KernelOffersPassthrough()) {
    c->passthrough = false;
    SayPassthroughLost("this kernel does not offer it; it needs 6.9+ with CONFIG_FUSE_PASSTHROUGH");
  }
  // The transport adds FUSE_PASSTHROUGH to our INIT reply.
  RequestPassthrough(c->passthrough);
  // Passthrough needs OPEN: that is where the backing file is named.
  if (c->options.cache == CacheMode::kKernel && !c->passthrough) want(FUSE_CAP_NO_OPEN_SUPPORT);
  // The kernel answers system.posix_acl_* itself and caches the answer per
  // inode (the image cannot change), instead of a GETXATTR round trip for
  // every `ls -l` of every file; ACLs are then also enforced (we always
  // mount with default_permissions). Needless without xattrs (the first
  // ENOSYS switches GETXATTR off altogether) and without ACLs (answered
  // EOPNOTSUPP, see XattrUnsupported).
  if (!c->no_xattrs && ImageHasAcls(*c)) want(FUSE_CAP_POSIX_ACL);
  conn->want &= ~FUSE_CAP_READDIRPLUS_AUTO;  // always plus: attributes are free
  conn->want &= ~FUSE_CAP_AUTO_INVAL_DATA;   // the image never changes
  // Large requests: libfuse derives max_pages from max_write, which bounds
  // direct-I/O reads too.
  conn->max_write = 1u << 20;
  conn->max_read = 0;
  if (c->options.cache != CacheMode::kDirect) conn->max_readahead = 1u << 20;
}

void OpLookup(fuse_req_t req, fuse_ino_t parent, const char* name) {
  Context& c = Ctx(req);
  const std::string_view nm = name;
  if (nm == "." || nm == "..") {
    // Only the kernel's export operations ask these, for a node id taken
    // from a file handle (NFS, open_by_handle_at, OverlayFS decoding its
    // lower layer's handles): "." of a file of any type, ".." of a
    // directory. A node id this image does not have (a handle from
    // another image) is stale, not damage.
    const Ino ino = ToImage(c, parent);
    if (ino == 0 || ino > c.image->info().inode_count) return (void)fuse_reply_err(req, ESTALE);
    if (nm == ".") {
      fuse_entry_param e;
      if (FillEntry(req, ino, &e)) fuse_reply_entry(req, &e);
      return;
    }
  }
  auto ino = c.image->lookup(ToImage(c, parent), name);
  if (!ino.ok()) {
    if (ino.status().IsNotFound()) {
      // Negative entries are cacheable forever too.
      fuse_entry_param e{};
      e.entry_timeout = kForever;
      fuse_reply_entry(req, &e);
      return;
    }
    return ReplyStatus(req, ino.status());
  }
  fuse_entry_param e;
  if (!FillEntry(req, *ino, &e)) return;
  if (!S_ISDIR(e.attr.st_mode)) c.stat_readers.Note(fuse_req_ctx(req)->pid);
  fuse_reply_entry(req, &e);
}

void OpGetattr(fuse_req_t req, fuse_ino_t ino, fuse_file_info*) {
  Context& c = Ctx(req);
  auto a = c.image->stat(ToImage(c, ino));
  if (!a.ok()) return ReplyStatus(req, a.status());
  struct stat st;
  FillStat(c, *a, &st);
  fuse_reply_attr(req, &st, kForever);
}

void OpReadlink(fuse_req_t req, fuse_ino_t ino) {
  Context& c = Ctx(req);
  auto t = c.image->readlink(ToImage(c, ino));
  if (!t.ok()) return ReplyStatus(req, t.status());
  fuse_reply_readlink(req, std::string(*t).c_str());
}

// Object errors (missing, damaged) are EIO to the reader and said in the log.
void ReplyObjectError(fuse_req_t req, const Status& s) {
  LogProblem(s.message());
  fuse_reply_err(req, EIO);
}

void OpOpen(fuse_req_t req, fuse_ino_t ino, fuse_file_info* fi) {
  Context& c = Ctx(req);
  if (c.options.cache == CacheMode::kKernel && !c.image->info().objects)
    return (void)fuse_reply_err(req, ENOSYS);
  if ((fi->flags & O_ACCMODE) != O_RDONLY || (fi->flags & O_TRUNC)) return (void)fuse_reply_err(req, EROFS);
  const Ino image_ino = ToImage(c, ino);
  auto a = c.image->stat(image_ino);
  if (!a.ok()) return ReplyStatus(req, a.status());
  if (S_ISDIR(a->mode)) return (void)fuse_reply_err(req, EISDIR);
  if (c.image->info().objects && S_ISREG(a->mode) && a->size > 0) {
    auto passthrough = [&](int32_t id) {
      fi->fh = kPassthroughFh;
      fi->noflush = 1;
      ReplyOpenPassthrough(req, fi, id);
    };
    if (c.passthrough) {
      bool refused = false;
      auto id = c.backings.Acquire(*c.image, image_ino, DeviceFd(), &refused);
      if (id.ok()) return passthrough(*id);
      // A bad object fails this open only (EIO).
      if (!refused) return ReplyObjectError(req, id.status());
      // The kernel refused the backing file itself: serve through the daemon
      // from now on (the object was verified before the kernel was asked).
      if (c.passthrough.exchange(false)) SayPassthroughLost(id.status().message());
    } else {
      // A missing or damaged object fails the open (EIO), as it does with
      // passthrough, instead of the first read (with cache=kernel, OPEN
      // goes off after this open: later files fail at their first read).
      auto fd = c.image->open_object(image_ino);
      if (!fd.ok()) return ReplyObjectError(req, fd.status());
      close(*fd);
    }
    // Passthrough went off while this inode is open through it: it stays
    // there (the kernel refuses a cached open of an inode in passthrough
    // mode, ETXTBSY).
    if (auto id = c.backings.Reuse(image_ino)) return passthrough(*id);
  }
  // ENOSYS turns OPEN off for the whole mount: not while passthrough needs
  // it, nor while files opened through it are open (their inodes' opens
  // must keep coming here).
  if (c.options.cache == CacheMode::kKernel && !c.passthrough && c.backings.Empty())
    return (void)fuse_reply_err(req, ENOSYS);
  if (ServedDirect(c, *a)) fi->direct_io = 1;
  else fi->keep_cache = 1;
  fi->noflush = 1;
  fuse_reply_open(req, fi);
}

void OpRelease(fuse_req_t req, fuse_ino_t ino, fuse_file_info* fi) {
  Context& c = Ctx(req);
  if (fi->fh == kPassthroughFh) c.backings.Release(ToImage(c, ino), DeviceFd());
  fuse_reply_err(req, 0);
}

void OpRead(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off, fuse_file_info*) {
  Context& c = Ctx(req);
  if (c.image->info().objects) {
    // Pinned: other threads may map other objects meanwhile.
    auto data = c.image->pin(ToImage(c, ino));
    if (!data.ok()) return ReplyObjectError(req, data.status());
    const auto bytes = data->bytes;
    const size_t at = std::min(bytes.size(), static_cast<size_t>(off));
    const size_t n = std::min(bytes.size() - at, size);
    return (void)fuse_reply_buf(req, reinterpret_cast<const char*>(bytes.data() + at), n);
  }
  // Zero-copy on our side: the reply points straight into the mapping.
  auto data = c.image->read(ToImage(c, ino), static_cast<uint64_t>(off), size);
  if (!data.ok()) return ReplyStatus(req, data.status());
  ProbeTail(*data);
  fuse_reply_buf(req, reinterpret_cast<const char*>(data->data()), data->size());
}

// Only reached on kernels without FUSE_CAP_NO_OPENDIR_SUPPORT.
void OpOpendir(fuse_req_t req, fuse_ino_t ino, fuse_file_info* fi) {
  Context& c = Ctx(req);
  if (c.no_opendir) return (void)fuse_reply_err(req, ENOSYS);
  auto d = c.image->opendir(ToImage(c, ino));
  if (!d.ok()) return ReplyStatus(req, d.status());
  fi->cache_readdir = 1;
  fi->keep_cache = 1;
  fuse_reply_open(req, fi);
}

void DoReaddir(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off, bool plus) {
  Context& c = Ctx(req);
  const Ino dir = ToImage(c, ino);
  auto d = c.image->opendir(dir);
  if (!d.ok()) return ReplyStatus(req, d.status());
  auto parent = c.image->parent(dir);
  if (!parent.ok()) return ReplyStatus(req, parent.status());
  // Not zeroed: the kernel asks for the reader's getdents buffer (32 KiB
  // or more) and most replies fill a few hundred bytes; clearing it cost
  // more than building the entries.
  std::unique_ptr<char[]> buf(new char[size]);
  size_t used = 0;
  const bool all_attrs = plus && c.stat_readers.Has(fuse_req_ctx(req)->pid);
  for (size_t i = static_cast<size_t>(off); i < d->size() + 2; ++i) {
    std::string name;
    fuse_entry_param e{};
    if (i < 2) {
      name = i == 0 ? "." : "..";
      e.attr.st_ino = ToFuse(c, i == 0 ? dir : *parent);
      e.attr.st_mode = S_IFDIR;
    } else {
      auto ent = d->entry(i - 2);
      if (!ent.ok()) return ReplyStatus(req, ent.status());
      name = std::string(ent->name);
      if (plus && (all_attrs || S_ISDIR(ent->mode))) {
        if (!FillEntry(req, ent->ino, &e)) return;
      } else {
        // Without a node id the kernel lists the name and links nothing.
        // Directories always come with theirs: walkers open them next.
        e.attr.st_ino = ToFuse(c, ent->ino);
        e.attr.st_mode = ent->mode;
      }
    }
    const off_t next = static_cast<off_t>(i + 1);
    const size_t need =
        plus ? fuse_add_direntry_plus(req, buf.get() + used, size - used, name.c_str(), &e, next)
             : fuse_add_direntry(req, buf.get() + used, size - used, name.c_str(), &e.attr, next);
    if (need > size - used) break;
    used += need;
  }
  fuse_reply_buf(req, buf.get(), used);
}

void OpReaddir(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off, fuse_file_info*) {
  DoReaddir(req, ino, size, off, false);
}
void OpReaddirplus(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off, fuse_file_info*) {
  DoReaddir(req, ino, size, off, true);
}

void OpStatfs(fuse_req_t req, fuse_ino_t) {
  Context& c = Ctx(req);
  const auto& info = c.image->info();
  struct statvfs s{};
  s.f_bsize = format::kBlockSize;
  s.f_frsize = format::kBlockSize;
  s.f_blocks = info.total_size / format::kBlockSize;
  s.f_files = info.inode_count;
  s.f_namemax = format::kNameMax;
  s.f_flag = ST_RDONLY;
  fuse_reply_statfs(req, &s);
}

// Without an xattr area no inode has any. GETXATTR answers ENOSYS: the
// kernel then sets fc->no_getxattr and answers every later getxattr on this
// mount with EOPNOTSUPP itself, as a filesystem without xattr support does
// (`ls -l` asks for security.selinux and both POSIX ACLs of every entry and
// takes EOPNOTSUPP as "none"). LISTXATTR answers an empty list instead:
// the kernel's no_listxattr would turn every listxattr into EOPNOTSUPP,
// which `getfattr -d` reports as an error for each file; listing is rare
// (getfattr, cp -a, tar --xattrs), `ls` does not list.
void OpGetxattr(fuse_req_t req, fuse_ino_t ino, const char* name, size_t size) {
  Context& c = Ctx(req);
  // -d: libfuse logs the opcode, not which attribute was asked for.
  if (c.options.debug) std::fprintf(stderr, "   getxattr %s\n", name);
  if (auto v = OverlayXattr(c, ToImage(c, ino), name)) return ReplyXattr(req, *v, size);
  if (c.no_xattrs) return (void)fuse_reply_err(req, ENOSYS);
  if (XattrUnsupported(c, name)) return (void)fuse_reply_err(req, EOPNOTSUPP);
  // As an OverlayFS layer the tree's own trusted.overlay.* are escaped, so
  // that OverlayFS shows them instead of acting on them (as the EROFS view).
  std::string tree_name = name;
  if (c.overlay_lower && tree_name.starts_with(format::kOverlayPrefix)) {
    tree_name = format::UnescapeOverlayXattr(name);
    if (tree_name.empty()) return (void)fuse_reply_err(req, ENODATA);
  }
  auto v = c.image->getxattr(ToImage(c, ino), tree_name);
  if (!v.ok()) return ReplyStatus(req, v.status());
  ReplyXattr(req, *v, size);
}

void OpListxattr(fuse_req_t req, fuse_ino_t ino, size_t size) {
  Context& c = Ctx(req);
  if (c.no_xattrs) {
    // size 0 asks for the length (a getxattr_out), otherwise the names.
    if (size == 0) return (void)fuse_reply_xattr(req, 0);
    return (void)fuse_reply_buf(req, nullptr, 0);
  }
  std::string names;
  Status st = c.image->list_xattrs(ToImage(c, ino), [&](std::string_view n, std::span<const std::byte>) {
    names.append(c.overlay_lower ? format::EscapeOverlayXattr(n) : std::string(n));
    names.push_back('\0');
  });
  if (!st.ok()) return ReplyStatus(req, st);
  for (std::string_view n : {kOverlayMetacopy, kOverlayRedirect})
    if (OverlayXattr(c, ToImage(c, ino), n)) names.append(n).push_back('\0');
  ReplyXattr(req, names, size);
}

const fuse_lowlevel_ops kOps = [] {
  fuse_lowlevel_ops ops{};
  ops.init = OpInit;
  ops.lookup = OpLookup;
  ops.getattr = OpGetattr;
  ops.readlink = OpReadlink;
  ops.open = OpOpen;
  ops.read = OpRead;
  ops.release = OpRelease;
  ops.opendir = OpOpendir;
  ops.readdir = OpReaddir;
  ops.readdirplus = OpReaddirplus;
  ops.statfs = OpStatfs;
  ops.getxattr = OpGetxattr;
  ops.listxattr = OpListxattr;
  return ops;
}();

// File handles carry a node id and this generation (the kernel checks
// both): a hash of the superblock and the inode table, so that a handle
// from another image (one mounted here before, or exported by NFS) is
// stale instead of naming whatever has its inode number here, and one from
// an identical rebuild (mkdaxfs is reproducible) still opens its file.
uint32_t ImageGeneration(const Image& image) {
  const auto bytes = image.region().bytes();
  const auto& info = image.info();
  const uint64_t table = uint64_t{info.inode_count} * format::kInodeSize;
  uint64_t h = XXH3_64bits(bytes.data(), std::min<size_t>(bytes.size(), format::kBlockSize));
  if (info.inode_table_end <= bytes.size() && table <= info.inode_table_end)
    h = XXH3_64bits_withSeed(bytes.data() + info.inode_table_end - table, table, h);
  const auto g = static_cast<uint32_t>(h ^ (h >> 32));
  return g != 0 ? g : 1;
}

}  // namespace

int Serve(std::shared_ptr<const Image> image, const MountOptions& options) {
  Context ctx;
  ctx.image = std::move(image);
  ctx.options = options;
  ctx.root = ctx.image->root();
  ctx.generation = ImageGeneration(*ctx.image);
  ctx.overlay_lower = options.overlay_lower;
  if (ctx.overlay_lower && !ctx.image->info().objects) {
    LogProblem(options.image + ": overlay_lower needs an object-store image (mkdaxfs --objects)");
    return 1;
  }
  // Overlay xattrs exist even where the image stores none.
  ctx.no_xattrs = !(ctx.image->info().features_compat & format::kFeatureXattrs) && !ctx.overlay_lower;
  if (!ctx.no_xattrs) {
    if (auto names = ctx.image->xattr_names(); names.ok()) {
      ctx.xattr_names.insert(names->begin(), names->end());
      ctx.names_known = true;
    } else {
      // Per-inode reads may still work: serve them, just without shortcuts.
      LogProblem(names.status().message() + "; answering every xattr probe from the inodes");
    }
  }
  if (ctx.image->info().objects) {
    const std::string why = Backings::MissingPrivilege();
    if (why.empty()) ctx.passthrough = true;
    else SayPassthroughLost(why);  // said before the daemon detaches
  }
  SessionSpec spec;
  spec.ops = &kOps;
  spec.userdata = &ctx;
  spec.region = ctx.image->region().bytes();
  spec.region_pinnable = ctx.image->region().kernel_can_pin();
  return RunSession(spec, options);
}

}  // namespace daxfs::fuse
