#include "builder/erofs_view.h"

#include <sys/stat.h>

#include <algorithm>
#include <map>
#include <cstring>
#include <string_view>

#include "daxfs/format.h"
#include "format/overlay_xattrs.h"

namespace daxfs::build {

namespace {

constexpr uint64_t kBlk = erofs::kBlockSize;
constexpr uint64_t kInodeBytes = sizeof(erofs::InodeExtended);
// The root inode's place: the second half of block 0 (daxfs's superblock
// leaves bytes 2048..4095 free), so that its nid (64) fits in 16 bits.
constexpr uint64_t kRootAt = 2048;

uint8_t FileTypeOf(uint32_t mode) {
  switch (mode & S_IFMT) {
    case S_IFREG: return erofs::kFtRegular;
    case S_IFDIR: return erofs::kFtDirectory;
    case S_IFCHR: return erofs::kFtCharDevice;
    case S_IFBLK: return erofs::kFtBlockDevice;
    case S_IFIFO: return erofs::kFtFifo;
    case S_IFSOCK: return erofs::kFtSocket;
    case S_IFLNK: return erofs::kFtSymlink;
    default: return erofs::kFtUnknown;
  }
}

// The EROFS name index of an xattr name and the part stored; false for a
// namespace EROFS has no index for.
bool SplitXattrName(std::string_view name, uint8_t* index, std::string_view* rest) {
  struct Prefix {
    std::string_view text;
    uint8_t index;
    bool whole;  // the name must be exactly the prefix
  };
  static constexpr Prefix kPrefixes[] = {
      {"user.", erofs::kXattrUser, false},
      {"trusted.", erofs::kXattrTrusted, false},
      {"security.", erofs::kXattrSecurity, false},
      {"system.posix_acl_access", erofs::kXattrPosixAclAccess, true},
      {"system.posix_acl_default", erofs::kXattrPosixAclDefault, true},
  };
  for (const Prefix& p : kPrefixes) {
    if (p.whole ? name != p.text : !name.starts_with(p.text)) continue;
    *index = p.index;
    *rest = name.substr(p.text.size());
    return p.whole || !rest->empty();
  }
  return false;
}

void Put(std::vector<std::byte>* out, const void* p, size_t n) {
  const auto* b = static_cast<const std::byte*>(p);
  out->insert(out->end(), b, b + n);
}

using XattrList = std::vector<std::pair<std::string, std::string>>;

// The xattrs an inode has in the EROFS view: its own and, for a file
// whose data is an object, the OverlayFS metacopy and redirect
// (format/overlay_xattrs.h; `redirect` is null for every other inode).
// An object-store image's view is an OverlayFS layer, so there the tree's
// own trusted.overlay.* names are escaped; other images' views show them
// as they are (mounted alone, they must equal the tree).
XattrList ViewXattrs(const Layout& layout, const InodeRec& r, const std::string* redirect) {
  XattrList out;
  out.reserve(r.xattrs.size() + 2);
  for (const auto& [name, value] : r.xattrs)
    out.emplace_back(layout.objects ? format::EscapeOverlayXattr(name) : name, value);
  if (redirect != nullptr) {
    out.emplace_back(format::kOverlayMetacopy, std::string());
    out.emplace_back(format::kOverlayRedirect, *redirect);
  }
  return out;
}

// Object-store images: the redirect of a file with an object.
bool HasObject(const Layout& layout, const InodeRec& r) { return layout.objects && S_ISREG(r.mode) && r.size > 0; }

// The inline xattr body of an inode (empty when it has none).
Result<std::vector<std::byte>> XattrBody(const XattrList& xattrs, const std::string& path) {
  std::vector<std::byte> body;
  if (xattrs.empty()) return body;
  body.resize(sizeof(erofs::XattrBodyHeader));
  for (const auto& [name, value] : xattrs) {
    uint8_t index;
    std::string_view rest;
    if (!SplitXattrName(name, &index, &rest))
      return Status::NotSupported(path + ": xattr '" + name +
                                  "': EROFS stores only user., trusted., security. and POSIX ACL "
                                  "xattrs (build with --no-erofs to keep it)");
    if (rest.size() > 255 || value.size() > 0xffff)
      return Status::NotSupported(path + ": xattr '" + name + "' is too large for EROFS");
    erofs::XattrEntry e{static_cast<uint8_t>(rest.size()), index, static_cast<uint16_t>(value.size())};
    Put(&body, &e, sizeof e);
    Put(&body, rest.data(), rest.size());
    Put(&body, value.data(), value.size());
    body.resize((body.size() + 3) & ~size_t{3});
  }
  return body;
}

// A chunk-based file of holes (object-store images: the data is the
// object's, which OverlayFS reads): one chunk as large as the file, up to
// the format's largest chunk (2^43 bytes).
struct HoleChunks {
  uint16_t format;  // i_u: log2(chunk size) - block bits
  uint64_t count;   // block map entries
};
HoleChunks HoleChunksOf(uint64_t size) {
  uint32_t bits = erofs::kBlockBits;
  while (bits < erofs::kBlockBits + erofs::kChunkBlkbitsMask && (uint64_t{1} << bits) < size) ++bits;
  return {static_cast<uint16_t>(bits - erofs::kBlockBits), (size + (uint64_t{1} << bits) - 1) >> bits};
}

struct DirEntry {
  std::string_view name;
  uint32_t inode;  // index into Tree::inodes
  uint8_t type;
};

// A directory's EROFS entries ("." and ".." included, sorted bytewise as
// the driver's binary search expects) cut into blocks: entries never
// straddle a block.
struct DirPlan {
  std::vector<DirEntry> entries;
  std::vector<size_t> block_begin;  // first entry of each block
  uint64_t size = 0;                // i_size: full blocks + the last one's bytes
};

DirPlan PlanDirectory(const Tree& tree, const Node& node, uint32_t self) {
  DirPlan plan;
  const uint32_t parent = tree.nodes[node.parent].inode;
  plan.entries.push_back({".", self, erofs::kFtDirectory});
  plan.entries.push_back({"..", parent, erofs::kFtDirectory});
  for (uint32_t c : node.children) {
    const Node& child = tree.nodes[c];
    plan.entries.push_back({child.name, child.inode, FileTypeOf(tree.inodes[child.inode].mode)});
  }
  std::sort(plan.entries.begin(), plan.entries.end(),
            [](const DirEntry& a, const DirEntry& b) { return a.name < b.name; });
  uint64_t used = kBlk;  // forces a first block
  uint64_t full = 0;
  for (size_t i = 0; i < plan.entries.size(); ++i) {
    const uint64_t need = sizeof(erofs::Dirent) + plan.entries[i].name.size();
    if (used + need > kBlk) {
      if (!plan.block_begin.empty()) full += kBlk;
      plan.block_begin.push_back(i);
      used = 0;
    }
    used += need;
  }
  plan.size = full + used;
  return plan;
}

// One block's bytes of a planned directory.
void SerializeDirBlock(const DirPlan& plan, size_t block, const std::vector<uint64_t>& nid_of,
                       std::byte* out) {
  const size_t begin = plan.block_begin[block];
  const size_t end = block + 1 < plan.block_begin.size() ? plan.block_begin[block + 1] : plan.entries.size();
  uint64_t name_at = (end - begin) * sizeof(erofs::Dirent);
  for (size_t i = begin; i < end; ++i) {
    const DirEntry& e = plan.entries[i];
    erofs::Dirent d{nid_of[e.inode], static_cast<uint16_t>(name_at), e.type, 0};
    std::memcpy(out + (i - begin) * sizeof d, &d, sizeof d);
    std::memcpy(out + name_at, e.name.data(), e.name.size());
    name_at += e.name.size();
  }
}

// Which inodes' EROFS records may sit after another file's EOF (see the
// placement in BuildErofsView).
std::vector<bool> PublicRecords(const Tree& tree, const Layout& layout) {
  // searchable[n]: others may walk down to node n's children.
  std::vector<int8_t> searchable(tree.nodes.size(), -1);
  auto walkable = [&](auto&& self, uint32_t n) -> bool {
    if (searchable[n] >= 0) return searchable[n];
    const uint32_t mode = tree.inodes[tree.nodes[n].inode].mode;
    bool ok = S_ISDIR(mode) && (mode & S_IXOTH);
    if (ok && n != 0) ok = self(self, tree.nodes[n].parent);
    searchable[n] = ok;
    return ok;
  };
  std::vector<bool> reachable(tree.inodes.size(), true);
  for (uint32_t n = 1; n < tree.nodes.size(); ++n)
    if (!walkable(walkable, tree.nodes[n].parent)) reachable[tree.nodes[n].inode] = false;
  std::vector<bool> out(tree.inodes.size(), false);
  for (uint32_t idx : layout.by_ino) {
    const InodeRec& r = tree.inodes[idx];
    bool ok = reachable[idx];
    if (S_ISREG(r.mode) || S_ISDIR(r.mode)) ok = ok && (r.mode & S_IROTH);
    for (const auto& [name, value] : r.xattrs) ok = ok && !std::string_view(name).starts_with("trusted.");
    out[idx] = ok;
  }
  return out;
}

// The first node (name) of each inode, for messages.
std::vector<uint32_t> FirstNodes(const Tree& tree) {
  std::vector<uint32_t> node_of(tree.inodes.size(), UINT32_MAX);
  for (uint32_t n = 0; n < tree.nodes.size(); ++n)
    if (node_of[tree.nodes[n].inode] == UINT32_MAX) node_of[tree.nodes[n].inode] = n;
  return node_of;
}

struct InodePlan {
  uint16_t layout = erofs::kLayoutFlatPlain;
  std::vector<std::byte> xattrs;
  uint64_t size = 0;           // i_size
  uint64_t inline_size = 0;    // bytes right after inode + xattrs
  uint64_t extra_blocks = 0;   // blocks of its own after the inode area
  uint64_t extra_at = 0;       // area-relative offset of those blocks
  uint32_t blkaddr = 0;        // flat plain data of a file in the data area
  uint16_t chunk_format = 0;   // kLayoutChunkBased: i_u
  DirPlan dir;
};

}  // namespace

Status ErofsRepresentable(const Tree& tree, const Layout& layout) {
  const std::vector<uint32_t> node_of = FirstNodes(tree);
  // Every redirect has the same length: "/ab/" + 62 hex digits.
  const std::string some_redirect = format::OverlayRedirect(objects::ObjectRelPath(objects::Digest{}));
  for (uint32_t idx : layout.by_ino) {
    const InodeRec& r = tree.inodes[idx];
    const bool object = HasObject(layout, r);
    if (r.xattrs.empty() && !object) continue;
    const std::string path = "/" + tree.PathOf(node_of[idx]);
    DAXFS_ASSIGN_OR_RETURN(auto body, XattrBody(ViewXattrs(layout, r, object ? &some_redirect : nullptr), path));
    const uint64_t budget = idx == layout.by_ino.front() ? kBlk - kRootAt : kBlk;
    if (kInodeBytes + body.size() > budget)
      return Status::NotSupported(path + ": its xattrs (" + std::to_string(body.size()) +
                                  " bytes) do not fit in one EROFS block with the inode");
  }
  return Status::OK();
}

uint64_t ErofsMetadataEstimate(const Tree& tree, const Layout& layout) {
  uint64_t total = 0;
  for (uint32_t idx : layout.by_ino) {
    const InodeRec& r = tree.inodes[idx];
    total += kInodeBytes + 16;  // the inode, and alignment on average
    for (const auto& [name, value] : r.xattrs) total += 4 + name.size() + value.size() + 3;
    if (!r.xattrs.empty()) total += sizeof(erofs::XattrBodyHeader);
    if (HasObject(layout, r)) total += sizeof(erofs::XattrBodyHeader) + 12 + 80 + 4;  // metacopy, redirect, map
    if (S_ISLNK(r.mode)) total += r.target.size();
    if (S_ISDIR(r.mode)) {
      const Node& node = tree.nodes[layout.dir_node[idx]];
      total += 2 * sizeof(erofs::Dirent) + 3;
      for (uint32_t c : node.children) total += sizeof(erofs::Dirent) + tree.nodes[c].name.size();
    }
  }
  return total;
}

Result<ErofsView> BuildErofsView(const Tree& tree, const Layout& layout, const DataPlacement& data,
                                 const std::vector<objects::Digest>& digests, uint64_t area_start,
                                 int64_t build_time, const BuildOptions& options) {
  if (area_start % kBlk != 0)
    return Status::InvalidArgument("internal error: the EROFS area must start on a block boundary");
  std::vector<InodePlan> plans(tree.inodes.size());
  // Paths for messages: the first name of each inode.
  const std::vector<uint32_t> node_of = FirstNodes(tree);
  auto path_of = [&](uint32_t idx) { return "/" + tree.PathOf(node_of[idx]); };

  // 1. What each inode needs.
  for (uint32_t idx : layout.by_ino) {
    const InodeRec& r = tree.inodes[idx];
    InodePlan& p = plans[idx];
    std::string redirect;
    const bool object = HasObject(layout, r);
    if (object) {
      if (r.ino >= digests.size()) return Status::InvalidArgument("internal error: " + path_of(idx) + ": no digest");
      redirect = format::OverlayRedirect(objects::ObjectRelPath(digests[r.ino]));
    }
    DAXFS_ASSIGN_OR_RETURN(p.xattrs, XattrBody(ViewXattrs(layout, r, object ? &redirect : nullptr), path_of(idx)));
    const uint64_t head = kInodeBytes + p.xattrs.size();
    if (head > (idx == layout.by_ino.front() ? kBlk - kRootAt : kBlk))
      return Status::NotSupported(path_of(idx) + ": its xattrs (" + std::to_string(p.xattrs.size()) +
                                  " bytes) do not fit in one EROFS block with the inode");
    uint64_t content = 0;  // bytes to place inline or in blocks of its own
    if (object) {
      // Holes; the chunk map goes where inline data would.
      const HoleChunks chunks = HoleChunksOf(r.size);
      p.size = r.size;
      p.layout = erofs::kLayoutChunkBased;
      p.chunk_format = chunks.format;
      p.inline_size = chunks.count * 4;
      if (head + p.inline_size > (idx == layout.by_ino.front() ? kBlk - kRootAt : kBlk))
        return Status::NotSupported(path_of(idx) + ": its EROFS inode, xattrs and chunk map do not fit in a block");
      continue;
    } else if (S_ISREG(r.mode)) {
      p.size = r.size;
      if (r.ino < data.held_by_ino.size() && data.held_by_ino[r.ino] != UINT32_MAX) {
        content = r.size;
      } else if (r.size > 0) {
        const uint64_t abs = format::kBlockSize + data.offset_by_ino[r.ino];
        if (abs % kBlk != 0)
          return Status::InvalidArgument("internal error: " + path_of(idx) + ": data not block aligned");
        p.blkaddr = static_cast<uint32_t>(abs / kBlk);
      }
    } else if (S_ISDIR(r.mode)) {
      p.dir = PlanDirectory(tree, tree.nodes[layout.dir_node[idx]], idx);
      p.size = content = p.dir.size;
    } else if (S_ISLNK(r.mode)) {
      p.size = content = r.target.size();
    }
    if (content == 0) continue;
    // Inline when it fits in the inode's block (EROFS never lets inline
    // data cross one); else flat plain blocks of its own.
    const uint64_t budget = idx == layout.by_ino.front() ? kBlk - kRootAt : kBlk;
    if (head + content <= budget && (!S_ISDIR(r.mode) || p.dir.block_begin.size() == 1)) {
      p.layout = erofs::kLayoutFlatInline;
      p.inline_size = content;
    } else {
      p.extra_blocks = (content + kBlk - 1) / kBlk;
    }
  }

  // 2. Where each inode goes (nid = absolute offset / 32: the meta block
  // is block 0). The root first, at byte 2048 of block 0 (free in daxfs
  // images; its nid must fit the superblock's 16 bits); then, largest
  // first, each into the smallest unused end of a large file's last block
  // that holds it with its inline part (an inode never crosses a block,
  // and its inline data may not); the rest into fresh blocks of the area.
  // nid 0 is never used: the driver reports a nid as the inode number, and
  // readdir (glibc) skips entries whose inode number is 0.
  std::vector<uint64_t> at_of(tree.inodes.size(), 0);  // absolute
  auto record_bytes = [&](uint32_t idx) {
    const InodePlan& p = plans[idx];
    return kInodeBytes + p.xattrs.size() + p.inline_size;
  };
  const uint32_t root = layout.by_ino.front();
  at_of[root] = kRootAt;
  std::multimap<uint64_t, uint64_t> gaps;  // size -> absolute begin (32-aligned)
  auto add_gap = [&](uint64_t begin, uint64_t end) {
    begin = (begin + 31) & ~uint64_t{31};
    if (begin < end && end - begin >= kInodeBytes) gaps.emplace(end - begin, begin);
  };
  for (const auto& [b, e] : data.tail_gaps) add_gap(b, e);
  // The kernel reads a flat plain file's last block whole, and a mapping of
  // its last page shows the bytes after EOF to whoever may read the file.
  // So only what every user may see anyway goes into a tail: inodes every
  // name of which is reachable by all (every directory above searchable by
  // others), whose inline contents others may read (files, directories:
  // o+r; symlink targets and device numbers: reachable is enough), and
  // with no trusted.* xattrs (readable by root only).
  const std::vector<bool> public_record = PublicRecords(tree, layout);
  std::vector<uint32_t> order(layout.by_ino.begin() + 1, layout.by_ino.end());
  std::stable_sort(order.begin(), order.end(),
                   [&](uint32_t x, uint32_t y) { return record_bytes(x) > record_bytes(y); });
  std::vector<uint32_t> fresh;
  for (uint32_t idx : order) {
    const uint64_t bytes = record_bytes(idx);
    auto g = public_record[idx] ? gaps.lower_bound(bytes) : gaps.end();
    if (g == gaps.end()) {
      fresh.push_back(idx);
      continue;
    }
    const uint64_t begin = g->second, end = begin + g->first;
    gaps.erase(g);
    at_of[idx] = begin;
    add_gap(begin + bytes, end);
  }
  // Fresh blocks, in inode order (a directory's children stay near it).
  std::sort(fresh.begin(), fresh.end(), [&](uint32_t x, uint32_t y) { return tree.inodes[x].ino < tree.inodes[y].ino; });
  uint64_t pos = 0;  // area-relative
  for (uint32_t idx : fresh) {
    const uint64_t bytes = record_bytes(idx);
    pos = (pos + 31) & ~uint64_t{31};
    if (pos % kBlk + bytes > kBlk) pos = (pos + kBlk - 1) / kBlk * kBlk;
    at_of[idx] = area_start + pos;
    pos += bytes;
  }
  uint64_t extra = (pos + kBlk - 1) / kBlk * kBlk;
  for (uint32_t idx : layout.by_ino) {
    InodePlan& p = plans[idx];
    if (p.extra_blocks == 0) continue;
    p.extra_at = extra;
    p.blkaddr = static_cast<uint32_t>((area_start + extra) / kBlk);
    extra += p.extra_blocks * kBlk;
  }
  std::vector<uint64_t> nid_of(tree.inodes.size(), 0);
  for (uint32_t idx : layout.by_ino) nid_of[idx] = at_of[idx] >> erofs::kSlotBits;
  if ((area_start + extra) / kBlk > UINT32_MAX)
    return Status::NotSupported("the image is too large for an EROFS view (more than 2^32 blocks)");

  // 3. The bytes.
  ErofsView view;
  view.area.assign(extra, std::byte{0});
  view.inline_offset_by_ino.assign(data.held_by_ino.size(), 0);
  std::vector<std::byte> rec;
  bool any_chunked = false;
  for (uint32_t idx : layout.by_ino) {
    const InodeRec& r = tree.inodes[idx];
    const InodePlan& p = plans[idx];
    erofs::InodeExtended in{};
    in.i_format = erofs::Format(p.layout);
    in.i_xattr_icount = p.xattrs.empty() ? 0 : static_cast<uint16_t>((p.xattrs.size() - 12) / 4 + 1);
    in.i_mode = static_cast<uint16_t>(r.mode);
    in.i_size = p.size;
    in.i_u = S_ISCHR(r.mode) || S_ISBLK(r.mode)       ? r.rdev
             : p.layout == erofs::kLayoutChunkBased ? p.chunk_format
                                                    : p.blkaddr;
    in.i_ino = r.ino;
    in.i_uid = r.uid;
    in.i_gid = r.gid;
    in.i_mtime = static_cast<uint64_t>(r.mtime_sec);
    in.i_mtime_nsec = r.mtime_nsec;
    in.i_nlink = r.nlink;
    const uint64_t at = at_of[idx];
    const bool in_area = at >= area_start;
    rec.assign(record_bytes(idx), std::byte{0});
    std::memcpy(rec.data(), &in, sizeof in);
    if (!p.xattrs.empty()) std::memcpy(rec.data() + kInodeBytes, p.xattrs.data(), p.xattrs.size());
    // Content: inline after the record's head, or in blocks of its own.
    std::byte* content = nullptr;
    uint64_t content_at = 0;  // absolute
    if (p.inline_size) {
      content = rec.data() + kInodeBytes + p.xattrs.size();
      content_at = at + kInodeBytes + p.xattrs.size();
    } else if (p.extra_blocks) {
      content = view.area.data() + p.extra_at;
      content_at = area_start + p.extra_at;
    }
    if (content != nullptr) {
      if (p.layout == erofs::kLayoutChunkBased) {
        std::memset(content, 0xff, p.inline_size);  // kNullAddr: every chunk a hole
        any_chunked = true;
      } else if (S_ISREG(r.mode)) {
        const auto& bytes = data.held[data.held_by_ino[r.ino]];
        std::memcpy(content, bytes.data(), bytes.size());
        view.inline_bytes += bytes.size();
        view.inline_offset_by_ino[r.ino] = content_at - format::kBlockSize;
      } else if (S_ISDIR(r.mode)) {
        for (size_t b = 0; b < p.dir.block_begin.size(); ++b)
          SerializeDirBlock(p.dir, b, nid_of, content + b * kBlk);
      } else if (S_ISLNK(r.mode)) {
        std::memcpy(content, r.target.data(), r.target.size());
      }
    }
    if (in_area) std::memcpy(view.area.data() + (at - area_start), rec.data(), rec.size());
    else view.pieces.push_back({at, rec});
  }
  // Duplicates of held contents: the daxfs inode reads the first copy.
  {
    std::vector<uint64_t> first(data.held.size(), 0);
    for (size_t ino = 0; ino < data.held_by_ino.size(); ++ino) {
      const uint32_t h = data.held_by_ino[ino];
      if (h == UINT32_MAX) continue;
      if (first[h] == 0) first[h] = view.inline_offset_by_ino[ino];
      view.inline_offset_by_ino[ino] = first[h];
    }
  }

  erofs::SuperBlock& sb = view.super;
  sb.magic = erofs::kMagic;
  sb.blkszbits = erofs::kBlockBits;
  sb.root_nid = static_cast<uint16_t>(kRootAt >> erofs::kSlotBits);
  sb.inos = layout.by_ino.size();
  sb.build_time = static_cast<uint64_t>(build_time);
  sb.blocks = static_cast<uint32_t>((area_start + extra) / kBlk);
  sb.meta_blkaddr = 0;
  if (any_chunked) sb.feature_incompat |= erofs::kIncompatChunkedFile;
  std::memcpy(sb.volume_name, options.label.data(), std::min(options.label.size(), sizeof sb.volume_name));
  return view;
}

}  // namespace daxfs::build
