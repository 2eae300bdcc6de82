// Source: a container image's layers applied in order, as the OCI image
// spec's "applying changesets" says: each layer's entries replace what the
// lower layers had at their paths; ".wh.NAME" removes NAME from the lower
// layers; ".wh..wh..opq" hides everything the lower layers had in its
// directory; hard links may name files of this or a lower layer. Paths
// that leave the root ("..") or pass through a symlink are refused.
//
// Scan reads every layer's headers into a merged tree; EmitData reads the
// layers again, in order, for the contents of the files that survived.
// Layers are read in place from the image (directory or archive) through
// libarchive (plain, gzip or zstd tar), never unpacked.
#include <archive.h>
#include <archive_entry.h>
#include <sys/stat.h>

#include <algorithm>
#include <cstring>
#include <map>
#include <optional>

#include "builder/archive_entry.h"
#include "builder/source.h"
#include "container/image_source.h"
#include "daxfs/format.h"
#include "format/file_type.h"
#include "util/path_components.h"

namespace daxfs::build {
namespace {

constexpr std::string_view kWhiteout = ".wh.";
constexpr std::string_view kOpaque = ".wh..wh..opq";
constexpr int kLayerShift = 40;  // source_index = layer << 40 | entry

struct ArchiveFree {
  void operator()(archive* a) const { archive_read_free(a); }
};

// One layer's tar, read through libarchive from its blob stream.
class LayerReader {
 public:
  static Result<std::unique_ptr<LayerReader>> Open(const container::ContainerImage& image, size_t layer) {
    auto r = std::unique_ptr<LayerReader>(new LayerReader);
    r->where_ = image.store->Where(image.layers[layer].blob);
    DAXFS_ASSIGN_OR_RETURN(r->stream_, image.store->Open(image.layers[layer].blob));
    r->a_.reset(archive_read_new());
    if (!r->a_) return Status::IOError(r->where_ + ": libarchive", ENOMEM);
    archive_read_support_filter_all(r->a_.get());
    archive_read_support_format_tar(r->a_.get());
    r->buf_.resize(1 << 20);
    if (archive_read_open(r->a_.get(), r.get(), nullptr, &LayerReader::ReadCb, nullptr) != ARCHIVE_OK)
      return Status::Corruption(r->where_ + ": not a tar layer (" + r->Message() + ")");
    return r;
  }

  // The next entry, or nullptr at the end.
  Result<archive_entry*> Next() {
    archive_entry* e = nullptr;
    const int rc = archive_read_next_header(a_.get(), &e);
    if (rc == ARCHIVE_EOF) return static_cast<archive_entry*>(nullptr);
    if (rc < ARCHIVE_WARN) return Status::Corruption(where_ + ": entry " + std::to_string(index_) + ": " + Message());
    ++index_;
    return e;
  }
  uint64_t index() const { return index_ - 1; }  // of the entry Next returned last
  uint64_t count() const { return index_; }      // entries read so far
  archive* raw() { return a_.get(); }
  const std::string& where() const { return where_; }
  std::string Message() {
    const char* m = archive_error_string(a_.get());
    return m ? m : "unknown error";
  }

 private:
  LayerReader() = default;
  static la_ssize_t ReadCb(archive* a, void* self, const void** out) {
    auto* r = static_cast<LayerReader*>(self);
    auto n = r->stream_->Read(r->buf_);
    if (!n.ok()) {
      archive_set_error(a, EIO, "%s", n.status().message().c_str());
      return -1;
    }
    *out = r->buf_.data();
    return static_cast<la_ssize_t>(*n);
  }

  std::string where_;
  std::unique_ptr<container::BlobStream> stream_;
  std::unique_ptr<archive, ArchiveFree> a_;
  std::vector<std::byte> buf_;
  uint64_t index_ = 0;
};

// "./usr//lib/" -> components; false for a path with "..".
bool SplitPath(std::string_view in, std::vector<std::string>* out) {
  const auto comps = SplitPathComponents(in, DotDot::kRefuse);
  if (!comps) return false;
  out->assign(comps->begin(), comps->end());
  return true;
}

class LayersSource final : public Source {
 public:
  // `only_layer` >= 0: that layer alone, its whiteouts stored as OverlayFS
  // whiteouts (a 0/0 character device; trusted.overlay.opaque=y on an
  // opaque directory), to be stacked by OverlayFS over the images of the
  // layers below it (one image per layer, as containerd's EROFS
  // snapshotter keeps them).
  LayersSource(container::ContainerImage image, int only_layer)
      : image_(std::move(image)), only_layer_(only_layer) {}

  std::string ContainerConfig() const override { return image_.config; }

  Status Scan(Tree* tree, const BuildOptions& options) override {
    options_ = &options;
    InodeRec root;
    root.mode = S_IFDIR | 0755;
    ApplyMetadataOptions(&root, options);
    inodes_.push_back(std::move(root));
    nodes_.push_back(MNode{"", 0, 0, {}, 0, false, 0});
    for (size_t l = 0; l < image_.layers.size(); ++l) {
      if (only_layer_ >= 0 && l != static_cast<size_t>(only_layer_)) continue;
      DAXFS_ASSIGN_OR_RETURN(auto reader, LayerReader::Open(image_, l));
      for (;;) {
        DAXFS_ASSIGN_OR_RETURN(archive_entry * e, reader->Next());
        if (e == nullptr) break;
        DAXFS_RETURN_IF_ERROR(Apply(*reader, e, static_cast<uint32_t>(l + 1)));
      }
      if (options.progress) {
        BuildProgress p;
        p.phase = "applying layers";
        p.items_done = l + 1;
        p.items_total = image_.layers.size();
        options.progress(p);
      }
    }
    ToTree(tree);
    return Status::OK();
  }

  uint64_t DataOrderKey(const InodeRec& inode) const override { return inode.source_index; }

  Status EmitData(const Tree& tree, const std::vector<uint32_t>& order, DataSink* sink) override {
    std::unique_ptr<LayerReader> reader;
    uint64_t layer = 0;
    for (uint32_t idx : order) {
      const InodeRec& inode = tree.inodes[idx];
      const uint64_t want_layer = inode.source_index >> kLayerShift;
      const uint64_t want_entry = inode.source_index & ((uint64_t{1} << kLayerShift) - 1);
      if (!reader || want_layer != layer || reader->count() > want_entry) {
        if (want_layer == 0 || want_layer > image_.layers.size())
          return Status::InvalidArgument("internal error: a file with no layer");
        DAXFS_ASSIGN_OR_RETURN(reader, LayerReader::Open(image_, want_layer - 1));
        layer = want_layer;
      }
      archive_entry* e = nullptr;
      do {
        DAXFS_ASSIGN_OR_RETURN(e, reader->Next());
        if (e == nullptr) return Status::Corruption(reader->where() + ": changed while being read (entry " +
                                                    std::to_string(want_entry) + " is gone)");
      } while (reader->count() <= want_entry);
      DAXFS_RETURN_IF_ERROR(sink->BeginFile(inode));
      uint64_t pos = 0;
      for (;;) {
        const void* buf;
        size_t len;
        la_int64_t off;
        const int r = archive_read_data_block(reader->raw(), &buf, &len, &off);
        if (r == ARCHIVE_EOF) break;
        if (r < ARCHIVE_WARN)
          return Status::Corruption(reader->where() + ": " + archive_entry_pathname(e) + ": " + reader->Message());
        const uint64_t at = static_cast<uint64_t>(off);
        if (at < pos || at > inode.size)
          return Status::Corruption(reader->where() + ": " + archive_entry_pathname(e) + ": bad sparse map");
        if (at > pos) DAXFS_RETURN_IF_ERROR(sink->AppendZeros(at - pos));
        len = static_cast<size_t>(std::min<uint64_t>(len, inode.size - at));
        DAXFS_RETURN_IF_ERROR(sink->Append({static_cast<const std::byte*>(buf), len}));
        pos = at + len;
      }
      if (pos < inode.size) DAXFS_RETURN_IF_ERROR(sink->AppendZeros(inode.size - pos));
      DAXFS_RETURN_IF_ERROR(sink->EndFile());
    }
    return Status::OK();
  }

 private:
  // A name in the merged tree. `touched`: the last layer that wrote this
  // entry or placed something under it (an opaque directory keeps what its
  // own layer has under it); `written`: the last layer that wrote the entry
  // itself (a whiteout removes only what lower layers wrote).
  struct MNode {
    std::string name;
    uint32_t parent = 0;
    uint32_t inode = 0;
    std::map<std::string, uint32_t> children;
    uint32_t touched = 0;
    bool removed = false;
    uint32_t written = 0;
  };

  bool IsDir(uint32_t n) const { return S_ISDIR(inodes_[nodes_[n].inode].mode); }

  std::string PathOf(uint32_t n) const {
    std::string p;
    for (; n != 0; n = nodes_[n].parent) p = "/" + nodes_[n].name + p;
    return p.empty() ? "/" : p;
  }

  // The directory at `comps[0..count)` for an entry to be placed in, made
  // (0755, like tar) where missing; every directory on the way counts as
  // holding this layer's content (an opaque marker keeps it).
  Result<uint32_t> Dir(const LayerReader& r, const std::vector<std::string>& comps, size_t count, uint32_t layer,
                       const std::string& entry) {
    uint32_t cur = 0;
    nodes_[0].touched = layer;
    for (size_t i = 0; i < count; ++i) {
      auto it = nodes_[cur].children.find(comps[i]);
      if (it == nodes_[cur].children.end()) {
        InodeRec rec;
        rec.mode = S_IFDIR | 0755;
        ApplyMetadataOptions(&rec, *options_);
        inodes_.push_back(std::move(rec));
        nodes_.push_back(MNode{comps[i], cur, static_cast<uint32_t>(inodes_.size() - 1), {}, layer, false, layer});
        const auto n = static_cast<uint32_t>(nodes_.size() - 1);
        nodes_[cur].children.emplace(comps[i], n);
        cur = n;
        continue;
      }
      cur = it->second;
      if (!IsDir(cur))
        return Status::InvalidArgument(r.where() + ": '" + entry + "' goes through " + PathOf(cur) + ", which is " +
                                       (S_ISLNK(inodes_[nodes_[cur].inode].mode) ? "a symlink" : "not a directory") +
                                       ": refusing a layer that writes outside its own tree");
      nodes_[cur].touched = layer;
    }
    return cur;
  }

  // The existing directory at `comps[0..count)` for a whiteout or opaque
  // marker (nothing to remove where it does not exist: nullopt); through a
  // symlink is refused as for any entry.
  Result<std::optional<uint32_t>> FindDir(const LayerReader& r, const std::vector<std::string>& comps, size_t count,
                                          const std::string& entry) {
    uint32_t cur = 0;
    for (size_t i = 0; i < count; ++i) {
      auto it = nodes_[cur].children.find(comps[i]);
      if (it == nodes_[cur].children.end()) return std::optional<uint32_t>();
      cur = it->second;
      if (!IsDir(cur))
        return Status::InvalidArgument(r.where() + ": '" + entry + "' goes through " + PathOf(cur) + ", which is " +
                                       (S_ISLNK(inodes_[nodes_[cur].inode].mode) ? "a symlink" : "not a directory") +
                                       ": refusing a layer that writes outside its own tree");
    }
    return std::optional<uint32_t>(cur);
  }

  void Remove(uint32_t n) {
    nodes_[nodes_[n].parent].children.erase(nodes_[n].name);
    nodes_[n].removed = true;
  }

  // Opaque: what lower layers put under `dir` goes; this layer's stays.
  // (A loop, not recursion: a layer may nest directories arbitrarily deep.)
  void Purge(uint32_t top, uint32_t layer) {
    std::vector<uint32_t> todo{top};
    while (!todo.empty()) {
      const uint32_t dir = todo.back();
      todo.pop_back();
      for (auto it = nodes_[dir].children.begin(); it != nodes_[dir].children.end();) {
        const uint32_t c = it->second;
        if (nodes_[c].touched == layer) {
          if (IsDir(c)) todo.push_back(c);
          ++it;
        } else {
          nodes_[c].removed = true;
          it = nodes_[dir].children.erase(it);
        }
      }
    }
  }

  Status Apply(LayerReader& r, archive_entry* e, uint32_t layer) {
    const char* raw = archive_entry_pathname(e);
    if (raw == nullptr || *raw == '\0')
      return Status::InvalidArgument(r.where() + ": entry " + std::to_string(r.index()) + " has no name");
    const std::string entry = raw;
    std::vector<std::string> comps;
    if (!SplitPath(entry, &comps))
      return Status::InvalidArgument(r.where() + ": entry '" + entry + "' leaves the root ('..'): refusing the layer");
    for (const auto& c : comps)
      if (c.size() > format::kNameMax) return Status::InvalidArgument(r.where() + ": " + entry + ": name longer than 255 bytes");
    const std::string base = comps.empty() ? "" : comps.back();

    if (base == kOpaque) {
      if (only_layer_ >= 0) {
        DAXFS_ASSIGN_OR_RETURN(uint32_t dir, Dir(r, comps, comps.size() - 1, layer, entry));
        return MarkOpaque(dir);
      }
      DAXFS_ASSIGN_OR_RETURN(auto dir, FindDir(r, comps, comps.size() - 1, entry));
      if (dir) Purge(*dir, layer);
      return Status::OK();
    }
    if (base.starts_with(kWhiteout) && only_layer_ >= 0) {
      // An OverlayFS whiteout in its place (replacing nothing: one layer).
      InodeRec rec;
      rec.mode = S_IFCHR;
      rec.rdev = format::EncodeDev(0, 0);
      ApplyMetadataOptions(&rec, *options_);
      inodes_.push_back(std::move(rec));
      comps.back() = base.substr(kWhiteout.size());
      if (comps.back().empty()) return Status::InvalidArgument(r.where() + ": " + entry + ": whiteout of nothing");
      DAXFS_ASSIGN_OR_RETURN(uint32_t dir, Dir(r, comps, comps.size() - 1, layer, entry));
      return Place(dir, comps.back(), static_cast<uint32_t>(inodes_.size() - 1), layer);
    }
    if (base.starts_with(kWhiteout)) {
      DAXFS_ASSIGN_OR_RETURN(auto dir, FindDir(r, comps, comps.size() - 1, entry));
      if (!dir) return Status::OK();
      auto it = nodes_[*dir].children.find(base.substr(kWhiteout.size()));
      if (it != nodes_[*dir].children.end() && nodes_[it->second].written < layer) Remove(it->second);
      return Status::OK();
    }

    uint32_t inode;
    if (const char* link = archive_entry_hardlink(e)) {
      if (comps.empty()) return Status::InvalidArgument(r.where() + ": '" + entry + "': the root as a hard link");
      std::vector<std::string> target;
      if (!SplitPath(link, &target) || target.empty())
        return Status::InvalidArgument(r.where() + ": " + entry + ": hard link to '" + link + "' outside the root");
      uint32_t cur = 0;
      for (size_t i = 0; i < target.size(); ++i) {
        auto it = nodes_[cur].children.find(target[i]);
        if (it == nodes_[cur].children.end() || (i + 1 < target.size() && !IsDir(it->second)))
          return Status::InvalidArgument(r.where() + ": " + entry + ": hard link to '" + link +
                                         "', which no layer up to this one has");
        cur = it->second;
      }
      if (IsDir(cur)) return Status::InvalidArgument(r.where() + ": " + entry + ": hard link to a directory");
      if (only_layer_ >= 0 && nodes_[cur].touched != layer)
        return Status::NotSupported(r.where() + ": " + entry + ": a hard link to '" + link +
                                    "', a file of a lower layer, cannot be kept in an image of this layer alone "
                                    "(build one image of the whole container image instead)");
      inode = nodes_[cur].inode;
    } else {
      DAXFS_ASSIGN_OR_RETURN(InodeRec rec, InodeFromArchiveEntry(e, *options_, r.where() + ": " + entry, r.index()));
      rec.source_index = uint64_t{layer} << kLayerShift | r.index();
      if (comps.empty()) {  // "./": the root's own metadata
        if (!S_ISDIR(rec.mode)) return Status::InvalidArgument(r.where() + ": root entry is not a directory");
        inodes_[nodes_[0].inode] = std::move(rec);
        return Status::OK();
      }
      inodes_.push_back(std::move(rec));
      inode = static_cast<uint32_t>(inodes_.size() - 1);
    }
    DAXFS_ASSIGN_OR_RETURN(uint32_t dir, Dir(r, comps, comps.size() - 1, layer, entry));
    return Place(dir, base, inode, layer);
  }

  // The directory's own marker for OverlayFS: hide the lower layers' entries.
  Status MarkOpaque(uint32_t dir) {
    auto& xattrs = inodes_[nodes_[dir].inode].xattrs;
    xattrs.erase(std::remove_if(xattrs.begin(), xattrs.end(),
                                [](const auto& x) { return x.first == "trusted.overlay.opaque"; }),
                 xattrs.end());
    xattrs.emplace_back("trusted.overlay.opaque", "y");
    std::sort(xattrs.begin(), xattrs.end());
    return Status::OK();
  }

  // Puts `inode` at `base` in `dir`, replacing what was there.
  Status Place(uint32_t dir, const std::string& base, uint32_t inode, uint32_t layer) {
    auto it = nodes_[dir].children.find(base);
    if (it != nodes_[dir].children.end()) {
      MNode& old = nodes_[it->second];
      // A directory over a directory keeps the children (new metadata);
      // anything else replaces the old entry and what was under it.
      const bool dir_over_dir = IsDir(it->second) && S_ISDIR(inodes_[inode].mode);
      if (!dir_over_dir) {
        for (const auto& [n, c] : old.children) nodes_[c].removed = true;
        old.children.clear();
      }
      // One layer alone: an opaque marker seen before the directory's own
      // entry stays with it.
      const uint32_t old_inode = old.inode;
      old.inode = inode;
      old.touched = old.written = layer;
      if (dir_over_dir && only_layer_ >= 0)
        for (const auto& [name, value] : inodes_[old_inode].xattrs)
          if (name == "trusted.overlay.opaque") return MarkOpaque(it->second);
      return Status::OK();
    }
    nodes_.push_back(MNode{base, dir, inode, {}, layer, false, layer});
    nodes_[dir].children.emplace(base, static_cast<uint32_t>(nodes_.size() - 1));
    return Status::OK();
  }

  // The merged tree, as the builder's Tree (removed names dropped; inodes
  // that lost every name too).
  void ToTree(Tree* tree) {
    std::vector<uint32_t> new_inode(inodes_.size(), UINT32_MAX);
    auto inode_of = [&](uint32_t old) {
      if (new_inode[old] == UINT32_MAX) new_inode[old] = tree->AddInode(std::move(inodes_[old]));
      return new_inode[old];
    };
    tree->AddNode(0, "", inode_of(nodes_[0].inode));
    std::vector<std::pair<uint32_t, uint32_t>> todo{{0, 0}};  // (merged node, tree node)
    while (!todo.empty()) {
      auto [m, t] = todo.back();
      todo.pop_back();
      for (const auto& [name, c] : nodes_[m].children) {
        const uint32_t tn = tree->AddNode(t, name, inode_of(nodes_[c].inode));
        if (!nodes_[c].children.empty()) todo.emplace_back(c, tn);
      }
    }
    nodes_.clear();
    inodes_.clear();
  }

  container::ContainerImage image_;
  int only_layer_ = -1;
  const BuildOptions* options_ = nullptr;
  std::vector<MNode> nodes_;
  std::vector<InodeRec> inodes_;
};

}  // namespace

std::unique_ptr<Source> NewLayersSource(container::ContainerImage image, int only_layer) {
  return std::make_unique<LayersSource>(std::move(image), only_layer);
}

}  // namespace daxfs::build
