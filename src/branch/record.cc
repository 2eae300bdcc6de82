#include "branch/record.h"

#include <sys/stat.h>
#include <time.h>

#include <cstring>

#include "daxfs/format.h"
#include "format/names.h"

namespace daxfs::branch {

namespace bf = daxfs::format::branch;
namespace fmt = daxfs::format;

Time Now() {
  timespec ts;
  clock_gettime(CLOCK_REALTIME, &ts);
  return Time{ts.tv_sec, static_cast<uint32_t>(ts.tv_nsec)};
}

const char* RecordTypeName(uint32_t type) {
  switch (type) {
    case bf::kRecPad: return "pad";
    case bf::kRecCreate: return "create";
    case bf::kRecLink: return "link";
    case bf::kRecUnlink: return "unlink";
    case bf::kRecRename: return "rename";
    case bf::kRecSetattr: return "setattr";
    case bf::kRecWrite: return "write";
    case bf::kRecSetxattr: return "setxattr";
    case bf::kRecRemovexattr: return "removexattr";
    case bf::kRecMerge: return "merge";
    case bf::kRecForget: return "forget";
    default: return "unknown";
  }
}

namespace {

template <typename T>
void Put(std::vector<std::byte>* out, const T& v) {
  const size_t at = out->size();
  out->resize(at + sizeof(T));
  std::memcpy(out->data() + at, &v, sizeof(T));
}
void PutBytes(std::vector<std::byte>* out, const void* p, size_t n) {
  const size_t at = out->size();
  out->resize(at + n);
  if (n) std::memcpy(out->data() + at, p, n);
}

}  // namespace

std::vector<std::byte> Encode(const Record& r) {
  std::vector<std::byte> out;
  Put(&out, bf::RecordHeader{r.type, 0});
  switch (r.type) {
    case bf::kRecCreate: {
      bf::RecCreate c{r.dir, r.ino, r.mode, r.uid, r.gid, r.rdev, r.time.sec, r.time.nsec,
                      static_cast<uint16_t>(r.name.size()), static_cast<uint16_t>(r.target.size())};
      Put(&out, c);
      PutBytes(&out, r.name.data(), r.name.size());
      PutBytes(&out, r.target.data(), r.target.size());
      break;
    }
    case bf::kRecLink: {
      Put(&out, bf::RecLink{r.dir, r.ino, r.time.sec, r.time.nsec,
                            static_cast<uint16_t>(r.name.size()), 0});
      PutBytes(&out, r.name.data(), r.name.size());
      break;
    }
    case bf::kRecUnlink: {
      const uint16_t bits = static_cast<uint16_t>((r.flags ? bf::kUnlinkDir : 0) | (r.keep ? bf::kUnlinkKeepOrphan : 0));
      Put(&out, bf::RecUnlink{r.dir, r.ino, r.time.sec, r.time.nsec,
                              static_cast<uint16_t>(r.name.size()), bits});
      PutBytes(&out, r.name.data(), r.name.size());
      break;
    }
    case bf::kRecRename: {
      Put(&out, bf::RecRename{r.dir, r.ddir, r.ino, r.dino, r.time.sec, r.time.nsec, r.flags,
                              static_cast<uint16_t>(r.name.size()),
                              static_cast<uint16_t>(r.name2.size()), r.keep ? bf::kRenameKeepOrphan : 0});
      PutBytes(&out, r.name.data(), r.name.size());
      PutBytes(&out, r.name2.data(), r.name2.size());
      break;
    }
    case bf::kRecSetattr: {
      bf::RecSetattr s{};
      s.ino = r.ino;
      s.mask = r.mask;
      s.mode = r.mode;
      s.uid = r.uid;
      s.gid = r.gid;
      s.size = r.size;
      s.atime_sec = r.atime.sec;
      s.atime_nsec = r.atime.nsec;
      s.mtime_sec = r.mtime.sec;
      s.mtime_nsec = r.mtime.nsec;
      s.ctime_sec = r.time.sec;
      s.ctime_nsec = r.time.nsec;
      Put(&out, s);
      break;
    }
    case bf::kRecWrite: {
      Put(&out, bf::RecWrite{r.ino, r.end, r.first_page, r.time.sec, r.time.nsec,
                             static_cast<uint32_t>(r.blocks.size())});
      for (uint64_t b : r.blocks) Put(&out, b);
      break;
    }
    case bf::kRecSetxattr:
    case bf::kRecRemovexattr: {
      Put(&out, bf::RecXattr{r.ino, r.time.sec, r.time.nsec, r.flags,
                             static_cast<uint16_t>(r.name.size()), 0,
                             static_cast<uint32_t>(r.value.size())});
      PutBytes(&out, r.name.data(), r.name.size());
      PutBytes(&out, r.value.data(), r.value.size());
      break;
    }
    case bf::kRecMerge:
      Put(&out, bf::RecMerge{r.child_slot, 0, r.child_id, r.child_len});
      if (r.child_chunk) Put(&out, bf::RecMergeChunk{r.child_chunk});
      break;
    case bf::kRecForget:
      Put(&out, bf::RecForget{r.ino, r.time.sec, r.time.nsec, 0});
      break;
    default:
      break;
  }
  out.resize(fmt::AlignUp(out.size(), 8));
  const auto len = static_cast<uint32_t>(out.size());
  std::memcpy(out.data() + offsetof(bf::RecordHeader, length), &len, sizeof len);
  return out;
}

namespace {

class Reader {
 public:
  explicit Reader(std::span<const std::byte> b) : b_(b), pos_(sizeof(bf::RecordHeader)) {}
  template <typename T>
  bool Get(T* out) {
    if (b_.size() - pos_ < sizeof(T)) return false;
    std::memcpy(out, b_.data() + pos_, sizeof(T));
    pos_ += sizeof(T);
    return true;
  }
  bool Str(size_t n, std::string_view* out) {
    if (b_.size() - pos_ < n) return false;
    *out = std::string_view(reinterpret_cast<const char*>(b_.data() + pos_), n);
    pos_ += n;
    return true;
  }
  bool Bytes(size_t n, std::span<const std::byte>* out) {
    if (b_.size() - pos_ < n) return false;
    *out = b_.subspan(pos_, n);
    pos_ += n;
    return true;
  }

 private:
  std::span<const std::byte> b_;
  size_t pos_;
};

bool ValidTime(int64_t, uint32_t nsec) { return nsec < 1000000000u; }

}  // namespace

Result<Record> Decode(std::span<const std::byte> bytes) {
  if (bytes.size() < sizeof(bf::RecordHeader))
    return Status::Corruption("record shorter than its header");
  const auto h = fmt::Load<bf::RecordHeader>(bytes.data());
  Record r;
  r.type = h.type;
  Reader rd(bytes);
  auto bad = [&](const std::string& what) {
    return Status::Corruption(std::string(RecordTypeName(h.type)) + " record: " + what);
  };
  auto name_ok = [&](std::string_view n) -> Status {
    if (const char* why = fmt::InvalidNameReason(n)) return bad(std::string("name: ") + why);
    return Status::OK();
  };
  switch (h.type) {
    case bf::kRecCreate: {
      bf::RecCreate c;
      if (!rd.Get(&c) || !rd.Str(c.name_len, &r.name) || !rd.Str(c.target_len, &r.target))
        return bad("truncated");
      r.dir = c.dir;
      r.ino = c.ino;
      r.mode = c.mode;
      r.uid = c.uid;
      r.gid = c.gid;
      r.rdev = c.rdev;
      r.time = {c.sec, c.nsec};
      if (r.dir == 0) {  // an orphan from the start (O_TMPFILE): no name, a regular file
        if (!r.name.empty() || !S_ISREG(r.mode)) return bad("nameless create of a non-file or with a name");
      } else {
        DAXFS_RETURN_IF_ERROR(name_ok(r.name));
      }
      if (S_ISLNK(r.mode) != !r.target.empty() || r.target.size() > fmt::kSymlinkMax ||
          r.target.find('\0') != std::string_view::npos)
        return bad("bad symlink target");
      break;
    }
    case bf::kRecLink:
    case bf::kRecUnlink: {
      bf::RecLink l;  // same layout as RecUnlink
      static_assert(sizeof(bf::RecLink) == sizeof(bf::RecUnlink));
      if (!rd.Get(&l) || !rd.Str(l.name_len, &r.name)) return bad("truncated");
      r.dir = l.dir;
      r.ino = l.ino;
      r.time = {l.sec, l.nsec};
      if (h.type == bf::kRecLink && l.reserved != 0) return bad("reserved field set");
      if (l.reserved & ~(bf::kUnlinkDir | bf::kUnlinkKeepOrphan)) return bad("bad is_dir");
      r.flags = l.reserved & bf::kUnlinkDir;  // unlink: is_dir
      r.keep = l.reserved & bf::kUnlinkKeepOrphan;
      DAXFS_RETURN_IF_ERROR(name_ok(r.name));
      break;
    }
    case bf::kRecRename: {
      bf::RecRename n;
      if (!rd.Get(&n) || !rd.Str(n.sname_len, &r.name) || !rd.Str(n.dname_len, &r.name2))
        return bad("truncated");
      r.dir = n.sdir;
      r.ddir = n.ddir;
      r.ino = n.sino;
      r.dino = n.dino;
      r.time = {n.sec, n.nsec};
      r.flags = n.flags;
      DAXFS_RETURN_IF_ERROR(name_ok(r.name));
      DAXFS_RETURN_IF_ERROR(name_ok(r.name2));
      if (r.flags & ~3u || r.flags == 3u) return bad("bad flags");
      if (n.keep & ~bf::kRenameKeepOrphan) return bad("bad keep bits");
      r.keep = n.keep & bf::kRenameKeepOrphan;
      break;
    }
    case bf::kRecSetattr: {
      bf::RecSetattr s;
      if (!rd.Get(&s)) return bad("truncated");
      r.ino = s.ino;
      r.mask = s.mask;
      r.mode = s.mode;
      r.uid = s.uid;
      r.gid = s.gid;
      r.size = s.size;
      r.atime = {s.atime_sec, s.atime_nsec};
      r.mtime = {s.mtime_sec, s.mtime_nsec};
      r.time = {s.ctime_sec, s.ctime_nsec};
      if (r.mask & ~63u) return bad("unknown mask bits");
      if (!ValidTime(0, r.atime.nsec) || !ValidTime(0, r.mtime.nsec)) return bad("bad time");
      break;
    }
    case bf::kRecWrite: {
      bf::RecWrite w;
      if (!rd.Get(&w)) return bad("truncated");
      if (w.count == 0 || w.count > bf::kWritePagesMax) return bad("bad page count");
      r.ino = w.ino;
      r.end = w.end;
      r.first_page = w.first_page;
      r.time = {w.sec, w.nsec};
      if (w.first_page > (UINT64_MAX / bf::kPage) - w.count - 1) return bad("page index overflow");
      if (w.end > (w.first_page + w.count) * bf::kPage || w.end <= w.first_page * bf::kPage)
        return bad("end outside the pages written");
      r.blocks.resize(w.count);
      for (auto& b : r.blocks)
        if (!rd.Get(&b)) return bad("truncated block list");
      break;
    }
    case bf::kRecSetxattr:
    case bf::kRecRemovexattr: {
      bf::RecXattr x;
      if (!rd.Get(&x) || !rd.Str(x.name_len, &r.name) || !rd.Bytes(x.value_len, &r.value))
        return bad("truncated");
      r.ino = x.ino;
      r.time = {x.sec, x.nsec};
      r.flags = x.flags;
      if (r.name.empty() || r.name.size() > fmt::kXattrNameMax ||
          r.name.find('\0') != std::string_view::npos)
        return bad("bad xattr name");
      if (r.value.size() > fmt::kXattrValueMax) return bad("xattr value too long");
      if (h.type == bf::kRecRemovexattr && !r.value.empty()) return bad("value on remove");
      break;
    }
    case bf::kRecMerge: {
      bf::RecMerge m;
      if (!rd.Get(&m)) return bad("truncated");
      r.child_slot = m.child_slot;
      r.child_id = m.child_id;
      r.child_len = m.child_len;
      if (bf::RecMergeChunk mc; rd.Get(&mc)) {
        if (mc.child_first_chunk == 0 || mc.child_first_chunk % bf::kPage) return bad("bad child chunk");
        r.child_chunk = mc.child_first_chunk;
      }
      break;
    }
    case bf::kRecForget: {
      bf::RecForget f;
      if (!rd.Get(&f)) return bad("truncated");
      if (f.reserved != 0) return bad("reserved field set");
      r.ino = f.ino;
      r.time = {f.sec, f.nsec};
      break;
    }
    default:
      return Status::Corruption("unknown record type " + std::to_string(h.type));
  }
  if (!ValidTime(r.time.sec, r.time.nsec)) return bad("bad time");
  return r;
}

}  // namespace daxfs::branch
