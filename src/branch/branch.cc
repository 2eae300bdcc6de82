// Branch: a live view of one branch, and its write operations.
#include <fcntl.h>
#include <linux/fs.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/xattr.h>

#include <cstring>
#include <shared_mutex>

#include "branch/shared.h"
#include "daxfs/format.h"
#include "format/names.h"

namespace daxfs {

namespace fmt = daxfs::format;
using branch::A;
using branch::Index;
using branch::LoadAcq;
using branch::Record;
using branch::StoreRel;

struct Branch::Impl {
  std::shared_ptr<BranchStore> store;
  BranchStore::Impl* m = nullptr;
  uint32_t slot = 0;
  uint64_t id = 0;
  std::string name;
  bool writable = false;
  // main: any number of writers in any process and kernel, each write
  // under main's lease for that one record (as commits into main are).
  bool shared_writer = false;
  mutable std::shared_mutex mu;
  mutable std::unique_ptr<Index> idx;
  mutable uint64_t applied = 0;
  uint64_t own_bytes = 0;  // appended through this object (under `mu`)

  bf::Slot& sl() const { return m->slots[slot]; }
  std::string where() const { return m->where() + ": branch '" + name + "'"; }

  bool closed = false;     // close(): every call is ESTALE, nothing of the region is read
  Status Alive() const {
    if (closed) return Status::Stale(where() + " was closed (it ended)");
    DAXFS_RETURN_IF_ERROR(m->NotEvicted());
    bf::Slot& s = sl();
    const uint32_t st = branch::StateOf(s);
    if (s.id != id || st == bf::kFree || st == bf::kClaimed)
      return Status::Stale(where() + " no longer exists");
    if (st == bf::kCommitted)
      return Status::Stale(where() + " was committed into its parent; open the parent");
    if (st == bf::kAborted) return Status::Stale(where() + " was aborted");
    return Status::OK();
  }
  bool Fresh() const {
    return !closed && idx && branch::PublishedLenOf(sl()) == applied && branch::Live(branch::StateOf(sl())) &&
           sl().id == id;
  }
  // Brings the index up to the published log. Caller holds mu exclusively.
  Status Sync() const {
    DAXFS_RETURN_IF_ERROR(Alive());
    if (!idx) {
      DAXFS_ASSIGN_OR_RETURN(idx, m->BuildIndex(slot, &applied));
      return Status::OK();
    }
    const uint64_t len = branch::PublishedLenOf(sl());
    if (len > applied) {
      Status st = m->Replay(slot, applied, len, idx.get(), 0);
      if (!st.ok()) {
        idx.reset();
        return st;
      }
      applied = len;
    }
    return Status::OK();
  }
  template <typename F>
  auto WithIndex(F&& f) const -> decltype(f(*idx)) {
    {
      std::shared_lock l(mu);
      if (Fresh()) return f(*idx);
    }
    std::unique_lock l(mu);
    Status st = Sync();
    if (!st.ok()) return st;
    return f(*idx);
  }
  // One write operation: make(index, record) fills and validates the
  // record; it is appended, published and applied.
  template <typename F>
  Status WriteOp(F&& make) {
    if (!writable)
      return Status::FromErrno(EROFS, where() + " is open read-only");
    std::unique_lock l(mu);
    std::lock_guard a(m->append_mu[slot]);
    // Shared writers of main hold its lease for this one record: commits
    // into main and other processes' writes to it take turns with this one.
    struct Hold {
      BranchStore::Impl* m;
      uint32_t slot;
      bool held = false;
      ~Hold() {
        if (held) m->DropLease(slot);
      }
    } hold{m, slot};
    if (shared_writer) {
      DAXFS_RETURN_IF_ERROR(m->TakeLease(slot, true));
      hold.held = true;
    }
    DAXFS_RETURN_IF_ERROR(Sync());
    if (!m->HoldsLease(slot) || LoadAcq(sl().lease) != m->me)
      return Status::Stale(where() + ": the writer lease was taken over");
    Record r;
    r.time = branch::Now();
    DAXFS_RETURN_IF_ERROR(make(*idx, &r));
    const auto bytes = branch::Encode(r);
    DAXFS_ASSIGN_OR_RETURN(uint64_t pos, m->Append(slot, bytes));
    own_bytes += bytes.size();
    // Apply what is in the log (names and values then point into the region).
    uint64_t chunk_pos = pos;
    Status st = m->ReadLog(slot, chunk_pos, pos + bytes.size(), [&](uint64_t, const Record& rec) {
      return idx->Apply(rec);
    });
    applied = branch::PublishedLenOf(sl());
    if (!st.ok()) {
      idx.reset();
      return Status::Corruption(where() + ": record did not apply after publishing: " + st.message());
    }
    return Status::OK();
  }
};

Branch::Branch(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) { ++impl_->m->open_views; }

namespace {
// Gives up a writer's lease and its in-process writer mark (the slot may
// hold another branch later).
void ReleaseWriter(Branch::Impl& b) {
  if (!b.writable || b.shared_writer) return;
  BranchStore::Impl* m = b.m;
  {
    std::lock_guard a(m->append_mu[b.slot]);
    m->DropLease(b.slot);
  }
  std::lock_guard lk(m->state_mu);
  m->writer_open[b.slot] = false;
}
}  // namespace

void Branch::close() {
  std::unique_lock l(impl_->mu);
  if (impl_->closed) return;
  impl_->closed = true;
  impl_->idx.reset();
  ReleaseWriter(*impl_);
  impl_->m->DropViewer(impl_->slot);
}

Branch::~Branch() {
  --impl_->m->open_views;
  if (impl_->closed) return;
  impl_->m->DropViewer(impl_->slot);
  ReleaseWriter(*impl_);
}

const std::string& Branch::name() const { return impl_->name; }
uint64_t Branch::id() const { return impl_->id; }
bool Branch::writable() const { return impl_->writable; }
uint64_t Branch::version() const { return branch::PublishedLenOf(impl_->sl()); }
uint64_t Branch::others_version() const {
  // Under the lock our own appends take: the two values belong together.
  std::shared_lock l(impl_->mu);
  return branch::PublishedLenOf(impl_->sl()) - impl_->own_bytes;
}
Ino Branch::root() const { return impl_->m->base->root(); }

Result<FsAttr> Branch::stat(Ino ino) const {
  return impl_->WithIndex([&](const Index& i) { return i.Stat(ino); });
}
Result<Ino> Branch::lookup(Ino dir, std::string_view name) const {
  return impl_->WithIndex([&](const Index& i) { return i.Lookup(dir, name); });
}
Result<std::string> Branch::readlink(Ino ino) const {
  return impl_->WithIndex([&](const Index& i) { return i.Readlink(ino); });
}
Result<std::span<const std::byte>> Branch::read(Ino ino, uint64_t offset, size_t len) const {
  return impl_->WithIndex([&](const Index& i) { return i.Read(ino, offset, len); });
}
Status Branch::list_xattrs(
    Ino ino, const std::function<void(std::string_view, std::span<const std::byte>)>& fn) const {
  return impl_->WithIndex([&](const Index& i) { return i.ListXattrs(ino, fn); });
}
Result<std::span<const std::byte>> Branch::getxattr(Ino ino, std::string_view name) const {
  return impl_->WithIndex([&](const Index& i) { return i.GetXattr(ino, name); });
}

namespace {
class ListCursor final : public DirCursor {
 public:
  explicit ListCursor(std::vector<FsDirEntry> v) : v_(std::move(v)) {}
  Result<std::optional<FsDirEntry>> next() override {
    if (i_ >= v_.size()) return std::optional<FsDirEntry>();
    return std::optional<FsDirEntry>(std::move(v_[i_++]));
  }

 private:
  std::vector<FsDirEntry> v_;
  size_t i_ = 0;
};
}  // namespace

Result<std::unique_ptr<DirCursor>> Branch::opendir(Ino dir) const {
  return impl_->WithIndex([&](const Index& i) -> Result<std::unique_ptr<DirCursor>> {
    DAXFS_ASSIGN_OR_RETURN(auto list, i.List(dir));
    return std::unique_ptr<DirCursor>(new ListCursor(std::move(list)));
  });
}

Result<std::pair<Ino, std::string>> Branch::parent_of(std::string_view path) const {
  while (path.size() > 1 && path.back() == '/') path.remove_suffix(1);
  const size_t slash = path.rfind('/');
  std::string_view dir = slash == std::string_view::npos ? "/" : path.substr(0, slash + 1);
  std::string_view leaf = slash == std::string_view::npos ? path : path.substr(slash + 1);
  if (leaf.empty() || leaf == "." || leaf == "..")
    return Status::InvalidArgument(std::string(path) + ": needs a final name");
  DAXFS_ASSIGN_OR_RETURN(Ino d, resolve(dir));
  return std::make_pair(d, std::string(leaf));
}

namespace {
Status CheckName(std::string_view name) {
  if (name.size() > fmt::kNameMax)
    return Status::FromErrno(ENAMETOOLONG, std::string(name.substr(0, 32)) + "...: name too long");
  if (const char* why = fmt::InvalidNameReason(name))
    return Status::InvalidArgument("'" + std::string(name) + "': " + why);
  return Status::OK();
}
// A name a new entry may take in `dir` of a view whose root is `root`: the
// control file's name at a branch root is the mount's (its lookups answer
// the control file), so no real entry may take it there.
Status CheckNewName(Ino root, Ino dir, std::string_view name) {
  DAXFS_RETURN_IF_ERROR(CheckName(name));
  if (dir == root && name == kBranchControlName)
    return Status::Exists(std::string(name) + ": reserved at a branch root for the control file");
  return Status::OK();
}
// A set-group-ID directory passes its group on, and its set-group-ID bit to
// new subdirectories (as Linux filesystems do).
Status Inherit(const Index& idx, Record* r) {
  auto d = idx.Stat(r->dir);
  if (!d.ok()) return Status::OK();  // Validate reports it
  if (d->mode & S_ISGID) {
    r->gid = d->gid;
    if (S_ISDIR(r->mode)) r->mode |= S_ISGID;
  }
  return Status::OK();
}

// Fills the common part of a create record (the caller sets rdev or target
// first), validates it against the parent and numbers the new inode from the
// region-wide counter.
Status FillCreate(Index& idx, Record* r, Ino dir, std::string_view name, uint32_t mode,
                  uint32_t uid, uint32_t gid, uint64_t* next_inode_id) {
  r->type = bf::kRecCreate;
  r->dir = dir;
  r->ino = UINT64_MAX;
  r->name = name;
  r->mode = mode;
  r->uid = uid;
  r->gid = gid;
  DAXFS_RETURN_IF_ERROR(Inherit(idx, r));
  DAXFS_RETURN_IF_ERROR(idx.Validate(*r));
  r->ino = branch::A(*next_inode_id).fetch_add(1, std::memory_order_acq_rel);
  return Status::OK();
}
}  // namespace

Result<Ino> Branch::mknod(Ino dir, std::string_view name, uint32_t mode, uint32_t rdev_major,
                          uint32_t rdev_minor, uint32_t uid, uint32_t gid) {
  DAXFS_RETURN_IF_ERROR(CheckNewName(root(), dir, name));
  if ((mode & S_IFMT) == 0) mode |= S_IFREG;
  if (S_ISDIR(mode) || S_ISLNK(mode))
    return Status::InvalidArgument("mknod cannot make directories or symlinks");
  if (rdev_major > 0xfff || rdev_minor > 0xfffff)
    return Status::InvalidArgument("device number does not fit the 32-bit encoding");
  Ino made = 0;
  Status st = impl_->WriteOp([&](Index& idx, Record* r) -> Status {
    if (S_ISCHR(mode) || S_ISBLK(mode)) r->rdev = fmt::EncodeDev(rdev_major, rdev_minor);
    DAXFS_RETURN_IF_ERROR(FillCreate(idx, r, dir, name, mode, uid, gid, &impl_->m->hdr->next_inode_id));
    made = r->ino;
    return Status::OK();
  });
  if (!st.ok()) return st;
  return made;
}

Result<Ino> Branch::create(Ino dir, std::string_view name, uint32_t mode, uint32_t uid, uint32_t gid) {
  return mknod(dir, name, S_IFREG | (mode & 07777), 0, 0, uid, gid);
}

Result<Ino> Branch::mkdir(Ino dir, std::string_view name, uint32_t mode, uint32_t uid, uint32_t gid) {
  DAXFS_RETURN_IF_ERROR(CheckNewName(root(), dir, name));
  Ino made = 0;
  Status st = impl_->WriteOp([&](Index& idx, Record* r) -> Status {
    DAXFS_RETURN_IF_ERROR(FillCreate(idx, r, dir, name, S_IFDIR | (mode & 07777), uid, gid,
                                     &impl_->m->hdr->next_inode_id));
    made = r->ino;
    return Status::OK();
  });
  if (!st.ok()) return st;
  return made;
}

Result<Ino> Branch::symlink(Ino dir, std::string_view name, std::string_view target, uint32_t uid,
                            uint32_t gid) {
  DAXFS_RETURN_IF_ERROR(CheckNewName(root(), dir, name));
  if (target.empty() || target.size() > fmt::kSymlinkMax || target.find('\0') != std::string_view::npos)
    return Status::InvalidArgument("symlink target must be 1..4095 bytes without NUL");
  Ino made = 0;
  Status st = impl_->WriteOp([&](Index& idx, Record* r) -> Status {
    r->target = target;
    DAXFS_RETURN_IF_ERROR(FillCreate(idx, r, dir, name, S_IFLNK | 0777, uid, gid,
                                     &impl_->m->hdr->next_inode_id));
    made = r->ino;
    return Status::OK();
  });
  if (!st.ok()) return st;
  return made;
}

Status Branch::link(Ino ino, Ino dir, std::string_view name) {
  DAXFS_RETURN_IF_ERROR(CheckNewName(root(), dir, name));
  return impl_->WriteOp([&](Index& idx, Record* r) -> Status {
    r->type = bf::kRecLink;
    r->dir = dir;
    r->ino = ino;
    r->name = name;
    return idx.Validate(*r);
  });
}

Status Branch::unlink(Ino dir, std::string_view name, bool keep_open) {
  return impl_->WriteOp([&](Index& idx, Record* r) -> Status {
    if (name == "." || name == "..") return Status::InvalidArgument("cannot unlink . or ..");
    DAXFS_ASSIGN_OR_RETURN(branch::DEnt e, idx.Find(dir, name));
    if (e.ino == 0) return Status::NotFound(std::string(name) + ": no such file or directory");
    r->type = bf::kRecUnlink;
    r->dir = dir;
    r->ino = e.ino;
    r->name = name;
    r->flags = 0;
    r->keep = keep_open;
    return idx.Validate(*r);
  });
}

Status Branch::rmdir(Ino dir, std::string_view name, bool keep_open) {
  return impl_->WriteOp([&](Index& idx, Record* r) -> Status {
    if (name == ".") return Status::InvalidArgument("cannot remove '.'");
    if (name == "..") return Status::FromErrno(ENOTEMPTY, "cannot remove '..'");
    DAXFS_ASSIGN_OR_RETURN(branch::DEnt e, idx.Find(dir, name));
    if (e.ino == 0) return Status::NotFound(std::string(name) + ": no such file or directory");
    r->type = bf::kRecUnlink;
    r->dir = dir;
    r->ino = e.ino;
    r->name = name;
    r->flags = 1;
    r->keep = keep_open;
    return idx.Validate(*r);
  });
}

Status Branch::rename(Ino sdir, std::string_view sname, Ino ddir, std::string_view dname,
                      uint32_t flags, bool keep_replaced_open) {
  if (flags & ~(uint32_t{RENAME_NOREPLACE} | RENAME_EXCHANGE) ||
      flags == (RENAME_NOREPLACE | RENAME_EXCHANGE))
    return Status::InvalidArgument("rename: unsupported flags");
  DAXFS_RETURN_IF_ERROR(CheckNewName(root(), ddir, dname));
  if (sname == "." || sname == ".." ) return Status::InvalidArgument("cannot rename . or ..");
  bool nothing = false;
  Status st = impl_->WriteOp([&](Index& idx, Record* r) -> Status {
    DAXFS_ASSIGN_OR_RETURN(branch::DEnt s, idx.Find(sdir, sname));
    if (s.ino == 0) return Status::NotFound(std::string(sname) + ": no such file or directory");
    DAXFS_ASSIGN_OR_RETURN(branch::DEnt d, idx.Find(ddir, dname));
    r->type = bf::kRecRename;
    r->dir = sdir;
    r->ddir = ddir;
    r->ino = s.ino;
    r->dino = d.ino;
    r->name = sname;
    r->name2 = dname;
    r->flags = flags;
    r->keep = keep_replaced_open && d.ino != 0 && !(flags & RENAME_EXCHANGE);
    DAXFS_RETURN_IF_ERROR(idx.Validate(*r));
    if (d.ino == s.ino) {
      nothing = true;  // same inode: POSIX says do nothing
      return Status::FromErrno(EALREADY, "");
    }
    return Status::OK();
  });
  if (nothing) return Status::OK();
  return st;
}

Result<Ino> Branch::tmpfile(Ino dir, uint32_t mode, uint32_t uid, uint32_t gid) {
  Ino made = 0;
  Status st = impl_->WriteOp([&](Index& idx, Record* r) -> Status {
    DAXFS_RETURN_IF_ERROR(idx.Stat(dir).status());
    DAXFS_ASSIGN_OR_RETURN(FsAttr d, idx.Stat(dir));
    if (!S_ISDIR(d.mode)) return Status::NotDirectory("inode " + std::to_string(dir) + " is not a directory");
    r->type = bf::kRecCreate;
    r->dir = dir;
    r->mode = S_IFREG | (mode & 07777);
    r->uid = uid;
    r->gid = gid;
    DAXFS_RETURN_IF_ERROR(Inherit(idx, r));
    r->dir = 0;  // nameless: an orphan from the start
    r->ino = UINT64_MAX;
    DAXFS_RETURN_IF_ERROR(idx.Validate(*r));
    r->ino = branch::A(impl_->m->hdr->next_inode_id).fetch_add(1, std::memory_order_acq_rel);
    made = r->ino;
    return Status::OK();
  });
  if (!st.ok()) return st;
  return made;
}

Status Branch::forget(Ino ino) {
  // Most calls find nothing to do: no record then.
  auto orphan = impl_->WithIndex([&](const Index& idx) -> Result<bool> { return idx.orphans().count(ino) != 0; });
  if (!orphan.ok()) return orphan.status();
  if (!*orphan) return Status::OK();
  bool nothing = false;
  Status st = impl_->WriteOp([&](Index& idx, Record* r) -> Status {
    if (!idx.orphans().count(ino)) {
      nothing = true;
      return Status::FromErrno(EALREADY, "");
    }
    r->type = bf::kRecForget;
    r->ino = ino;
    return Status::OK();
  });
  return nothing ? Status::OK() : st;
}

Result<std::vector<Ino>> Branch::orphans() const {
  return impl_->WithIndex([&](const Index& idx) -> Result<std::vector<Ino>> {
    return std::vector<Ino>(idx.orphans().begin(), idx.orphans().end());
  });
}

Status Branch::write(Ino ino, uint64_t offset, std::span<const std::byte> data) {
  constexpr uint64_t P = bf::kPage;
  if (offset > (1ull << 50) || data.size() > (1ull << 50) - offset)
    return Status::FromErrno(EFBIG, "write beyond the largest file size");
  if (data.empty()) {
    return impl_->WithIndex([&](const Index& idx) -> Status {
      DAXFS_ASSIGN_OR_RETURN(FsAttr a, idx.Stat(ino));
      if (S_ISDIR(a.mode)) return Status::IsDirectory("inode " + std::to_string(ino) + " is a directory");
      if (!S_ISREG(a.mode)) return Status::InvalidArgument("not a regular file");
      return Status::OK();
    });
  }
  uint64_t done = 0;
  while (done < data.size()) {
    const uint64_t off = offset + done;
    const uint64_t first = off / P;
    const uint64_t last = (offset + data.size() - 1) / P;
    const uint64_t count = std::min<uint64_t>(last - first + 1, bf::kWritePagesMax);
    const uint64_t batch_end = std::min<uint64_t>(offset + data.size(), (first + count) * P);
    Status st = impl_->WriteOp([&](Index& idx, Record* r) -> Status {
      DAXFS_ASSIGN_OR_RETURN(FsAttr a, idx.Stat(ino));
      if (S_ISDIR(a.mode)) return Status::IsDirectory("inode " + std::to_string(ino) + " is a directory");
      if (!S_ISREG(a.mode)) return Status::InvalidArgument("inode " + std::to_string(ino) + " is not a regular file");
      DAXFS_ASSIGN_OR_RETURN(uint64_t blocks, impl_->m->Alloc(count * P));
      std::byte* dst = impl_->m->mem + impl_->m->geo.delta_offset + blocks;
      std::memset(dst, 0, count * P);
      // Copy-on-write: the pages' current bytes, then the new ones.
      for (uint64_t i = 0; i < count; ++i) {
        const uint64_t page_off = (first + i) * P;
        const bool whole = page_off >= off && page_off + P <= batch_end;
        if (whole || page_off >= a.size) continue;
        for (uint64_t pos = page_off; pos < std::min(a.size, page_off + P);) {
          DAXFS_ASSIGN_OR_RETURN(auto s, idx.Read(ino, pos, page_off + P - pos));
          if (s.empty()) break;
          if (s.data() != ZeroPage().data()) std::memcpy(dst + (pos - first * P), s.data(), s.size());
          pos += s.size();
        }
      }
      std::memcpy(dst + (off - first * P), data.data() + done, batch_end - off);
      r->type = bf::kRecWrite;
      r->ino = ino;
      r->first_page = first;
      r->end = batch_end;
      r->blocks.resize(count);
      for (uint64_t i = 0; i < count; ++i) r->blocks[i] = blocks + i * P;
      return idx.Validate(*r);
    });
    if (!st.ok()) return st;
    done = batch_end - offset;
  }
  return Status::OK();
}

namespace {
template <typename Fill>
Status Setattr(Branch::Impl& b, Ino ino, Fill fill) {
  return b.WriteOp([&](Index& idx, Record* r) -> Status {
    r->type = bf::kRecSetattr;
    r->ino = ino;
    fill(r);
    return idx.Validate(*r);
  });
}
}  // namespace

Status Branch::truncate(Ino ino, uint64_t size) {
  bool same = false;
  Status st = impl_->WriteOp([&](Index& idx, Record* r) -> Status {
    r->type = bf::kRecSetattr;
    r->ino = ino;
    r->mask = bf::kSetSize | bf::kSetMtime;
    r->size = size;
    r->mtime = r->time;
    DAXFS_RETURN_IF_ERROR(idx.Validate(*r));
    // POSIX: the times change only when the size does.
    if (idx.Stat(ino)->size == size) {
      same = true;
      return Status::FromErrno(EALREADY, "");
    }
    return Status::OK();
  });
  return same ? Status::OK() : st;
}

Status Branch::chmod(Ino ino, uint32_t mode) {
  return Setattr(*impl_, ino, [&](Record* r) {
    r->mask = bf::kSetMode;
    r->mode = mode & 07777;
  });
}

Status Branch::chown(Ino ino, uint32_t uid, uint32_t gid) {
  return Setattr(*impl_, ino, [&](Record* r) {
    if (uid != UINT32_MAX) r->mask |= bf::kSetUid;
    if (gid != UINT32_MAX) r->mask |= bf::kSetGid;
    r->uid = uid;
    r->gid = gid;
  });
}

Status Branch::utimens(Ino ino, const struct timespec times[2]) {
  for (int i = 0; i < 2; ++i)
    if (times[i].tv_nsec != UTIME_NOW && times[i].tv_nsec != UTIME_OMIT &&
        (times[i].tv_nsec < 0 || times[i].tv_nsec >= 1000000000))
      return Status::InvalidArgument("utimens: nanoseconds out of range");
  return Setattr(*impl_, ino, [&](Record* r) {
    auto pick = [&](const timespec& t, uint32_t bit, branch::Time* out) {
      if (t.tv_nsec == UTIME_OMIT) return;
      r->mask |= bit;
      *out = t.tv_nsec == UTIME_NOW ? r->time
                                    : branch::Time{t.tv_sec, static_cast<uint32_t>(t.tv_nsec)};
    };
    pick(times[0], bf::kSetAtime, &r->atime);
    pick(times[1], bf::kSetMtime, &r->mtime);
  });
}

Status Branch::setxattr(Ino ino, std::string_view name, std::span<const std::byte> value,
                        uint32_t flags) {
  if (name.empty() || name.size() > fmt::kXattrNameMax || name.find('\0') != std::string_view::npos)
    return Status::FromErrno(ERANGE, "xattr name must be 1.." + std::to_string(fmt::kXattrNameMax) + " bytes");
  if (value.size() > fmt::kXattrValueMax) return Status::FromErrno(E2BIG, "xattr value too large");
  if (flags & ~uint32_t{XATTR_CREATE | XATTR_REPLACE}) return Status::InvalidArgument("setxattr flags");
  return impl_->WriteOp([&](Index& idx, Record* r) -> Status {
    r->type = bf::kRecSetxattr;
    r->ino = ino;
    r->name = name;
    r->value = value;
    r->flags = flags;
    return idx.Validate(*r);
  });
}

Status Branch::removexattr(Ino ino, std::string_view name) {
  if (name.empty() || name.size() > fmt::kXattrNameMax)
    return Status::FromErrno(ENODATA, "no such attribute");
  return impl_->WriteOp([&](Index& idx, Record* r) -> Status {
    r->type = bf::kRecRemovexattr;
    r->ino = ino;
    r->name = name;
    return idx.Validate(*r);
  });
}

Status Branch::fsync() {
  DAXFS_RETURN_IF_ERROR(impl_->Alive());
  if (impl_->m->needs_msync) {
    auto bytes = impl_->m->region->bytes();
    if (msync(const_cast<std::byte*>(bytes.data()), bytes.size(), MS_SYNC) != 0)
      return Status::IOError(impl_->where() + ": msync", errno);
  }
  return Status::OK();
}

Result<std::shared_ptr<Branch>> BranchStore::OpenBranch(std::string_view name, bool write) {
  Impl& m = *impl_;
  auto b = std::make_unique<Branch::Impl>();
  b->store = shared_from_this();
  b->m = &m;
  b->name = std::string(name);
  if (write && name == "main") {
    // Writable main (docs/BRANCHES.md): no long-held lease; each write
    // takes main's lease for one record, in turn with commits into main.
    b->slot = bf::kMainSlot;
    b->id = m.slots[bf::kMainSlot].id;
    b->writable = b->shared_writer = true;
  }
  if (write && !b->shared_writer) {
    DAXFS_RETURN_IF_ERROR(m.NotEvicted());
    m.ResolveAbandoned();
    const int s = m.FindSlot(name);
    if (s < 0) return Status::NotFound(m.where() + ": no active branch '" + std::string(name) + "'");
    bf::Slot& sl = m.slots[s];
    const uint64_t id = sl.id;
    {
      std::lock_guard lk(m.state_mu);
      if (m.writer_open[s])
        return Status::Busy(m.where() + ": branch '" + std::string(name) +
                            "' is already open for writing in this process");
      m.writer_open[s] = true;
      // Our viewer bit before the check that the slot still holds this
      // branch: online reclamation either sees the bit, or we see the
      // slot changed (and give up), never neither.
      m.AddViewerLocked(static_cast<uint32_t>(s));
    }
    Status st;
    {
      std::lock_guard a(m.append_mu[s]);
      st = m.TakeLease(static_cast<uint32_t>(s), false);
      if (st.ok() && (A(sl.id).load(std::memory_order_seq_cst) != id || !branch::Live(branch::StateOf(sl)))) {
        m.DropLease(static_cast<uint32_t>(s));
        st = Status::NotFound(m.where() + ": no active branch '" + std::string(name) + "'");
      }
    }
    if (!st.ok()) {
      m.DropViewer(static_cast<uint32_t>(s));
      std::lock_guard lk(m.state_mu);
      m.writer_open[s] = false;
      return st;
    }
    b->slot = static_cast<uint32_t>(s);
    b->id = id;
    b->writable = true;
  } else if (!write) {
    const int s = m.FindSlot(name);
    if (s < 0) return Status::NotFound(m.where() + ": no active branch '" + std::string(name) + "'");
    b->slot = static_cast<uint32_t>(s);
    b->id = m.slots[s].id;
  }
  // Our viewer bit first, then the check that the slot still holds this
  // branch: online reclamation either sees the bit, or we see the slot
  // freed (and give up), never neither.
  // (An abort of a writer's branch since its check is seen by its first
  // call, ESTALE.)
  if (!b->writable || b->shared_writer) m.AddViewer(b->slot);
  if (!write && (branch::A(m.slots[b->slot].id).load(std::memory_order_seq_cst) != b->id ||
                 !branch::Live(branch::StateOf(m.slots[b->slot])))) {
    m.DropViewer(b->slot);
    return Status::NotFound(m.where() + ": no active branch '" + std::string(name) + "'");
  }
  std::shared_ptr<Branch> br(new Branch(std::move(b)));
  {
    std::unique_lock l(br->impl_->mu);
    DAXFS_RETURN_IF_ERROR(br->impl_->Sync());
  }
  return br;
}

}  // namespace daxfs
