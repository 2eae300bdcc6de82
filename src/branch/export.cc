// Export: any FsView (a branch, main, an image) as a new read-only image,
// through the builder's Source interface.
#include <sys/stat.h>

#include <unordered_map>

#include "builder/image_writer.h"
#include "builder/layout.h"
#include "builder/object_sink.h"
#include "builder/source.h"
#include "daxfs/branch.h"
#include "daxfs/format.h"

namespace daxfs {
namespace {

class ViewSource final : public build::Source {
 public:
  explicit ViewSource(const FsView& view) : view_(view) {}

  Status Scan(build::Tree* tree, const BuildOptions& options) override {
    DAXFS_ASSIGN_OR_RETURN(auto root, MakeRec(view_.root(), options));
    tree->AddNode(0, "", tree->AddInode(std::move(root)));
    std::vector<std::pair<uint32_t, Ino>> queue{{0, view_.root()}};
    for (size_t qi = 0; qi < queue.size(); ++qi) {
      const auto [node, dir] = queue[qi];
      DAXFS_ASSIGN_OR_RETURN(auto cursor, view_.opendir(dir));
      for (;;) {
        DAXFS_ASSIGN_OR_RETURN(auto e, cursor->next());
        if (!e) break;
        uint32_t inode_idx;
        auto seen = by_ino_.find(e->ino);
        if (seen != by_ino_.end() && !S_ISDIR(e->mode)) {
          inode_idx = seen->second;  // a hard link
        } else {
          DAXFS_ASSIGN_OR_RETURN(auto rec, MakeRec(e->ino, options));
          const bool is_dir = S_ISDIR(rec.mode);
          inode_idx = tree->AddInode(std::move(rec));
          if (!is_dir) by_ino_.emplace(e->ino, inode_idx);
        }
        const uint32_t child = tree->AddNode(node, e->name, inode_idx);
        if (S_ISDIR(tree->inodes[inode_idx].mode)) queue.emplace_back(child, e->ino);
      }
    }
    return Status::OK();
  }

  uint64_t DataOrderKey(const build::InodeRec& inode) const override { return inode.source_index; }

  Status EmitData(const build::Tree& tree, const std::vector<uint32_t>& order,
                  build::DataSink* sink) override {
    for (uint32_t idx : order) {
      const build::InodeRec& inode = tree.inodes[idx];
      DAXFS_RETURN_IF_ERROR(sink->BeginFile(inode));
      for (uint64_t pos = 0; pos < inode.size;) {
        DAXFS_ASSIGN_OR_RETURN(auto s, view_.read(inode.source_index, pos, inode.size - pos));
        if (s.empty())
          return Status::IOError("inode " + std::to_string(inode.source_index) +
                                     " shrank while exporting", EIO);
        if (s.data() == ZeroPage().data()) {
          DAXFS_RETURN_IF_ERROR(sink->AppendZeros(s.size()));
        } else {
          DAXFS_RETURN_IF_ERROR(sink->Append(s));
        }
        pos += s.size();
      }
      DAXFS_RETURN_IF_ERROR(sink->EndFile());
    }
    return Status::OK();
  }

 private:
  Result<build::InodeRec> MakeRec(Ino ino, const BuildOptions& options) {
    DAXFS_ASSIGN_OR_RETURN(FsAttr a, view_.stat(ino));
    build::InodeRec rec;
    rec.mode = a.mode;
    rec.uid = a.uid;
    rec.gid = a.gid;
    rec.mtime_sec = a.mtime_sec;
    rec.mtime_nsec = a.mtime_nsec;
    if (S_ISCHR(a.mode) || S_ISBLK(a.mode)) rec.rdev = format::EncodeDev(a.rdev_major, a.rdev_minor);
    if (S_ISREG(a.mode)) rec.size = a.size;
    if (S_ISLNK(a.mode)) {
      DAXFS_ASSIGN_OR_RETURN(rec.target, view_.readlink(ino));
    }
    rec.source_index = ino;
    if (options.xattrs) {
      DAXFS_RETURN_IF_ERROR(view_.list_xattrs(ino, [&](std::string_view n, std::span<const std::byte> v) {
        rec.xattrs.emplace_back(std::string(n),
                                std::string(reinterpret_cast<const char*>(v.data()), v.size()));
      }));
    }
    return rec;
  }

  const FsView& view_;
  std::unordered_map<Ino, uint32_t> by_ino_;
};

}  // namespace

Result<ExportStats> ExportView(const FsView& view, const std::string& output, bool compact) {
  BuildOptions options;
  options.compact_dirs = compact;
  DAXFS_ASSIGN_OR_RETURN(BuildStats stats, ExportView(view, output, options));
  return ExportStats{stats.inodes, stats.image_size};
}

Result<BuildStats> ExportView(const FsView& view, const std::string& output,
                              const BuildOptions& given) {
  BuildOptions options = given;
  std::unique_ptr<build::ObjectDirForBuild> objects;
  if (!given.object_dir.empty()) {
    DAXFS_ASSIGN_OR_RETURN(objects, build::ObjectDirForBuild::Prepare(given.object_dir, output));
    options.object_dir = objects->path();
  }
  ViewSource source(view);
  build::Tree tree;
  DAXFS_RETURN_IF_ERROR(source.Scan(&tree, options));
  std::vector<uint64_t> data_key(tree.inodes.size());
  for (size_t i = 0; i < tree.inodes.size(); ++i) data_key[i] = source.DataOrderKey(tree.inodes[i]);
  DAXFS_ASSIGN_OR_RETURN(build::Layout layout, build::ComputeLayout(&tree, options, data_key));
  BuildStats stats = layout.stats;
  DAXFS_RETURN_IF_ERROR(build::WriteImage(tree, layout, &source, output, options, &stats));
  if (objects) objects->Keep();
  return stats;
}

}  // namespace daxfs
