// Copy-on-write branches inside a shared region (docs/BRANCHES.md).
//
//   auto store = BranchStore::Init("base.img", "shm:/work", 1ull << 30);  // or Open("shm:/work")
//   auto b = (*store)->Create("try1");                 // child of main, O(1)
//   auto w = (*store)->OpenBranch("try1", true);       // the one writer
//   auto f = (*w)->create((*w)->root(), "hello", S_IFREG | 0644);
//   (*w)->write(*f, 0, bytes);
//   (*store)->Commit("try1");                          // atomically into main
//
// `main` is the base image plus everything committed or written into it
// (writable main: every write is published like a one-record commit). A
// branch sees its parent as it was when the branch was created, plus its
// own changes. Several processes may use one region at the
// same time, from any number of kernels sharing the memory; a branch has at
// most one writer (a lease naming the writer's attach entry). Everything is
// coordinated by atomic operations on the region: readers take no lock,
// and a user that dies or stops at any instant is taken over once its
// heartbeat stood still for the lease timeout (docs/BRANCHES.md).
#pragma once

#include <sys/types.h>

#include <cstdint>
#include <memory>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "daxfs/export.h"
#include "daxfs/builder.h"
#include "daxfs/fs_view.h"
#include "daxfs/image.h"
#include "daxfs/region.h"
#include "daxfs/status.h"

namespace daxfs {

struct BranchInfo {
  std::string name;
  uint64_t id = 0;
  uint32_t slot = 0;
  std::string parent;       // empty for main
  std::string state;        // "active", "committed", "aborted"
  uint64_t log_bytes = 0;   // published log length
  uint64_t snapshot = 0;    // parent's log length it was created at
  pid_t writer = 0;         // live lease holder, 0 if none
  uint32_t children = 0;    // active children
  int64_t created_sec = 0;
  std::string siblings;     // "merge" or "first-wins" (SiblingPolicy)
};

// What happens to a branch's commit when a sibling (another child of the
// same parent) committed since the branch was made.
enum class SiblingPolicy {
  // The commit goes ahead unless the branch touched what the parent
  // changed since (the sibling rule: disjoint changes merge).
  kMerge,
  // The commit fails with ESTALE: the first sibling to commit wins
  // (branchfs's first-winner-commit, for best-of-N and speculation).
  kFirstWins,
};

struct RegionUsage {
  uint64_t delta_size = 0;
  uint64_t delta_used = 0;  // in use: handed out and not freed by gc
  uint64_t delta_free = 0;  // freed by gc and not reused yet (reused first)
  uint64_t next_inode = 0;
  uint32_t slots_used = 0;
  uint32_t attached = 0;    // live processes attached (this one included)
};

struct GcResult {
  uint32_t slots_freed = 0;
  uint64_t bytes_reclaimed = 0;  // newly free delta bytes (free list + cursor)
  uint64_t bytes_free = 0;       // in the free list now, below the cursor
  uint64_t bytes_used = 0;       // referenced by live logs now
  std::string note;              // what could not be reclaimed, and why
};

class BranchStore;

// Who asks (a mount passes its caller's; tools pass their own).
struct DAXFS_EXPORT Credentials {
  uint32_t uid = 0;
  uint32_t gid = 0;
  std::vector<uint32_t> groups;  // supplementary groups
  static Credentials OfThisProcess();
};

// Who may control a branch (docs/BRANCHES.md, "Who may control a branch"):
// the same people who may change its tree at the top, i.e. whoever may
// write (and search) its root directory; committing changes the parent too,
// so it also needs that of the parent's root. uid 0 may do everything.
enum class BranchControl { kCreateChild, kCommit, kAbort };
// Whether `who` may write and search the root directory of `view`. `what`
// names the operation in the EACCES message.
DAXFS_EXPORT Status MayWriteRoot(const FsView& view, const Credentials& who, const std::string& what);

// The control file of the branchfs protocol at every branch root of a
// mount; no real entry may take this name at a branch root.
inline constexpr char kBranchControlName[] = ".branchfs_ctl";

// A live view of one branch (or main). Reads see every change published on
// the branch, including commits of its children by other processes, checked
// with one atomic load per call. Write methods need a writable handle
// (OpenBranch(name, true)); they fail with EROFS otherwise. Thread-safe.
class DAXFS_EXPORT Branch : public FsView {
 public:
  ~Branch() override;

  const std::string& name() const;
  // The branch's unique id (a later branch of the same name has another).
  uint64_t id() const;
  bool writable() const;
  // The branch's published log length: it changes whenever the branch's
  // contents do (a write, or a child committed into it). One atomic load.
  uint64_t version() const;
  // version() less what was written through this object: it changes only
  // when someone else changes the branch (a mount keeps what its kernel
  // cached of its own writes to main).
  uint64_t others_version() const;

  // FsView
  Ino root() const override;
  Result<FsAttr> stat(Ino ino) const override;
  Result<Ino> lookup(Ino dir, std::string_view name) const override;
  Result<std::unique_ptr<DirCursor>> opendir(Ino dir) const override;
  Result<std::string> readlink(Ino ino) const override;
  Result<std::span<const std::byte>> read(Ino ino, uint64_t offset, size_t len) const override;
  Status list_xattrs(Ino ino, const std::function<void(std::string_view, std::span<const std::byte>)>&
                                  fn) const override;
  Result<std::span<const std::byte>> getxattr(Ino ino, std::string_view name) const override;

  // POSIX operations. Each is one record in the branch's log, published
  // atomically when the call returns (visible to other processes at once).
  Result<Ino> create(Ino dir, std::string_view name, uint32_t mode, uint32_t uid = 0,
                     uint32_t gid = 0);
  Result<Ino> mkdir(Ino dir, std::string_view name, uint32_t mode, uint32_t uid = 0,
                    uint32_t gid = 0);
  Result<Ino> symlink(Ino dir, std::string_view name, std::string_view target, uint32_t uid = 0,
                      uint32_t gid = 0);
  // Devices (S_IFCHR/S_IFBLK with rdev as major/minor), fifos, sockets, files.
  Result<Ino> mknod(Ino dir, std::string_view name, uint32_t mode, uint32_t rdev_major,
                    uint32_t rdev_minor, uint32_t uid = 0, uint32_t gid = 0);
  Status link(Ino ino, Ino dir, std::string_view name);
  // keep_open: the caller still has the inode open (a file descriptor, a
  // working directory). When its last name goes it then stays, nameless
  // (nlink 0), readable and writable by number, until forget(ino): the
  // POSIX open-but-unlinked file. Otherwise it is dropped at once.
  Status unlink(Ino dir, std::string_view name, bool keep_open = false);
  Status rmdir(Ino dir, std::string_view name, bool keep_open = false);
  // flags: 0, RENAME_NOREPLACE or RENAME_EXCHANGE. keep_replaced_open: the
  // inode a rename replaces is open (as keep_open above).
  Status rename(Ino sdir, std::string_view sname, Ino ddir, std::string_view dname,
                uint32_t flags = 0, bool keep_replaced_open = false);
  // O_TMPFILE: a regular file with no name (nlink 0) in the filesystem of
  // `dir` (which gives a set-group-ID group); link() names it, forget()
  // drops it.
  Result<Ino> tmpfile(Ino dir, uint32_t mode, uint32_t uid = 0, uint32_t gid = 0);
  // The last handle on `ino` went: drop it if it is nameless (an orphan).
  // Nothing happens for an inode that has a name or is gone.
  Status forget(Ino ino);
  // The orphans of this branch now (held open by its writer, or left by a
  // writer that died: a new writer drops those).
  Result<std::vector<Ino>> orphans() const;
  // Writes at any offset; the gap before it reads as zeros. Copy-on-write
  // per 4 KiB page: only the pages touched get new blocks.
  Status write(Ino ino, uint64_t offset, std::span<const std::byte> data);
  Status truncate(Ino ino, uint64_t size);
  Status chmod(Ino ino, uint32_t mode);
  // uid/gid UINT32_MAX: leave unchanged.
  Status chown(Ino ino, uint32_t uid, uint32_t gid);
  // nsec may be UTIME_NOW or UTIME_OMIT.
  Status utimens(Ino ino, const struct timespec times[2]);
  // flags: 0, XATTR_CREATE or XATTR_REPLACE.
  Status setxattr(Ino ino, std::string_view name, std::span<const std::byte> value,
                  uint32_t flags = 0);
  Status removexattr(Ino ino, std::string_view name);
  // Everything written is already published; in shared memory it survives
  // the writer's death. On a region backed by a file on a disk filesystem
  // this also msyncs (MS_SYNC) the region so the branch survives power loss.
  Status fsync();

  // Lets go of an ended branch before the object goes: every later call is
  // ESTALE and reads nothing, and online reclamation may free the branch.
  // Spans handed out before must not be used after this.
  void close();

  // Path helpers for tools and tests ("/a/b"). Parents must exist.
  Result<std::pair<Ino, std::string>> parent_of(std::string_view path) const;

  struct Impl;

 private:
  friend class BranchStore;
  explicit Branch(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

class DAXFS_EXPORT BranchStore : public std::enable_shared_from_this<BranchStore> {
 public:
  ~BranchStore();

  // Makes a branchable region at `region_spec` (file, shm:, hugetlbfs:, dax:,
  // ...) from the image at `image_spec`, with `delta_size` bytes for branch
  // logs and data. The region then holds main == the image.
  // lease_timeout_ms: how long a user's heartbeat may stand still before
  // others take over what it holds (0: 5 s).
  static Result<std::shared_ptr<BranchStore>> Init(const std::string& image_spec,
                                                   const std::string& region_spec,
                                                   uint64_t delta_size, uint32_t lease_timeout_ms = 0);
  // Converts a region of an older control block version (2 or 3, which
  // coordinated with a process-shared mutex) to the current one, in place.
  // Nothing else may have it open. A commit a crashed process left half
  // done is finished (its merge record is in the parent) first.
  static Status Upgrade(const std::string& region_spec);
  static Result<std::shared_ptr<BranchStore>> Open(const std::string& region_spec);
  static Result<std::shared_ptr<BranchStore>> Open(std::shared_ptr<Region> region);

  // After fork(): the child takes over this store's attach entry (and the
  // writer leases it takes later name it), so that other processes see
  // the child, not the parent that exits, as the one using the region.
  void AdoptAfterFork();

  const Region& region() const;
  // The base image (main as it was at init).
  std::shared_ptr<const Image> base() const;

  Result<std::vector<BranchInfo>> List() const;
  Result<BranchInfo> Info(std::string_view name) const;
  RegionUsage Usage() const;

  // A new branch of `parent` ("main" or another active branch). O(1).
  Result<BranchInfo> Create(std::string_view name, std::string_view parent = "main",
                            SiblingPolicy siblings = SiblingPolicy::kMerge);
  // Merges leaf `name` into its parent atomically. EBUSY if it has active
  // children; ESTALE (message lists the paths) if it touched something its
  // parent changed since the branch was created; the branch is then left
  // as it was. `conflicts`, if given, receives the conflicting paths.
  Status Commit(std::string_view name, std::vector<std::string>* conflicts = nullptr);
  // Discards `name` (EBUSY if it has active children).
  Status Abort(std::string_view name);
  // EACCES unless `who` may do `op` to branch `name` (kCreateChild: make a
  // child of it). Create/Commit/Abort themselves do not check: a process
  // that can write the region can write anything in it; tools and mounts
  // call this for the user they act for.
  Status MayControl(std::string_view name, BranchControl op, const Credentials& who);
  // Reclaims what is safe to reclaim (see GcResult::note). Alone on the
  // region it reclaims everything unreferenced; with other processes
  // attached (or views open here) it reclaims online (ReclaimEnded).
  Result<GcResult> Gc();
  // Online reclamation, safe while any number of processes use the region:
  // frees the slots of ended branches and gives the pages of aborted ones
  // back for reuse, skipping any branch a live process still has a view
  // of. Create runs it by itself when the branch table is full.
  Result<GcResult> ReclaimEnded();

  // A live view of `name` ("main" too). `write`: take the branch's writer
  // lease (EBUSY naming the holder if a live user has it). main takes no
  // long-held lease: any number of processes may write it, each write
  // published as one record under main's lease, in turn with commits.
  Result<std::shared_ptr<Branch>> OpenBranch(std::string_view name, bool write = false);

  // Verifies the control block, every slot and every live branch's log.
  // Calls report for each problem; returns the number of problems.
  uint64_t Check(const std::function<void(const std::string&)>& report) const;

  struct Impl;

 private:
  explicit BranchStore(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
  friend class Branch;
};

// Writes `view` (a branch, main, or an image) as a new self-contained
// read-only daxfs image at `output` (compact layout by default).
struct ExportStats {
  uint64_t inodes = 0;
  uint64_t image_size = 0;
};
DAXFS_EXPORT Result<ExportStats> ExportView(const FsView& view, const std::string& output,
                                           bool compact = true);
// The same with every build option (an object-store image, a label, ...);
// the source of file data is the view.
DAXFS_EXPORT Result<BuildStats> ExportView(const FsView& view, const std::string& output,
                                           const BuildOptions& options);

}  // namespace daxfs
