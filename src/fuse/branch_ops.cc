// Request handlers for a branch region (docs/BRANCHES.md, "Mounting
// branches"): main (or one branch, -o branch=NAME) at the root, every branch
// at /@NAME/ (and /@parent/@child/), the .branchfs_ctl control protocol, and
// every POSIX write operation inside a branch.
//
// The same engine inode appears in many views (main and each branch), so
// FUSE inode numbers are our own: one per (view, engine inode), handed out
// in order and never reused while the mount lives.
//
// Caching: main and branches this mount only reads change under us
// (commits and writes from any process), so their entry and attribute
// timeouts are zero. A branch whose writer lease this mount holds changes
// only through this mount: by its own requests, which the kernel accounts
// for, and by commits of its children, which need the lease holder's
// consent (EBUSY otherwise) and so come through this mount too; its entries
// (negative ones included) and attributes are cached for kLeasedTimeout,
// and such a commit invalidates them before it returns. File pages go through the page
// cache with write-through (no writeback cache) and FUSE_AUTO_INVAL_DATA, so
// shared writable mmap + msync works (dirty pages reach us as writes) and a
// changed mtime/size drops stale pages. A commit or abort done through this
// mount also invalidates the pages of every inode of that view and of its
// parent (mappings of an ended branch then fault with SIGBUS); commits and
// aborts by other processes and mounts are found by the Watcher (a 100 ms
// poll of the branch table), which does the same. Changes are counted
// without this mount's own writes (Branch::others_version): what it wrote
// to writable main its kernel has already, so they drop no pages.
#define FUSE_USE_VERSION 314
#include <fcntl.h>
#include <fuse_lowlevel.h>
#include <linux/fs.h>
#include <malloc.h>
#include <sys/stat.h>
#include <linux/fuse.h>  // opcodes and fuse_ioctl_in, for the ring's offload test
#include <sys/statvfs.h>
#include <sys/sysmacros.h>
#include <sys/uio.h>
#include <sys/xattr.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstddef>
#include <cstring>
#include <functional>
#include <future>
#include <map>
#include <unordered_map>
#include <mutex>
#include <random>
#include <set>
#include <thread>
#include <vector>

#include "daxfs/branch.h"
#include "daxfs/branch_format.h"
#include "daxfs/format.h"
#include "fuse/daxfs_fuse.h"
#include "fuse/notifier.h"
#include "fuse/region_guard.h"
#include "fuse/replies.h"
#include "fuse/session.h"
#include "fuse/transport.h"

namespace daxfs::fuse {
namespace {

constexpr char kCtlName[] = ".branchfs_ctl";
// The ioctls of multikernel/branchfs (and its client multikernel/branching).
constexpr unsigned kIocCreate = 0x80806200;  // _IOR('b', 0, char[128])
constexpr unsigned kIocCommit = 0x6201;      // _IO('b', 1)
constexpr unsigned kIocAbort = 0x6202;       // _IO('b', 2)
constexpr size_t kNameBuf = 128;
constexpr Ino kCtlIno = ~Ino{0};  // the control file of a view
constexpr double kTimeout = 0.0;
constexpr double kLeasedTimeout = 1.0;  // views whose writer lease we hold

struct View {
  std::string name;  // "main" or a branch
  std::shared_ptr<Branch> reader;
  std::shared_ptr<Branch> writer;  // the writer lease, taken on the first write
  bool writable = false;
  // The writer lease is ours: nobody else changes this view (main has no
  // lease: other processes write and commit into it at any time).
  bool Exclusive() const { return writer != nullptr && name != "main"; }
  bool closed = false;  // the branch ended and its Branch objects were closed
  // The branch ended (its names were taken for the last time): names
  // replied from now on are not cached (Remember refuses them).
  bool ended = false;
  // (directory, name) of every entry the kernel may cache with a positive
  // timeout (kLeasedTimeout), to invalidate when a commit changes the view.
  std::set<std::pair<fuse_ino_t, std::string>> cached_names;
  std::vector<fuse_ino_t> fnodes;  // the FUSE inodes handed out of this view
  // Held while the writer lease is taken (not `mu`: that can wait for
  // another holder's lease to expire, and every request takes `mu`).
  std::mutex opening;
};

using Names = std::vector<std::pair<fuse_ino_t, std::string>>;

// Drops the kernel's entry `name` in `dir`: its next use asks us again.
// `expire_only` for names of a view that goes on (a commit changed it):
// the dentry stays hashed, so a directory still there keeps working as a
// process's cwd (getcwd) and as a mount point; invalidation unhashes it.
// Kernels before 6.2 have only invalidation.
void DropEntry(fuse_session* se, fuse_ino_t dir, const std::string& name, bool expire_only) {
  if (expire_only &&
      fuse_lowlevel_notify_expire_entry(se, dir, name.data(), name.size(), FUSE_LL_EXPIRE_ONLY) != -ENOSYS)
    return;
  fuse_lowlevel_notify_inval_entry(se, dir, name.data(), name.size());
}

struct Node {
  uint32_t view = 0;
  Ino ino = 0;
};

struct Context {
  std::shared_ptr<BranchStore> store;
  MountOptions options;
  std::string root_name;  // the branch at the mount root ("main" or -o branch=NAME)
  std::atomic<fuse_session*> se{nullptr};
  std::mutex mu;
  // Every view ever opened, by id. A closed view's entry is replaced by
  // `retired` and its nodes are dropped (RetireView), so a mount that
  // shows any number of branches over its life stays bounded in memory.
  std::vector<std::shared_ptr<View>> views;
  std::set<uint32_t> open_views;  // ids of the views not closed
  std::shared_ptr<View> retired;  // stands for every closed view
  uint64_t retirements = 0;       // views closed so far (under `mu`)
  std::map<std::string, uint32_t, std::less<>> view_ids;
  std::mutex opening_views;  // held while ViewOf opens a branch (not `mu`)
  // FUSE inode -> (view, engine inode). Numbers are handed out in order
  // and never reused while the mount lives.
  std::unordered_map<fuse_ino_t, Node> nodes;
  fuse_ino_t next_fino = FUSE_ROOT_ID;
  std::map<std::pair<uint32_t, Ino>, fuse_ino_t> node_ids;
  // For views this mount does not write: the view's version at the last
  // open of each file. Unchanged at the next open, the kernel's pages of
  // the file are still right and are kept (a change in between made the
  // watcher or the open drop them).
  std::unordered_map<fuse_ino_t, uint64_t> opened_at;
  // Open handles (files and directories) per FUSE inode: an inode that
  // loses its last name while open stays as an orphan until its last
  // handle is released (the POSIX open-but-unlinked file).
  std::unordered_map<fuse_ino_t, uint32_t> open_handles;
  // Held across "is it open here?" + the unlink/rename/rmdir it decides,
  // and across a last release + its forget, so that neither an orphan
  // nobody forgets nor a dropped inode with an open handle can result.
  std::mutex orphan_mu;
  // Sends the invalidations of commits and aborts, then their replies;
  // and, on the second, what may follow the reply (pages).
  Notifier notifier{"daxfs-notify"};
  Notifier lazy_notifier{"daxfs-notify-pg"};
  // Taking a view's cached names and queueing their invalidation on
  // `notifier` happen together under this lock (taken before `mu`). The
  // notifier runs jobs in order, so a commit's reply, queued after, never
  // overtakes the invalidation of names another thread took first (the
  // watcher that saw the end, a CREATE closing ended views): when the
  // caller hears "committed", /@NAME no longer resolves.
  std::mutex take_mu;

  // Queues the invalidation of `names` (the caller holds take_mu);
  // `expire_only`: of a view that goes on (DropEntry).
  void PostInvalidations(Names names, bool expire_only = false) {
    fuse_session* s = se.load();
    if (names.empty() || s == nullptr) return;
    notifier.Post(
        [s, names = std::move(names), expire_only] {
          for (const auto& [dir, nm] : names) DropEntry(s, dir, nm, expire_only);
        },
        nullptr);
  }

  void Opened(fuse_ino_t ino) {
    std::lock_guard lock(mu);
    ++open_handles[ino];
  }
  // A handle went; true when it was the last.
  bool Released(fuse_ino_t ino) {
    std::lock_guard lock(mu);
    auto it = open_handles.find(ino);
    if (it == open_handles.end()) return false;
    if (--it->second > 0) return false;
    open_handles.erase(it);
    return true;
  }
  // Whether this mount has (view, ino) open.
  bool IsOpen(uint32_t view, Ino ino) {
    std::lock_guard lock(mu);
    auto id = node_ids.find({view, ino});
    return id != node_ids.end() && open_handles.count(id->second) != 0;
  }

  // Whether an open of `ino` in read-only view `id` may keep cached pages.
  bool PagesStillValid(fuse_ino_t ino, uint32_t id) {
    std::shared_ptr<Branch> r = Reader(id);
    const uint64_t now = r->others_version();  // this mount's own writes are in its cache
    std::lock_guard lock(mu);
    auto [it, fresh] = opened_at.emplace(ino, now);
    if (fresh) return false;
    const bool same = it->second == now;
    it->second = now;
    return same;
  }

  // The view of branch `name`. With `branch_id` (not 0), the branch that
  // has the name now: a view of an earlier branch of that name (ended, and
  // closed by the watcher a poll later) is not it, and a new view is made.
  Result<uint32_t> ViewOf(const std::string& name, uint64_t branch_id = 0) {
    auto existing = [&]() -> std::optional<uint32_t> {  // under `mu`
      auto it = view_ids.find(name);
      if (it == view_ids.end()) return std::nullopt;
      if (branch_id == 0 || views[it->second]->reader->id() == branch_id) return it->second;
      view_ids.erase(it);
      return std::nullopt;
    };
    {
      std::lock_guard lock(mu);
      if (auto v = existing()) return *v;
    }
    // Opening replays the branch's log: under `opening_views`, not `mu`.
    std::lock_guard opening(opening_views);
    {
      std::lock_guard lock(mu);
      if (auto v = existing()) return *v;  // opened by another request meanwhile
    }
    DAXFS_ASSIGN_OR_RETURN(auto b, store->OpenBranch(name, false));
    auto v = std::make_shared<View>();
    v->name = name;
    v->reader = std::move(b);
    v->writable = name != "main" || options.main_mode == "writable";
    std::lock_guard lock(mu);
    views.push_back(std::move(v));
    const auto id = static_cast<uint32_t>(views.size() - 1);
    view_ids[name] = id;
    open_views.insert(id);
    return id;
  }
  // The FUSE inode of (view, ino); 0 for a closed view (nothing of it is
  // handed out again).
  fuse_ino_t Fuse(uint32_t view, Ino ino) {
    std::lock_guard lock(mu);
    if (views[view]->closed) return 0;
    auto [it, fresh] = node_ids.emplace(std::make_pair(view, ino), 0);
    if (fresh) {
      it->second = next_fino++;
      nodes.emplace(it->second, Node{view, ino});
      views[view]->fnodes.push_back(it->second);
    }
    return it->second;
  }
  std::optional<Node> Get(fuse_ino_t fino) {
    std::lock_guard lock(mu);
    auto it = nodes.find(fino);
    if (it == nodes.end()) return std::nullopt;
    return it->second;
  }
  std::string ViewName(uint32_t id) {
    std::lock_guard lock(mu);
    return views[id]->name;
  }
  // The reader of the view `view_name` leads to (null if none).
  std::shared_ptr<Branch> ReaderOf(const std::string& view_name) {
    std::lock_guard lock(mu);
    auto it = view_ids.find(view_name);
    if (it == view_ids.end()) return nullptr;
    return views[it->second]->writer ? views[it->second]->writer : views[it->second]->reader;
  }
  std::shared_ptr<Branch> Reader(uint32_t id) {
    std::lock_guard lock(mu);
    return views[id]->writer ? views[id]->writer : views[id]->reader;
  }
  Result<std::shared_ptr<Branch>> Writer(uint32_t id) {
    std::shared_ptr<View> view;  // held: a closed view's entry is replaced
    {
      std::lock_guard lock(mu);
      View& v = *views[id];
      if (v.closed) return Status::Stale(v.name + ": the branch ended");
      if (!v.writable) return Status::FromErrno(EROFS, v.name + " is read-only");
      if (v.writer) return v.writer;
      view = views[id];
    }
    // Taking the lease may wait for another holder's to expire: one request
    // of this view waits for it, the rest of the mount goes on.
    std::lock_guard opening(view->opening);
    std::string name;
    {
      std::lock_guard lock(mu);
      if (view->closed) return Status::Stale(view->name + ": the branch ended");
      if (view->writer) return view->writer;  // taken by another request meanwhile
      name = view->name;
    }
    DAXFS_ASSIGN_OR_RETURN(std::shared_ptr<Branch> opened, store->OpenBranch(name, true));
    std::shared_ptr<Branch> w;
    {
      std::lock_guard lock(mu);
      View& v = *view;
      if (v.closed) return Status::Stale(v.name + ": the branch ended");
      // The name may now belong to a later branch: this view is of the old one.
      if (opened->id() != v.reader->id()) return Status::Stale(v.name + ": the branch ended");
      // Orphans left by a writer that died (their handles died with it),
      // but not those this mount has open; before the writer is published,
      // so no O_TMPFILE made through it meanwhile is taken for one.
      if (v.name != "main") {
        if (auto orphans = opened->orphans(); orphans.ok()) {
          for (Ino o : *orphans) {
            auto fid = node_ids.find({id, o});
            if (fid == node_ids.end() || !open_handles.count(fid->second)) (void)opened->forget(o);
          }
        }
      }
      v.writer = std::move(opened);
      w = v.writer;
    }
    // From now on the kernel caches this view's attributes and pages
    // (Timeout, keep_cache): forget what it has from before the lease, when
    // another process may have written the branch. Attributes only (no page
    // locks, so safe inside a request); a changed mtime or size then drops
    // the pages (FUSE_AUTO_INVAL_DATA).
    if (fuse_session* s = se.load()) {
      for (fuse_ino_t i : NodesOfView(id)) fuse_lowlevel_notify_inval_inode(s, i, -1, 0);
    }
    return w;
  }
  // How long the kernel may cache entries and attributes of `id`.
  double Timeout(uint32_t id) {
    std::lock_guard lock(mu);
    return views[id]->Exclusive() ? kLeasedTimeout : kTimeout;
  }
  // Whether this mount holds the writer lease of `view_name`.
  bool Leased(const std::string& view_name) {
    std::lock_guard lock(mu);
    auto it = view_ids.find(view_name);
    return it != view_ids.end() && views[it->second]->Exclusive();
  }
  // Records a name the kernel will cache; false (reply it uncached) for a
  // view whose branch ended: nothing would drop the name later.
  bool Remember(uint32_t id, fuse_ino_t dir, std::string_view name) {
    std::lock_guard lock(mu);
    if (views[id]->ended || views[id]->closed) return false;
    views[id]->cached_names.emplace(dir, name);
    return true;
  }
  // The cached names of `view_name`, forgotten (they are being invalidated);
  // `ended`: for the last time, the branch ended.
  Names TakeNames(const std::string& view_name, bool ended = false) {
    std::lock_guard lock(mu);
    auto it = view_ids.find(view_name);
    if (it == view_ids.end()) return {};
    if (ended) views[it->second]->ended = true;
    auto& set = views[it->second]->cached_names;
    Names out(set.begin(), set.end());
    set.clear();
    return out;
  }
  // The names of the views this mount has opened, and whether it holds
  // the writer lease of each.
  std::vector<std::pair<std::string, bool>> ViewNames() {
    std::lock_guard lock(mu);
    std::vector<std::pair<std::string, bool>> out;
    for (uint32_t id : open_views) out.emplace_back(views[id]->name, views[id]->Exclusive());
    return out;
  }
  // The names and branch ids of the views not closed yet.
  std::vector<std::pair<std::string, uint64_t>> ViewIds() {
    std::lock_guard lock(mu);
    std::vector<std::pair<std::string, uint64_t>> out;
    for (uint32_t id : open_views) out.emplace_back(views[id]->name, views[id]->reader->id());
    return out;
  }
  // Closes the Branch objects of an ended view (its calls answer ESTALE),
  // unless a request still holds one (checked under `mu`, which every
  // request takes to get one): a read replies from spans of the branch's
  // pages, which online reclamation may free once the view is closed; such
  // a view is closed at a later poll. Names the kernel still caches go with
  // it (once its name is forgotten, nothing else would drop them).
  void CloseView(const std::string& view_name, uint64_t id) {
    std::shared_ptr<Branch> r, w;
    {
      std::lock_guard take(take_mu);
      Names names;
      {
        std::lock_guard lock(mu);
        const auto found = FindView(view_name, id);
        if (!found) return;
        View& v = *views[*found];
        if (v.reader.use_count() > 1 || (v.writer && v.writer.use_count() > 1)) return;
        r = v.reader;
        w = v.writer;
        names.assign(v.cached_names.begin(), v.cached_names.end());
        RetireView(*found);
      }
      PostInvalidations(std::move(names));
    }
    if (r) r->close();
    if (w) w->close();
  }
  // Closes now the views of ended branches that no request is using (no
  // Branch of theirs held outside the view, checked under `mu`, which every
  // request takes to get one): the watcher closes them only a poll or two
  // after the end, and a CREATE that found every slot taken by ended
  // branches this mount still viewed would fail meanwhile (ENOSPC).
  // Returns how many were closed.
  size_t CloseIdleEndedViews() {
    std::vector<std::pair<std::string, uint64_t>> candidates;
    for (const auto& [name, id] : ViewIds()) {
      if (name == "main") continue;
      auto info = store->Info(name);
      if (!info.ok() || info->state != "active" || info->id != id) candidates.emplace_back(name, id);
    }
    std::vector<std::shared_ptr<Branch>> to_close;
    {
      std::lock_guard take(take_mu);
      Names names;
      {
        std::lock_guard lock(mu);
        for (const auto& [name, id] : candidates) {
          const auto found = FindView(name, id);
          if (!found) continue;
          View& v = *views[*found];
          if (v.reader.use_count() > 1 || (v.writer && v.writer.use_count() > 1)) continue;
          names.insert(names.end(), v.cached_names.begin(), v.cached_names.end());
          to_close.push_back(v.reader);
          if (v.writer) to_close.push_back(v.writer);
          RetireView(*found);
        }
      }
      PostInvalidations(std::move(names));
    }
    for (auto& b : to_close) b->close();
    return to_close.size();
  }
  // The open view of branch `id` named `view_name` (under `mu`): not
  // necessarily the one the name leads to now (ViewOf).
  std::optional<uint32_t> FindView(const std::string& view_name, uint64_t id) {
    for (uint32_t v : open_views)
      if (views[v]->name == view_name && views[v]->reader->id() == id) return v;
    return std::nullopt;
  }
  // Closes view `id` (under `mu`; the caller closes its Branch objects and
  // drops the names the kernel caches): the name leads no longer to it (a
  // branch made later under the name gets a view of its own), its nodes
  // are forgotten (the kernel's calls on them answer ESTALE, as a closed
  // branch's would), and the view is freed once no request holds it.
  void RetireView(uint32_t id) {
    std::shared_ptr<View> v = views[id];
    v->closed = true;
    v->cached_names.clear();
    if (auto it = view_ids.find(v->name); it != view_ids.end() && it->second == id) view_ids.erase(it);
    for (fuse_ino_t f : v->fnodes) {
      if (auto n = nodes.find(f); n != nodes.end()) {
        node_ids.erase({id, n->second.ino});
        nodes.erase(n);
      }
      opened_at.erase(f);
    }
    open_views.erase(id);
    ++retirements;
    if (!retired) {
      retired = std::make_shared<View>();
      retired->name = "(ended)";
      retired->reader = v->reader;  // closed by the caller: every call is ESTALE
      retired->closed = retired->ended = true;
    }
    views[id] = retired;
  }
  uint64_t Retirements() {
    std::lock_guard lock(mu);
    return retirements;
  }
  // Every FUSE inode of view `id`.
  std::vector<fuse_ino_t> NodesOfView(uint32_t id) {
    std::lock_guard lock(mu);
    return views[id]->closed ? std::vector<fuse_ino_t>{} : views[id]->fnodes;
  }
  // Every FUSE inode of `view_name`.
  std::vector<fuse_ino_t> NodesOf(const std::string& view_name) {
    std::lock_guard lock(mu);
    auto it = view_ids.find(view_name);
    if (it == view_ids.end()) return {};
    return views[it->second]->fnodes;
  }
};

Context& Ctx(fuse_req_t req) { return *static_cast<Context*>(fuse_req_userdata(req)); }


void FillStat(fuse_ino_t fino, const FsAttr& a, struct stat* st) {
  std::memset(st, 0, sizeof *st);
  st->st_ino = fino;
  st->st_mode = a.mode;
  st->st_nlink = a.nlink;
  st->st_uid = a.uid;
  st->st_gid = a.gid;
  st->st_size = static_cast<off_t>(a.size);
  st->st_blocks = static_cast<blkcnt_t>(a.blocks);
  st->st_blksize = 128 << 10;
  st->st_rdev = makedev(a.rdev_major, a.rdev_minor);
  st->st_mtim = {a.mtime_sec, a.mtime_nsec};
  st->st_atim = {a.atime_sec, a.atime_nsec};
  st->st_ctim = {a.ctime_sec, a.ctime_nsec};
}

void FillCtlStat(fuse_ino_t fino, struct stat* st) {
  std::memset(st, 0, sizeof *st);
  st->st_ino = fino;
  st->st_mode = S_IFREG | 0666;
  st->st_nlink = 1;
  st->st_blksize = 4096;
}

// Attributes of (view, ino) as FUSE wants them.
Status StatNode(Context& c, fuse_ino_t fino, const Node& n, struct stat* st) {
  if (n.ino == kCtlIno) {
    FillCtlStat(fino, st);
    return Status::OK();
  }
  DAXFS_ASSIGN_OR_RETURN(FsAttr a, c.Reader(n.view)->stat(n.ino));
  FillStat(fino, a, st);
  return Status::OK();
}

// The entry `name` in directory `dir` is (view, ino); cacheable = false for
// names that may change meaning without a write to this view (a real file
// "@x" at a view root, when branch x does not exist). A /@NAME/ entry is
// cached like the branch's own entries: it ends through this mount (which
// invalidates it before replying) or, aborted from elsewhere, is dropped by
// the watcher within one poll (its calls answer ESTALE meanwhile).
void ReplyEntry(fuse_req_t req, uint32_t view, Ino ino, fuse_ino_t dir, std::string_view name,
                bool cacheable = true) {
  Context& c = Ctx(req);
  fuse_entry_param e{};
  e.ino = c.Fuse(view, ino);
  if (e.ino == 0) return (void)fuse_reply_err(req, ESTALE);  // the view closed meanwhile
  e.generation = 1;
  e.attr_timeout = e.entry_timeout = cacheable ? c.Timeout(view) : kTimeout;
  if (Status st = StatNode(c, e.ino, {view, ino}, &e.attr); !st.ok()) return ReplyStatus(req, st);
  if (e.entry_timeout > 0 && !c.Remember(view, dir, name)) e.entry_timeout = e.attr_timeout = 0;
  fuse_reply_entry(req, &e);
}

// ENOENT for `name` in `dir`, as a negative entry the kernel caches where
// the view's entries are cached.
void ReplyAbsent(fuse_req_t req, uint32_t view, fuse_ino_t dir, std::string_view name) {
  Context& c = Ctx(req);
  fuse_entry_param e{};
  e.entry_timeout = c.Timeout(view);
  if (e.entry_timeout == 0 || !c.Remember(view, dir, name)) return (void)fuse_reply_err(req, ENOENT);
  fuse_reply_entry(req, &e);
}

// The node or an error reply (ESTALE for a number we never handed out).
std::optional<Node> NodeOrReply(fuse_req_t req, fuse_ino_t fino) {
  auto n = Ctx(req).Get(fino);
  if (!n) fuse_reply_err(req, ESTALE);
  return n;
}

bool IsViewRoot(Context& c, const Node& n) { return n.ino != kCtlIno && n.ino == c.Reader(n.view)->root(); }

// One open handle of `ino` went. The last one of an orphan (its names were
// removed while it was open, or an O_TMPFILE never linked) drops it.
void ReleaseHandle(Context& c, fuse_ino_t ino) {
  std::lock_guard orphans(c.orphan_mu);
  if (!c.Released(ino)) return;
  auto n = c.Get(ino);
  if (!n || n->ino == kCtlIno) return;
  std::shared_ptr<Branch> w;
  {
    std::lock_guard lock(c.mu);
    w = c.views[n->view]->writer;
  }
  if (!w) return;  // only the writer makes orphans
  if (Status st = w->forget(n->ino); !st.ok() && st.errno_value() != ESTALE)
    LogProblem("dropping the unlinked inode " + std::to_string(n->ino) + ": " + st.message());
}

void OpInit(void*, fuse_conn_info* conn) {
  auto want = [conn](unsigned cap) {
    if (conn->capable & cap) conn->want |= cap;
  };
  want(FUSE_CAP_PARALLEL_DIROPS);
  want(FUSE_CAP_AUTO_INVAL_DATA);
  want(FUSE_CAP_CACHE_SYMLINKS);
  conn->want &= ~FUSE_CAP_WRITEBACK_CACHE;  // write-through: see the header comment
  conn->want &= ~FUSE_CAP_READDIRPLUS;
  conn->max_write = 1u << 20;
  conn->max_readahead = 1u << 20;
}

// The branch that `name` in directory `dir` (node `d`) shows, if it is one:
// at the mount root every active branch as @NAME, at a branch's root its
// children. Such a name hides a real entry of that name.
std::optional<BranchInfo> BranchAt(Context& c, fuse_ino_t dir, const Node& d, std::string_view name) {
  if (name.size() < 2 || name[0] != '@' || !IsViewRoot(c, d)) return std::nullopt;
  const std::string bname(name.substr(1));
  auto info = c.store->Info(bname);
  const std::string here = c.ViewName(d.view);
  // The mount root's own branch is not shown again below it (with -o
  // branch=B, /@A/@B would be the root directory a second time).
  if (info.ok() && info->state == "active" && bname != "main" && bname != here && bname != c.root_name &&
      (dir == FUSE_ROOT_ID || info->parent == here))
    return *info;
  return std::nullopt;
}

void OpLookup(fuse_req_t req, fuse_ino_t parent, const char* name) {
  Context& c = Ctx(req);
  auto p = NodeOrReply(req, parent);
  if (!p) return;
  if (p->ino == kCtlIno) return (void)fuse_reply_err(req, ENOTDIR);
  const std::string_view nm = name;
  if (IsViewRoot(c, *p)) {
    if (nm == kCtlName) return ReplyEntry(req, p->view, kCtlIno, parent, nm);
    if (nm.size() > 1 && nm[0] == '@') {
      if (auto info = BranchAt(c, parent, *p, nm)) {
        auto v = c.ViewOf(info->name, info->id);
        if (!v.ok()) return ReplyStatus(req, v.status());
        return ReplyEntry(req, *v, c.Reader(*v)->root(), parent, nm);
      }
      // Not a branch now, but may become one: never cached as absent.
      auto ino = c.Reader(p->view)->lookup(p->ino, nm);
      if (!ino.ok()) return ReplyStatus(req, ino.status());
      return ReplyEntry(req, p->view, *ino, parent, nm, false);
    }
  }
  auto ino = c.Reader(p->view)->lookup(p->ino, nm);
  if (!ino.ok() && ino.status().errno_value() == ENOENT) return ReplyAbsent(req, p->view, parent, nm);
  if (!ino.ok()) return ReplyStatus(req, ino.status());
  ReplyEntry(req, p->view, *ino, parent, nm);
}

// Every path walked from the mount root checks its permissions (default_
// permissions), so its attributes are cached even when its view's are not:
// a commit into it through this mount drops them before replying, and one
// from elsewhere within one watcher poll (a stat of the root may lag that
// long; its mode and owner come from the image and rarely change).
double AttrTimeout(Context& c, fuse_ino_t fino, const Node& n) {
  return fino == FUSE_ROOT_ID ? kLeasedTimeout : c.Timeout(n.view);
}

void OpGetattr(fuse_req_t req, fuse_ino_t ino, fuse_file_info*) {
  Context& c = Ctx(req);
  auto n = NodeOrReply(req, ino);
  if (!n) return;
  struct stat st;
  if (Status s = StatNode(c, ino, *n, &st); !s.ok()) return ReplyStatus(req, s);
  fuse_reply_attr(req, &st, AttrTimeout(c, ino, *n));
}

void OpSetattr(fuse_req_t req, fuse_ino_t ino, struct stat* attr, int to_set, fuse_file_info*) {
  Context& c = Ctx(req);
  auto n = NodeOrReply(req, ino);
  if (!n) return;
  if (n->ino != kCtlIno) {
    auto w = c.Writer(n->view);
    if (!w.ok()) return ReplyStatus(req, w.status());
    Branch& b = **w;
    Status st;
    if (to_set & FUSE_SET_ATTR_MODE) st = b.chmod(n->ino, attr->st_mode);
    if (st.ok() && (to_set & (FUSE_SET_ATTR_UID | FUSE_SET_ATTR_GID)))
      st = b.chown(n->ino, (to_set & FUSE_SET_ATTR_UID) ? attr->st_uid : UINT32_MAX,
                   (to_set & FUSE_SET_ATTR_GID) ? attr->st_gid : UINT32_MAX);
    if (st.ok() && (to_set & FUSE_SET_ATTR_SIZE)) st = b.truncate(n->ino, static_cast<uint64_t>(attr->st_size));
    if (st.ok() && (to_set & (FUSE_SET_ATTR_ATIME | FUSE_SET_ATTR_MTIME))) {
      struct timespec ts[2] = {{0, UTIME_OMIT}, {0, UTIME_OMIT}};
      if (to_set & FUSE_SET_ATTR_ATIME_NOW) ts[0].tv_nsec = UTIME_NOW;
      else if (to_set & FUSE_SET_ATTR_ATIME) ts[0] = attr->st_atim;
      if (to_set & FUSE_SET_ATTR_MTIME_NOW) ts[1].tv_nsec = UTIME_NOW;
      else if (to_set & FUSE_SET_ATTR_MTIME) ts[1] = attr->st_mtim;
      st = b.utimens(n->ino, ts);
    }
    if (!st.ok()) return ReplyStatus(req, st);
  }
  struct stat out;
  if (Status s = StatNode(c, ino, *n, &out); !s.ok()) return ReplyStatus(req, s);
  fuse_reply_attr(req, &out, AttrTimeout(c, ino, *n));
}

void OpReadlink(fuse_req_t req, fuse_ino_t ino) {
  Context& c = Ctx(req);
  auto n = NodeOrReply(req, ino);
  if (!n) return;
  if (n->ino == kCtlIno) return (void)fuse_reply_err(req, EINVAL);
  auto t = c.Reader(n->view)->readlink(n->ino);
  if (!t.ok()) return ReplyStatus(req, t.status());
  fuse_reply_readlink(req, t->c_str());
}

// The writable branch and directory node for an operation in `parent`.
struct DirOp {
  std::shared_ptr<Branch> w;
  Node dir;
};
std::optional<DirOp> WritableDir(fuse_req_t req, fuse_ino_t parent) {
  Context& c = Ctx(req);
  auto p = NodeOrReply(req, parent);
  if (!p) return std::nullopt;
  if (p->ino == kCtlIno) {
    fuse_reply_err(req, ENOTDIR);
    return std::nullopt;
  }
  auto w = c.Writer(p->view);
  if (!w.ok()) {
    ReplyStatus(req, w.status());
    return std::nullopt;
  }
  return DirOp{*w, *p};
}

// Names that the mount itself gives a meaning at a view's root.
bool Reserved(Context& c, const Node& dir, std::string_view name) {
  return IsViewRoot(c, dir) && name == kCtlName;
}

void OpMknod(fuse_req_t req, fuse_ino_t parent, const char* name, mode_t mode, dev_t rdev) {
  auto d = WritableDir(req, parent);
  if (!d) return;
  if (Reserved(Ctx(req), d->dir, name)) return (void)fuse_reply_err(req, EEXIST);
  const fuse_ctx* who = fuse_req_ctx(req);
  auto r = d->w->mknod(d->dir.ino, name, mode, major(rdev), minor(rdev), who->uid, who->gid);
  if (!r.ok()) return ReplyStatus(req, r.status());
  ReplyEntry(req, d->dir.view, *r, parent, name);
}

void OpMkdir(fuse_req_t req, fuse_ino_t parent, const char* name, mode_t mode) {
  auto d = WritableDir(req, parent);
  if (!d) return;
  if (Reserved(Ctx(req), d->dir, name)) return (void)fuse_reply_err(req, EEXIST);
  const fuse_ctx* who = fuse_req_ctx(req);
  auto r = d->w->mkdir(d->dir.ino, name, mode, who->uid, who->gid);
  if (!r.ok()) return ReplyStatus(req, r.status());
  ReplyEntry(req, d->dir.view, *r, parent, name);
}

void OpSymlink(fuse_req_t req, const char* target, fuse_ino_t parent, const char* name) {
  auto d = WritableDir(req, parent);
  if (!d) return;
  if (Reserved(Ctx(req), d->dir, name)) return (void)fuse_reply_err(req, EEXIST);
  const fuse_ctx* who = fuse_req_ctx(req);
  auto r = d->w->symlink(d->dir.ino, name, target, who->uid, who->gid);
  if (!r.ok()) return ReplyStatus(req, r.status());
  ReplyEntry(req, d->dir.view, *r, parent, name);
}

void OpLink(fuse_req_t req, fuse_ino_t ino, fuse_ino_t newparent, const char* newname) {
  Context& c = Ctx(req);
  auto n = NodeOrReply(req, ino);
  if (!n) return;
  auto d = WritableDir(req, newparent);
  if (!d) return;
  if (n->view != d->dir.view || n->ino == kCtlIno) return (void)fuse_reply_err(req, EXDEV);
  if (Reserved(c, d->dir, newname)) return (void)fuse_reply_err(req, EEXIST);
  if (Status st = d->w->link(n->ino, d->dir.ino, newname); !st.ok()) return ReplyStatus(req, st);
  ReplyEntry(req, n->view, n->ino, newparent, newname);
}

// Whether the inode at `name` in `dir` of `view` is open here (so that it
// must outlive its last name).
bool EntryOpen(Context& c, const DirOp& d, std::string_view name) {
  auto ino = d.w->lookup(d.dir.ino, name);
  return ino.ok() && c.IsOpen(d.dir.view, *ino);
}

void OpUnlink(fuse_req_t req, fuse_ino_t parent, const char* name) {
  Context& c = Ctx(req);
  auto d = WritableDir(req, parent);
  if (!d) return;
  if (Reserved(c, d->dir, name)) return (void)fuse_reply_err(req, EPERM);
  // A branch shown here is no entry of this directory (as a mount point).
  if (BranchAt(c, parent, d->dir, name)) return (void)fuse_reply_err(req, EBUSY);
  int err;
  {
    std::lock_guard orphans(c.orphan_mu);
    err = d->w->unlink(d->dir.ino, name, EntryOpen(c, *d, name)).errno_value();
  }
  fuse_reply_err(req, err);
}

void OpRmdir(fuse_req_t req, fuse_ino_t parent, const char* name) {
  Context& c = Ctx(req);
  auto d = WritableDir(req, parent);
  if (!d) return;
  if (BranchAt(c, parent, d->dir, name)) return (void)fuse_reply_err(req, EBUSY);
  int err;
  {
    std::lock_guard orphans(c.orphan_mu);
    err = d->w->rmdir(d->dir.ino, name, EntryOpen(c, *d, name)).errno_value();
  }
  fuse_reply_err(req, err);
}

void OpRename(fuse_req_t req, fuse_ino_t parent, const char* name, fuse_ino_t newparent, const char* newname,
              unsigned int flags) {
  Context& c = Ctx(req);
  auto d = WritableDir(req, parent);
  if (!d) return;
  auto nd = NodeOrReply(req, newparent);
  if (!nd) return;
  if (nd->view != d->dir.view || nd->ino == kCtlIno) return (void)fuse_reply_err(req, EXDEV);
  if (flags & ~(RENAME_NOREPLACE | RENAME_EXCHANGE)) return (void)fuse_reply_err(req, EINVAL);
  if (Reserved(c, d->dir, name) || Reserved(c, *nd, newname)) return (void)fuse_reply_err(req, EPERM);
  if (BranchAt(c, parent, d->dir, name) || BranchAt(c, newparent, *nd, newname))
    return (void)fuse_reply_err(req, EBUSY);
  int err;
  {
    std::lock_guard orphans(c.orphan_mu);
    const bool replaced_open = EntryOpen(c, DirOp{d->w, *nd}, newname);
    err = d->w->rename(d->dir.ino, name, nd->ino, newname, flags, replaced_open).errno_value();
  }
  fuse_reply_err(req, err);
}

// Whether `who` may open a file with attributes `a` for `flags`, by its
// owner, group and other bits (uid 0 always may). ACLs are not consulted:
// this refuses at most what the kernel would allow.
bool MayOpen(const Credentials& who, const FsAttr& a, int flags) {
  if (who.uid == 0) return true;
  const int acc = flags & O_ACCMODE;
  unsigned need = 0;
  if (acc == O_RDONLY || acc == O_RDWR) need |= 4;
  if (acc == O_WRONLY || acc == O_RDWR || (flags & O_TRUNC)) need |= 2;
  unsigned bits = a.mode & 7;
  if (who.uid == a.uid)
    bits = (a.mode >> 6) & 7;
  else if (who.gid == a.gid || std::find(who.groups.begin(), who.groups.end(), a.gid) != who.groups.end())
    bits = (a.mode >> 3) & 7;
  return (bits & need) == need;
}

Credentials CallerOf(fuse_req_t req);

void OpCreate(fuse_req_t req, fuse_ino_t parent, const char* name, mode_t mode, fuse_file_info* fi) {
  Context& c = Ctx(req);
  auto d = WritableDir(req, parent);
  if (!d) return;
  if (Reserved(c, d->dir, name)) return (void)fuse_reply_err(req, EEXIST);
  const fuse_ctx* who = fuse_req_ctx(req);
  // O_TMPFILE arrives as a create of "/" (the transport turns FUSE_TMPFILE
  // into FUSE_CREATE; no real name can be "/").
  const bool tmpfile = std::string_view(name) == "/";
  fuse_ino_t made = 0;
  auto create = [&]() -> Result<Ino> {
    std::lock_guard orphans(c.orphan_mu);
    auto x = tmpfile ? d->w->tmpfile(d->dir.ino, mode, who->uid, who->gid)
                     : d->w->create(d->dir.ino, name, mode, who->uid, who->gid);
    if (x.ok()) {
      made = c.Fuse(d->dir.view, *x);
      if (made != 0) c.Opened(made);
    }
    return x;
  };
  // O_CREAT without O_EXCL never says EEXIST: the name may have been made
  // by another mount or process since the kernel looked it up (names of
  // main, and of branches this mount does not write, are not cached), and
  // then that file is opened, as by any local filesystem. The kernel takes
  // the file for one it created and checks no permission: we do.
  auto open_existing = [&]() -> Result<Ino> {
    DAXFS_ASSIGN_OR_RETURN(Ino ino, d->w->lookup(d->dir.ino, name));
    DAXFS_ASSIGN_OR_RETURN(FsAttr a, d->w->stat(ino));
    if (S_ISDIR(a.mode)) return Status::IsDirectory(std::string(name) + ": is a directory");
    if (!S_ISREG(a.mode)) return Status::Exists(std::string(name) + ": exists and is not a regular file");
    if (!MayOpen(CallerOf(req), a, fi->flags)) return Status::Permission(std::string(name) + ": permission denied");
    std::lock_guard orphans(c.orphan_mu);
    if (fi->flags & O_TRUNC) DAXFS_RETURN_IF_ERROR(d->w->truncate(ino, 0));
    made = c.Fuse(d->dir.view, ino);
    if (made != 0) c.Opened(made);
    return ino;
  };
  auto r = create();
  for (int tries = 0; !r.ok() && !tmpfile && !(fi->flags & O_EXCL) && tries < 3; ++tries) {
    const int err = r.status().errno_value();
    if (err == EEXIST) r = open_existing();
    else if (err == ENOENT && tries > 0) r = create();  // removed again meanwhile
    else break;
  }
  if (!r.ok()) return ReplyStatus(req, r.status());
  if (made == 0) return (void)fuse_reply_err(req, ESTALE);  // the view closed meanwhile
  fuse_entry_param e{};
  e.ino = made;
  e.generation = 1;
  e.attr_timeout = e.entry_timeout = c.Timeout(d->dir.view);
  if (Status st = StatNode(c, e.ino, {d->dir.view, *r}, &e.attr); !st.ok()) {
    ReleaseHandle(c, made);
    return ReplyStatus(req, st);
  }
  if (tmpfile) e.entry_timeout = 0;
  if (e.entry_timeout > 0 && !c.Remember(d->dir.view, parent, name)) e.entry_timeout = e.attr_timeout = 0;
  fi->keep_cache = 0;
  fi->noflush = 1;
  if (fuse_reply_create(req, &e, fi) != 0) ReleaseHandle(c, made);
}

void OpOpen(fuse_req_t req, fuse_ino_t ino, fuse_file_info* fi) {
  Context& c = Ctx(req);
  auto n = NodeOrReply(req, ino);
  if (!n) return;
  if (n->ino == kCtlIno) {
    fi->direct_io = 1;
    fi->nonseekable = 1;
    return (void)fuse_reply_open(req, fi);
  }
  // Counted first: an unlink racing this open then keeps the inode.
  c.Opened(ino);
  struct Undo {
    Context& c;
    fuse_ino_t ino;
    bool armed = true;
    ~Undo() {
      if (armed) ReleaseHandle(c, ino);
    }
  } undo{c, ino};
  if ((fi->flags & O_ACCMODE) != O_RDONLY || (fi->flags & O_TRUNC)) {
    auto w = c.Writer(n->view);
    if (!w.ok()) return ReplyStatus(req, w.status());
    // FUSE_CAP_ATOMIC_O_TRUNC (libfuse's default): O_TRUNC comes here.
    if (fi->flags & O_TRUNC) {
      if (Status st = (*w)->truncate(n->ino, 0); !st.ok()) return ReplyStatus(req, st);
    }
  }
  auto a = c.Reader(n->view)->stat(n->ino);
  if (!a.ok()) return ReplyStatus(req, a.status());
  if (S_ISDIR(a->mode)) return (void)fuse_reply_err(req, EISDIR);
  // Pages change only through us in a leased view (header comment); in
  // others, only when the view's version moved since the last open.
  fi->keep_cache = c.Timeout(n->view) > 0 || c.PagesStillValid(ino, n->view);
  fi->noflush = 1;                           // OpFlush has nothing to do
  undo.armed = fuse_reply_open(req, fi) != 0;  // an interrupted open has no release to come
}

void OpRead(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off, fuse_file_info*) {
  Context& c = Ctx(req);
  auto n = NodeOrReply(req, ino);
  if (!n) return;
  if (n->ino == kCtlIno) return (void)fuse_reply_buf(req, nullptr, 0);
  auto b = c.Reader(n->view);
  // Zero-copy: the reply gathers spans of the mapping (base, delta, zeros).
  std::vector<iovec> iov;
  size_t got = 0;
  while (got < size) {
    auto data = b->read(n->ino, static_cast<uint64_t>(off) + got, size - got);
    if (!data.ok()) return ReplyStatus(req, data.status());
    if (data->empty()) break;
    ProbeTail(*data);
    iov.push_back({const_cast<std::byte*>(data->data()), data->size()});
    got += data->size();
  }
  fuse_reply_iov(req, iov.data(), static_cast<int>(iov.size()));
}

// The caller of `req`, for the branch control rule (MayWriteRoot).
Credentials CallerOf(fuse_req_t req) {
  const fuse_ctx* x = fuse_req_ctx(req);
  Credentials who;
  who.uid = x->uid;
  who.gid = x->gid;
  if (who.uid != 0) {
    // The count comes back even when the buffer is too small: then again
    // with room for all (a user may have up to 65536 groups).
    std::vector<gid_t> list(64);
    int n = fuse_req_getgroups(req, static_cast<int>(list.size()), list.data());
    if (n > static_cast<int>(list.size())) {
      list.resize(static_cast<size_t>(n));
      n = fuse_req_getgroups(req, n, list.data());
    }
    if (n > 0) who.groups.assign(list.begin(), list.begin() + std::min<size_t>(static_cast<size_t>(n), list.size()));
  }
  return who;
}

// "commit" / "abort" written to a control file, or the ioctls: ends the
// branch, then drops what the kernel cached of it and of its parent, then
// calls `reply` (the caller's next call sees the end). The notifications
// wait for directory locks that callers waiting for replies hold, so they
// run on the notifier (notifier.h), never on a worker; a request served
// from a ring runs them here: it is on the ring's helper thread already
// (uring.h), and its reply cannot leave the thread.
void EndBranchThenReply(Context& c, fuse_req_t req, uint32_t view, bool commit, std::function<void()> reply) {
  const std::string name = c.ViewName(view);
  if (name == "main") return ReplyStatus(req, Status::InvalidArgument("main cannot be committed or aborted"));
  const uint64_t branch_id = c.Reader(view)->id();
  auto info = c.store->Info(name);
  // Control is for whoever may write the branch's root (and, to commit, the
  // parent's): the control file itself is open to all.
  // A control file of an ended branch must not end a later one of the name.
  if (info.ok() && info->id != c.Reader(view)->id())
    return ReplyStatus(req, Status::Stale(name + ": the branch ended"));
  const Credentials who = CallerOf(req);
  const std::string what = std::string(commit ? "commit '" : "abort '") + name + "'";
  if (Status st = MayWriteRoot(*c.Reader(view), who, what); !st.ok()) return ReplyStatus(req, st);
  if (commit && info.ok() && !info->parent.empty()) {
    auto pv = c.ViewOf(info->parent);
    if (!pv.ok()) return ReplyStatus(req, pv.status());
    if (Status st = MayWriteRoot(*c.Reader(*pv), who, what + " into '" + info->parent + "'"); !st.ok())
      return ReplyStatus(req, st);
  }
  Status st = commit ? c.store->Commit(name) : c.store->Abort(name);
  if (!st.ok()) {
    LogProblem((commit ? "commit " : "abort ") + name + ": " + st.message());
    return ReplyStatus(req, st);
  }
  fuse_session* se = c.se.load();
  if (se == nullptr) return reply();
  const std::string parent = info.ok() ? info->parent : std::string();
  // What to drop, gathered now: the views may be closed (and their names
  // and nodes forgotten) before the notifier gets to it.
  // A parent whose entries and attributes the kernel caches (we hold its
  // lease): its names and attributes, so the caller's next call sees the
  // commit (attributes only, offset -1: that does not wait for writeback).
  // Of a parent whose entries are not cached, only the mount root's
  // attributes are (see AttrTimeout).
  const bool parent_leased = commit && !parent.empty() && c.Leased(parent);
  // Held until the job is queued (see Context::take_mu).
  std::unique_lock take(c.take_mu);
  Names parent_names = parent_leased ? c.TakeNames(parent) : Names{};
  std::vector<fuse_ino_t> parent_attrs =
      parent_leased ? c.NodesOf(parent) : commit ? std::vector<fuse_ino_t>{FUSE_ROOT_ID} : std::vector<fuse_ino_t>{};
  // The ended branch's /@NAME/ entries are gone when we reply; its other
  // names only lead to ESTALE now and go with the pages, later.
  Names names = c.TakeNames(name, true);
  // Cached pages and attributes of the ended branch (its mappings fault
  // from now on) and of the parent it changed: after the reply, on the
  // second notifier (invalidating pages may wait for writeback, which
  // needs a worker, and must not hold up the next commit's reply).
  std::vector<fuse_ino_t> pages = c.NodesOf(name);
  if (!parent.empty()) {
    auto more = c.NodesOf(parent);
    pages.insert(pages.end(), more.begin(), more.end());
  }
  Names later;
  for (auto& n : names)
    if (!n.second.starts_with('@')) later.push_back(std::move(n));
  auto notify = [se, parent_names = std::move(parent_names), parent_attrs = std::move(parent_attrs),
                 names = std::move(names)] {
    for (const auto& [dir, nm] : parent_names) DropEntry(se, dir, nm, true);
    for (fuse_ino_t i : parent_attrs) fuse_lowlevel_notify_inval_inode(se, i, -1, 0);
    for (const auto& [dir, nm] : names)
      if (nm.starts_with('@')) fuse_lowlevel_notify_inval_entry(se, dir, nm.data(), nm.size());
  };
  if (!pages.empty() || !later.empty()) {
    c.lazy_notifier.Post(
        [se, pages = std::move(pages), later = std::move(later)] {
          for (const auto& [dir, nm] : later) fuse_lowlevel_notify_inval_entry(se, dir, nm.data(), nm.size());
          for (fuse_ino_t i : pages) fuse_lowlevel_notify_inval_inode(se, i, 0, 0);
        },
        nullptr);
  }
  if (ThreadRepliesOnRing()) {
    // The reply must leave from this thread: wait for the notifier to have
    // run everything queued before, and this job.
    auto done = std::make_shared<std::promise<void>>();
    auto ran = done->get_future();
    c.notifier.Post(std::move(notify), [done] { done->set_value(); });
    take.unlock();
    // Bounded: a notifier stuck (or given up at unmount) must not keep
    // this thread, which the ring's shutdown joins, forever.
    if (ran.wait_for(std::chrono::seconds(10)) != std::future_status::ready)
      LogProblem("end of branch " + name + ": its kernel invalidations did not finish in 10 s; replying anyway");
    reply();
  } else {
    c.notifier.Post(std::move(notify), std::move(reply));
    take.unlock();
  }
  // The ended branch's view goes now (if no request holds it), not at the
  // watcher's next poll: a mount ending branches fast keeps few views, and
  // each holds an index of its branch.
  c.CloseView(name, branch_id);
}

// Watches the published state of the region and drops what the kernel
// cached of a view that changed under this mount: a commit into main or
// into a branch (from any process or mount: its log grew), or a branch that
// ended (its mappings fault from then on). Views this mount writes itself
// change by its own requests, which the kernel already accounts for; they
// are invalidated only when a child of theirs was committed into them.
class Watcher {
 public:
  Watcher(Context& c, std::chrono::milliseconds period) : c_(c), period_(period) {}
  ~Watcher() { Stop(); }
  void Start() { thread_ = std::thread([this] { Run(); }); }
  void Stop() {
    {
      std::lock_guard lock(mu_);
      stop_ = true;
    }
    cv_.notify_all();
    if (thread_.joinable()) thread_.join();
  }

 private:
  struct Seen {
    uint64_t log_bytes = 0;
    std::string state;
    std::string parent;
    uint64_t id = 0;
  };

  std::map<std::string, Seen> Snapshot() {
    std::map<std::string, Seen> now;
    auto list = c_.store->List();
    if (!list.ok()) return now;
    for (const BranchInfo& b : *list) {
      // The active one of a name wins over ended ones of the same name.
      auto [it, fresh] = now.try_emplace(b.name, Seen{b.log_bytes, b.state, b.parent, b.id});
      if (!fresh && b.state == "active") it->second = Seen{b.log_bytes, b.state, b.parent, b.id};
    }
    return now;
  }

  void Run() {
    std::map<std::string, Seen> last = Snapshot();
    SampleOthers(c_.ViewNames());
    std::unique_lock lock(mu_);
    while (!cv_.wait_for(lock, period_, [this] { return stop_; })) {
      lock.unlock();
      std::map<std::string, Seen> now = Snapshot();
      if (!now.empty()) {
        Poll(last, now);
        // Ended branches are reclaimed online while the table is more than
        // half full (Create also does when it is full), so a long-running
        // mount makes any number of branches and the region stays bounded.
        size_t ended = 0;
        for (const auto& [name, seen] : now) ended += seen.state != "active";
        if (++polls_ % 10 == 0 && ended > 0 && now.size() > format::branch::kSlotCount / 2)
          (void)c_.store->ReclaimEnded();  // at most once a second: it checks the control block
        // What closed views held (their branches' indexes, freed in many
        // small pieces that malloc would keep) goes back to the system, at
        // most once a second: the daemon's memory follows the branches it
        // shows now, not all it ever showed.
        if (polls_ % 10 == 0) {
          const uint64_t r = c_.Retirements();
          if (r != trimmed_at_) {
            malloc_trim(0);
            trimmed_at_ = r;
          }
        }
        last = std::move(now);
      }
      lock.lock();
    }
  }

  void Poll(const std::map<std::string, Seen>& last, const std::map<std::string, Seen>& now) {
    fuse_session* se = c_.se.load();
    if (!se || RegionLost()) return;
    // Branches committed since the last poll, by parent.
    std::set<std::string> committed_into;
    for (const auto& [name, was] : last) {
      auto it = now.find(name);
      if (was.state == "active" && (it == now.end() || it->second.state == "committed"))
        committed_into.insert(was.parent);
    }
    const auto view_names = c_.ViewNames();
    SampleOthers(view_names);
    for (const auto& [name, writing] : view_names) {
      auto was = last.find(name);
      auto is = now.find(name);
      bool changed;
      if (is == now.end()) {
        changed = was != last.end() && was->second.state == "active";  // gone
      } else if (is->second.state != "active") {
        // ended since the last poll (perhaps made and ended within one)
        changed = was == last.end() || was->second.state == "active";
      } else if (writing) {
        changed = committed_into.count(name) != 0;
      } else {
        // Changed by someone else: writes through this mount alone (to
        // writable main) do not count, the kernel made them and its caches
        // have them (dropping every page of main each poll made reading it
        // slow while it was written).
        changed = OthersChanged(name);
      }
      if (!changed) continue;
      {
        std::lock_guard take(c_.take_mu);
        const bool ended = is == now.end() || is->second.state != "active";
        c_.PostInvalidations(c_.TakeNames(name, ended), !ended);
      }
      for (fuse_ino_t i : c_.NodesOf(name)) {
        fuse_lowlevel_notify_inval_inode(se, i, 0, 0);
      }
    }
    // Views of ended branches are closed a poll after the end was seen, or
    // later while requests still use them (CloseView), so online
    // reclamation may free them: a mount keeps no ended branch alive.
    // (Checked again now: a branch made after the snapshot was taken is
    // not in it, and must not be taken for one that ended.)
    for (const auto& [name, id] : closing_) {
      auto info = c_.store->Info(name);
      if (info.ok() && info->state == "active" && info->id == id) continue;
      c_.CloseView(name, id);
    }
    closing_.clear();
    for (const auto& [name, id] : c_.ViewIds()) {
      auto is = now.find(name);
      if (name != "main" && (is == now.end() || is->second.state != "active" || is->second.id != id))
        closing_.emplace_back(name, id);
    }
  }
  // Whether someone other than this mount changed view `name` since the
  // last poll (Branch::others_version, sampled for every view each poll:
  // a change shows at the first sample after it, once).
  bool OthersChanged(const std::string& name) {
    auto was = others_.find(name);
    auto is = others_now_.find(name);
    return was == others_.end() || is == others_now_.end() || was->second != is->second;
  }
  void SampleOthers(const std::vector<std::pair<std::string, bool>>& views) {
    others_ = std::move(others_now_);
    others_now_.clear();
    for (const auto& [name, writing] : views)
      if (std::shared_ptr<Branch> b = c_.ReaderOf(name)) others_now_[name] = b->others_version();
  }
  std::map<std::string, uint64_t> others_, others_now_;  // others_version() at the last poll and now
  std::vector<std::pair<std::string, uint64_t>> closing_;  // (name, branch id) to close next poll
  uint64_t polls_ = 0;
  uint64_t trimmed_at_ = 0;  // Context::retirements at the last malloc_trim

  Context& c_;
  std::chrono::milliseconds period_;
  std::mutex mu_;
  std::condition_variable cv_;
  bool stop_ = false;
  std::thread thread_;
};

void OpWrite(fuse_req_t req, fuse_ino_t ino, const char* buf, size_t size, off_t off, fuse_file_info*) {
  Context& c = Ctx(req);
  auto n = NodeOrReply(req, ino);
  if (!n) return;
  if (n->ino == kCtlIno) {
    std::string cmd(buf, size);
    while (!cmd.empty() && (cmd.back() == '\n' || cmd.back() == ' ' || cmd.back() == '\0')) cmd.pop_back();
    if (cmd != "commit" && cmd != "abort") return (void)fuse_reply_err(req, EINVAL);
    return EndBranchThenReply(c, req, n->view, cmd == "commit", [req, size] { fuse_reply_write(req, size); });
  }
  auto w = c.Writer(n->view);
  if (!w.ok()) return ReplyStatus(req, w.status());
  Status st = (*w)->write(n->ino, static_cast<uint64_t>(off),
                          {reinterpret_cast<const std::byte*>(buf), size});
  if (!st.ok()) return ReplyStatus(req, st);
  fuse_reply_write(req, size);
}

// Writes zeros over [off, end) of `ino`, skipping 1 MiB chunks that already
// read as zeros (holes stay holes; the engine has no way to make new ones,
// so a punched range takes delta blocks of zeros, freeing nothing).
Status ZeroRange(Branch& b, Ino ino, uint64_t off, uint64_t end) {
  static const std::vector<std::byte> kZeros(1 << 20);
  while (off < end) {
    const uint64_t n = std::min<uint64_t>(end - off, kZeros.size());
    bool zero = true;
    for (uint64_t pos = off; zero && pos < off + n;) {
      DAXFS_ASSIGN_OR_RETURN(auto span, b.read(ino, pos, off + n - pos));
      if (span.empty()) break;
      zero = std::all_of(span.begin(), span.end(), [](std::byte x) { return x == std::byte{0}; });
      pos += span.size();
    }
    if (!zero) DAXFS_RETURN_IF_ERROR(b.write(ino, off, {kZeros.data(), n}));
    off += n;
  }
  return Status::OK();
}

// fallocate(2): mode 0 extends the file (the engine reserves nothing: every
// write takes new delta blocks anyway, so ENOSPC can still come later);
// KEEP_SIZE alone does nothing; PUNCH_HOLE (with KEEP_SIZE) writes zeros
// inside the file. Everything else is EOPNOTSUPP, as on tmpfs.
void OpFallocate(fuse_req_t req, fuse_ino_t ino, int mode, off_t offset, off_t length, fuse_file_info*) {
  Context& c = Ctx(req);
  auto n = NodeOrReply(req, ino);
  if (!n) return;
  if (n->ino == kCtlIno) return (void)fuse_reply_err(req, ENODEV);
  if (offset < 0 || length <= 0) return (void)fuse_reply_err(req, EINVAL);
  if (mode & ~(FALLOC_FL_KEEP_SIZE | FALLOC_FL_PUNCH_HOLE)) return (void)fuse_reply_err(req, EOPNOTSUPP);
  if ((mode & FALLOC_FL_PUNCH_HOLE) && !(mode & FALLOC_FL_KEEP_SIZE)) return (void)fuse_reply_err(req, EOPNOTSUPP);
  auto w = c.Writer(n->view);
  if (!w.ok()) return ReplyStatus(req, w.status());
  Branch& b = **w;
  auto a = b.stat(n->ino);
  if (!a.ok()) return ReplyStatus(req, a.status());
  if (S_ISDIR(a->mode)) return (void)fuse_reply_err(req, EISDIR);
  if (!S_ISREG(a->mode)) return (void)fuse_reply_err(req, ENODEV);
  const uint64_t off = static_cast<uint64_t>(offset), end = off + static_cast<uint64_t>(length);
  Status st;
  if (mode & FALLOC_FL_PUNCH_HOLE) st = ZeroRange(b, n->ino, off, std::min(end, a->size));
  if (st.ok() && !(mode & FALLOC_FL_KEEP_SIZE) && end > a->size) st = b.truncate(n->ino, end);
  fuse_reply_err(req, st.errno_value());
}

// Whether the caller's CREATE buffer takes the 128-byte name: the kernel
// copies our reply out only after we made the branch, and a bad buffer
// would then leave a branch whose name nobody learned. Probed by writing
// zeros into it (the caller's own buffer, which the ioctl overwrites
// anyway); true when it cannot be told (no pid, no permission).
bool NameBufferWritable(fuse_req_t req, void* arg) {
  const pid_t pid = fuse_req_ctx(req)->pid;
  if (pid <= 0) return true;
  static const char kZeros[kNameBuf] = {};
  iovec local{const_cast<char*>(kZeros), kNameBuf};
  iovec remote{arg, kNameBuf};
  const ssize_t n = process_vm_writev(pid, &local, 1, &remote, 1, 0);
  if (n >= 0) return n == static_cast<ssize_t>(kNameBuf);  // short: the buffer ends early
  return errno != EFAULT;
}

void OpIoctl(fuse_req_t req, fuse_ino_t ino, unsigned int cmd, void* arg, fuse_file_info*, unsigned flags,
             const void*, size_t, size_t out_bufsz) {
  Context& c = Ctx(req);
  auto n = NodeOrReply(req, ino);
  if (!n) return;
  if (n->ino != kCtlIno) return (void)fuse_reply_err(req, ENOTTY);
  if (flags & FUSE_IOCTL_COMPAT) return (void)fuse_reply_err(req, ENOSYS);
  if (cmd == kIocCreate) {
    if (out_bufsz < kNameBuf) return (void)fuse_reply_err(req, EINVAL);
    const std::string parent = c.ViewName(n->view);
    // A control file of an ended branch must not make children of a later
    // one of the name.
    if (parent != "main") {
      auto info = c.store->Info(parent);
      if (!info.ok() || info->state != "active" || info->id != c.Reader(n->view)->id())
        return ReplyStatus(req, Status::Stale(parent + ": the branch ended"));
    }
    if (Status st = MayWriteRoot(*c.Reader(n->view), CallerOf(req), "create a branch of '" + parent + "'");
        !st.ok())
      return ReplyStatus(req, st);
    if (!NameBufferWritable(req, arg)) return (void)fuse_reply_err(req, EFAULT);
    static std::mutex rng_mu;
    static std::mt19937_64 rng{std::random_device{}()};
    int full = 0;  // ENOSPC answers so far
    Status last = Status::Exists("no free branch name after 8 tries");
    for (int attempt = 0; attempt < 8; ++attempt) {
      uint64_t r;
      {
        std::lock_guard lock(rng_mu);
        r = rng();
      }
      char name[kNameBuf] = {};
      std::snprintf(name, sizeof name, "b%016llx", static_cast<unsigned long long>(r));
      auto made = c.store->Create(name, parent,
                                  c.options.siblings == "first-wins" ? SiblingPolicy::kFirstWins
                                                                     : SiblingPolicy::kMerge);
      if (made.ok()) return (void)fuse_reply_ioctl(req, 0, name, kNameBuf);
      last = made.status();
      // Every slot held by branches that ended but that this mount still
      // views: close the idle views (their slots become reclaimable) and
      // try again.
      if (made.status().errno_value() == ENOSPC && (c.CloseIdleEndedViews() > 0 || ++full < 3)) continue;
      if (made.status().errno_value() != EEXIST) return ReplyStatus(req, made.status());
    }
    return ReplyStatus(req, last);
  }
  if (cmd == kIocCommit || cmd == kIocAbort) {
    return EndBranchThenReply(c, req, n->view, cmd == kIocCommit, [req] { fuse_reply_ioctl(req, 0, nullptr, 0); });
  }
  fuse_reply_err(req, ENOTTY);
}

void OpFlush(fuse_req_t req, fuse_ino_t, fuse_file_info*) { fuse_reply_err(req, 0); }
void OpRelease(fuse_req_t req, fuse_ino_t ino, fuse_file_info*) {
  ReleaseHandle(Ctx(req), ino);
  fuse_reply_err(req, 0);
}

void OpFsync(fuse_req_t req, fuse_ino_t ino, int, fuse_file_info*) {
  Context& c = Ctx(req);
  auto n = NodeOrReply(req, ino);
  if (!n) return;
  if (n->ino == kCtlIno) return (void)fuse_reply_err(req, 0);
  std::shared_ptr<Branch> w;
  {
    std::lock_guard lock(c.mu);
    w = c.views[n->view]->writer;
  }
  fuse_reply_err(req, w ? w->fsync().errno_value() : 0);
}

// A directory's entries as opendir saw them, with the view each is in
// (the @NAME entries of a listed view root are other views' roots).
struct Listing {
  std::vector<FsDirEntry> entries;
  std::vector<uint32_t> views;
  bool read = false;  // a READDIR came: offset 0 again is a rewinddir
  void Add(FsDirEntry e, uint32_t view) {
    entries.push_back(std::move(e));
    views.push_back(view);
  }
};

// The entries of directory `ino` (node `n`) now, into `list`.
Status FillListing(Context& c, fuse_ino_t ino, const Node& n, Listing* list) {
  auto b = c.Reader(n.view);
  DAXFS_ASSIGN_OR_RETURN(auto d, b->opendir(n.ino));
  list->entries.clear();
  list->views.clear();
  auto up = b->lookup(n.ino, "..");
  list->Add({".", n.ino, S_IFDIR}, n.view);
  list->Add({"..", up.ok() ? *up : n.ino, S_IFDIR}, n.view);
  std::set<std::string> branch_names;
  if (c.options.listing == "listed" && IsViewRoot(c, n)) {
    // As branchfs does: the branches reachable here as @NAME (at the mount
    // root every active branch, at a branch root its children).
    const std::string here = c.ViewName(n.view);
    if (auto all = c.store->List(); all.ok()) {
      for (const BranchInfo& bi : *all) {
        if (bi.state != "active" || bi.name == "main" || bi.name == here || bi.name == c.root_name) continue;
        if (ino != FUSE_ROOT_ID && bi.parent != here) continue;
        auto v = c.ViewOf(bi.name, bi.id);
        if (!v.ok()) continue;  // ended meanwhile
        branch_names.insert("@" + bi.name);
        list->Add({"@" + bi.name, c.Reader(*v)->root(), S_IFDIR}, *v);
      }
    }
  }
  for (;;) {
    DAXFS_ASSIGN_OR_RETURN(auto e, d->next());
    if (!e) break;
    if (branch_names.count(e->name)) continue;  // a real "@x" is hidden by branch x, as in lookup
    list->Add(std::move(*e), n.view);
  }
  return Status::OK();
}

void OpOpendir(fuse_req_t req, fuse_ino_t ino, fuse_file_info* fi) {
  Context& c = Ctx(req);
  auto n = NodeOrReply(req, ino);
  if (!n) return;
  if (n->ino == kCtlIno) return (void)fuse_reply_err(req, ENOTDIR);
  // Counted first: an rmdir racing this opendir then keeps the directory.
  c.Opened(ino);
  auto list = std::make_unique<Listing>();
  if (Status st = FillListing(c, ino, *n, list.get()); !st.ok()) {
    ReleaseHandle(c, ino);
    return ReplyStatus(req, st);
  }
  fi->fh = reinterpret_cast<uint64_t>(list.release());
  if (fuse_reply_open(req, fi) != 0) {
    delete reinterpret_cast<Listing*>(fi->fh);
    ReleaseHandle(c, ino);
  }
}

void OpReaddir(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off, fuse_file_info* fi) {
  Context& c = Ctx(req);
  auto n = NodeOrReply(req, ino);
  if (!n) return;
  auto& list = *reinterpret_cast<Listing*>(fi->fh);
  // rewinddir (a read from offset 0 after the first) shows the directory
  // as it is now, as POSIX asks and tmpfs does.
  if (off == 0 && list.read) {
    if (Status st = FillListing(c, ino, *n, &list); !st.ok()) return ReplyStatus(req, st);
  }
  list.read = true;
  std::vector<char> buf(size);
  size_t used = 0;
  for (size_t i = static_cast<size_t>(off); i < list.entries.size(); ++i) {
    const FsDirEntry& e = list.entries[i];
    struct stat st{};
    st.st_ino = c.Fuse(list.views[i], e.ino);
    st.st_mode = e.mode;
    const size_t need = fuse_add_direntry(req, buf.data() + used, size - used, e.name.c_str(), &st,
                                          static_cast<off_t>(i + 1));
    if (need > size - used) break;
    used += need;
  }
  fuse_reply_buf(req, buf.data(), used);
}

void OpReleasedir(fuse_req_t req, fuse_ino_t ino, fuse_file_info* fi) {
  delete reinterpret_cast<Listing*>(fi->fh);
  ReleaseHandle(Ctx(req), ino);
  fuse_reply_err(req, 0);
}
void OpFsyncdir(fuse_req_t req, fuse_ino_t ino, int datasync, fuse_file_info* fi) {
  OpFsync(req, ino, datasync, fi);
}

void OpStatfs(fuse_req_t req, fuse_ino_t) {
  Context& c = Ctx(req);
  const RegionUsage u = c.store->Usage();
  struct statvfs s{};
  s.f_bsize = format::kBlockSize;
  s.f_frsize = format::kBlockSize;
  s.f_blocks = (c.store->region().bytes().size()) / format::kBlockSize;
  s.f_bfree = s.f_bavail = (u.delta_size - std::min(u.delta_used, u.delta_size)) / format::kBlockSize;
  s.f_files = u.next_inode;
  s.f_namemax = format::kNameMax;
  fuse_reply_statfs(req, &s);
}

void OpGetxattr(fuse_req_t req, fuse_ino_t ino, const char* name, size_t size) {
  Context& c = Ctx(req);
  auto n = NodeOrReply(req, ino);
  if (!n) return;
  if (n->ino == kCtlIno) return (void)fuse_reply_err(req, ENODATA);
  auto b = c.Reader(n->view);  // held while the reply copies its span
  auto v = b->getxattr(n->ino, name);
  if (!v.ok()) return ReplyStatus(req, v.status());
  ReplyXattr(req, *v, size);
}

void OpListxattr(fuse_req_t req, fuse_ino_t ino, size_t size) {
  Context& c = Ctx(req);
  auto n = NodeOrReply(req, ino);
  if (!n) return;
  std::string names;
  if (n->ino != kCtlIno) {
    Status st = c.Reader(n->view)->list_xattrs(n->ino, [&](std::string_view nm, std::span<const std::byte>) {
      names.append(nm);
      names.push_back('\0');
    });
    if (!st.ok()) return ReplyStatus(req, st);
  }
  ReplyXattr(req, names, size);
}

void OpSetxattr(fuse_req_t req, fuse_ino_t ino, const char* name, const char* value, size_t size, int flags) {
  Context& c = Ctx(req);
  auto n = NodeOrReply(req, ino);
  if (!n) return;
  if (n->ino == kCtlIno) return (void)fuse_reply_err(req, EPERM);
  auto w = c.Writer(n->view);
  if (!w.ok()) return ReplyStatus(req, w.status());
  fuse_reply_err(req, (*w)->setxattr(n->ino, name, {reinterpret_cast<const std::byte*>(value), size},
                                     static_cast<uint32_t>(flags))
                          .errno_value());
}

void OpRemovexattr(fuse_req_t req, fuse_ino_t ino, const char* name) {
  Context& c = Ctx(req);
  auto n = NodeOrReply(req, ino);
  if (!n) return;
  if (n->ino == kCtlIno) return (void)fuse_reply_err(req, ENODATA);
  auto w = c.Writer(n->view);
  if (!w.ok()) return ReplyStatus(req, w.status());
  fuse_reply_err(req, (*w)->removexattr(n->ino, name).errno_value());
}

const fuse_lowlevel_ops kOps = [] {
  fuse_lowlevel_ops ops{};
  ops.init = OpInit;
  ops.lookup = OpLookup;
  ops.getattr = OpGetattr;
  ops.setattr = OpSetattr;
  ops.readlink = OpReadlink;
  ops.mknod = OpMknod;
  ops.mkdir = OpMkdir;
  ops.symlink = OpSymlink;
  ops.link = OpLink;
  ops.unlink = OpUnlink;
  ops.rmdir = OpRmdir;
  ops.rename = OpRename;
  ops.create = OpCreate;
  ops.open = OpOpen;
  ops.read = OpRead;
  ops.write = OpWrite;
  ops.flush = OpFlush;
  ops.release = OpRelease;
  ops.fsync = OpFsync;
  ops.opendir = OpOpendir;
  ops.readdir = OpReaddir;
  ops.releasedir = OpReleasedir;
  ops.fsyncdir = OpFsyncdir;
  ops.statfs = OpStatfs;
  ops.getxattr = OpGetxattr;
  ops.listxattr = OpListxattr;
  ops.setxattr = OpSetxattr;
  ops.removexattr = OpRemovexattr;
  ops.ioctl = OpIoctl;
  ops.fallocate = OpFallocate;
  return ops;
}();

}  // namespace

int ServeBranches(std::shared_ptr<BranchStore> store, const MountOptions& options) {
  Context ctx;
  ctx.store = std::move(store);
  ctx.options = options;
  const std::string root_name = options.branch.empty() ? "main" : options.branch;
  ctx.root_name = root_name;
  if (root_name != "main") {
    auto info = ctx.store->Info(root_name);
    if (!info.ok() || info->state != "active") {
      std::fprintf(stderr, "daxfs-mount: branch %s: %s\n", root_name.c_str(),
                   info.ok() ? ("is " + info->state).c_str() : info.status().message().c_str());
      return 1;
    }
  }
  auto root = ctx.ViewOf(root_name);
  if (!root.ok()) {
    std::fprintf(stderr, "daxfs-mount: %s\n", root.status().ToString().c_str());
    return 1;
  }
  ctx.Fuse(*root, ctx.Reader(*root)->root());  // FUSE_ROOT_ID
  SessionSpec spec;
  spec.ops = &kOps;
  spec.userdata = &ctx;
  spec.region = ctx.store->region().bytes();
  spec.region_pinnable = ctx.store->region().kernel_can_pin();
  spec.writable = true;
  // Commit and abort (a write to a control file, or the ioctls) invalidate
  // the kernel's entries before replying: FUSE_NOTIFY_INVAL_ENTRY waits for
  // the directory's lock, which a caller waiting for a reply may hold. Off
  // the ring's threads (uring.h).
  spec.ring_offload = [&ctx](uint32_t opcode, uint64_t nodeid, std::span<const std::byte> arg) {
    constexpr size_t kIoctlInCmd = offsetof(fuse_ioctl_in, cmd);
    if (opcode == FUSE_IOCTL) {
      uint32_t cmd = 0;
      if (arg.size() >= kIoctlInCmd + 4) std::memcpy(&cmd, arg.data() + kIoctlInCmd, 4);
      return cmd == kIocCommit || cmd == kIocAbort;
    }
    if (opcode != FUSE_WRITE) return false;
    auto n = ctx.Get(nodeid);
    return n && n->ino == kCtlIno;
  };
  // Commits from other processes and mounts: see Watcher. Started once
  // serving (after the daemon forked), stopped before the session goes.
  Watcher watcher(ctx, std::chrono::milliseconds(100));
  spec.started = [&ctx, &watcher](fuse_session* se) {
    // The daemon is a fork of the process that opened the store: it, not
    // its exited parent, holds the attach entry and the leases it takes.
    ctx.store->AdoptAfterFork();
    ctx.se = se;
    ctx.notifier.Start();
    ctx.lazy_notifier.Start();
    watcher.Start();
  };
  spec.stopping = [&ctx, &watcher] {
    watcher.Stop();
    ctx.notifier.Stop();
    ctx.lazy_notifier.Stop();
    ctx.se = nullptr;
  };
  const int rc = RunSession(spec, options);
  watcher.Stop();
  return rc;
}

}  // namespace daxfs::fuse
