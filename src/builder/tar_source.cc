// Source: a tar archive (any format/compression libarchive understands).
// Pass 1 reads headers into the tree; pass 2 streams file contents in
// archive order, so the archive is read sequentially twice and never held
// in memory.
#include <archive.h>
#include <archive_entry.h>
#include <sys/stat.h>

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <unordered_map>

#include "builder/archive_entry.h"
#include "builder/source.h"
#include "daxfs/format.h"
#include "format/file_type.h"
#include "util/path_components.h"

namespace daxfs::build {
namespace {

struct ArchiveCloser {
  archive* a;
  ~ArchiveCloser() { archive_read_free(a); }
};

// Real archive formats only. Not "raw" or "empty" (they accept any file,
// or none, as an archive) and not "mtree" (a text format that accepts many
// text files and names contents by paths on this machine).
void SupportArchiveFormats(archive* a) {
  archive_read_support_filter_all(a);
  archive_read_support_format_7zip(a);
  archive_read_support_format_ar(a);
  archive_read_support_format_cab(a);
  archive_read_support_format_cpio(a);
  archive_read_support_format_iso9660(a);
  archive_read_support_format_lha(a);
  archive_read_support_format_rar(a);
  archive_read_support_format_rar5(a);
  archive_read_support_format_tar(a);
  archive_read_support_format_warc(a);
  archive_read_support_format_xar(a);
  archive_read_support_format_zip(a);
}

// A source archive is a regular, non-empty file: not a device (/dev/zero
// reads as an endless empty tar), a FIFO (read twice), or an empty file.
Status CheckArchiveFile(const std::string& path) {
  struct stat st;
  if (stat(path.c_str(), &st) != 0)
    return Status::FromErrno(errno, path + ": " + std::strerror(errno));
  if (S_ISDIR(st.st_mode))
    return Status::IsDirectory(path + ": is a directory, but --tar reads an archive file "
                               "(without --tar a directory is imaged as it is)");
  if (!S_ISREG(st.st_mode))
    return Status::InvalidArgument(path + ": is " + DescribeFileType(st.st_mode) +
                                   ", not a directory or an archive");
  if (st.st_size == 0) return Status::InvalidArgument(path + ": is an empty file, not an archive");
  return Status::OK();
}

// "./usr//lib/" -> "usr/lib"; false for a path with "..".
bool NormalizePath(std::string_view in, std::string* out) {
  const auto comps = SplitPathComponents(in, DotDot::kRefuse);
  if (!comps) return false;
  *out = JoinPathComponents(*comps);
  return true;
}

class TarSource final : public Source {
 public:
  explicit TarSource(std::string path) : path_(std::move(path)) {}

  Status Scan(Tree* tree, const BuildOptions& options) override {
    tree_ = tree;
    options_ = &options;
    InodeRec root;
    root.mode = S_IFDIR | 0755;
    ApplyMetadataOptions(&root, options);
    tree->AddNode(0, "", tree->AddInode(std::move(root)));
    paths_.emplace("", 0);

    DAXFS_RETURN_IF_ERROR(CheckArchiveFile(path_));
    archive* a = nullptr;
    DAXFS_RETURN_IF_ERROR(OpenArchive(&a));
    ArchiveCloser closer{a};
    archive_entry* e;
    uint64_t index = 0;
    for (;; ++index) {
      int r = archive_read_next_header(a, &e);
      if (r == ARCHIVE_EOF) break;
      if (r < ARCHIVE_WARN) {
        if (index == 0 && archive_format(a) == 0)  // no format recognised the input
          return NotAnArchive(a);
        return ArchiveError(a, "reading header");
      }
      DAXFS_RETURN_IF_ERROR(AddEntry(e, index));
      if (options.progress && (index & 1023) == 0) {
        BuildProgress p;
        p.phase = "scanning";
        p.items_done = index;
        options.progress(p);
      }
    }
    return Status::OK();
  }

  uint64_t DataOrderKey(const InodeRec& inode) const override { return inode.source_index; }

  Status EmitData(const Tree& tree, const std::vector<uint32_t>& order,
                  DataSink* sink) override {
    archive* a = nullptr;
    DAXFS_RETURN_IF_ERROR(OpenArchive(&a));
    ArchiveCloser closer{a};
    archive_entry* e;
    uint64_t index = 0;
    for (uint32_t idx : order) {
      const InodeRec& inode = tree.inodes[idx];
      for (;; ++index) {  // skip to the entry holding this inode's data
        if (archive_read_next_header(a, &e) < ARCHIVE_WARN) return ArchiveError(a, "rereading header");
        if (index == inode.source_index) break;
      }
      ++index;
      DAXFS_RETURN_IF_ERROR(sink->BeginFile(inode));
      uint64_t pos = 0;
      for (;;) {
        const void* buf;
        size_t len;
        la_int64_t off;
        int r = archive_read_data_block(a, &buf, &len, &off);
        if (r == ARCHIVE_EOF) break;
        if (r < ARCHIVE_WARN) return ArchiveError(a, std::string(archive_entry_pathname(e)) + ": reading data");
        const uint64_t at = static_cast<uint64_t>(off);
        if (at < pos || at > inode.size) return Status::Corruption(path_ + ": " + archive_entry_pathname(e) + ": bad sparse map");
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
  // No archive format matched. When a compression filter did (gzip, zstd,
  // ...), the file is a damaged or truncated compressed stream, not "no
  // archive": say which.
  Status NotAnArchive(archive* a) const {
    const int filters = archive_filter_count(a);
    for (int i = 0; i < filters; ++i) {
      if (archive_filter_code(a, i) == ARCHIVE_FILTER_NONE) continue;
      const char* name = archive_filter_name(a, i);
      return Status::Corruption(path_ + ": damaged or truncated " + (name ? name : "compressed") +
                                " stream (" + ArchiveMessage(a) + ")");
    }
    // A failed open forgets its filters: tell compressed input by its magic.
    unsigned char m[6] = {};
    if (FILE* f = std::fopen(path_.c_str(), "rb")) {
      const size_t got = std::fread(m, 1, sizeof m, f);
      std::fclose(f);
      const char* kind = nullptr;
      if (got >= 2 && m[0] == 0x1f && m[1] == 0x8b) kind = "gzip";
      else if (got >= 4 && m[0] == 0x28 && m[1] == 0xb5 && m[2] == 0x2f && m[3] == 0xfd) kind = "zstd";
      else if (got >= 6 && m[0] == 0xfd && m[1] == '7' && m[2] == 'z' && m[3] == 'X' && m[4] == 'Z' && m[5] == 0) kind = "xz";
      else if (got >= 3 && m[0] == 'B' && m[1] == 'Z' && m[2] == 'h') kind = "bzip2";
      else if (got >= 4 && m[0] == 0x04 && m[1] == 0x22 && m[2] == 0x4d && m[3] == 0x18) kind = "lz4";
      if (kind)
        return Status::Corruption(path_ + ": damaged or truncated " + kind + " stream (" + ArchiveMessage(a) + ")");
    }
    return Status::InvalidArgument(path_ + ": not a directory or an archive libarchive recognises (" +
                                   ArchiveMessage(a) + ")");
  }

  Status OpenArchive(archive** out) {
    archive* a = archive_read_new();
    if (a == nullptr) return Status::IOError(path_ + ": libarchive", ENOMEM);
    SupportArchiveFormats(a);
    if (archive_read_open_filename(a, path_.c_str(), 1 << 20) != ARCHIVE_OK) {
      // Opening reads the start to pick a format: failing that, it is no archive.
      const int err = archive_errno(a);
      const bool io_error = err == EACCES || err == EPERM || err == EIO || err == ENOENT || err == ENOMEM;
      Status s = archive_format(a) == 0 && !io_error
                     ? NotAnArchive(a)
                     : ArchiveError(a, "opening");
      archive_read_free(a);
      return s;
    }
    *out = a;
    return Status::OK();
  }

  static std::string ArchiveMessage(archive* a) {
    const char* msg = archive_error_string(a);
    return msg ? msg : "unknown error";
  }

  Status ArchiveError(archive* a, const std::string& what) {
    return Status::InvalidArgument(path_ + ": " + what + ": " + ArchiveMessage(a));
  }

  // The node for directory `path`, creating missing parents like tar does.
  Result<uint32_t> DirNode(const std::string& path) {
    if (auto it = paths_.find(path); it != paths_.end()) {
      if (!S_ISDIR(tree_->inodes[tree_->nodes[it->second].inode].mode))
        return Status::NotDirectory(path_ + ": '" + path + "' is used as a directory but is not one");
      return it->second;
    }
    const auto slash = path.rfind('/');
    const std::string parent_path = slash == std::string::npos ? "" : path.substr(0, slash);
    DAXFS_ASSIGN_OR_RETURN(uint32_t parent, DirNode(parent_path));
    InodeRec rec;
    rec.mode = S_IFDIR | 0755;
    ApplyMetadataOptions(&rec, *options_);
    const uint32_t node = tree_->AddNode(parent, path.substr(slash + 1), tree_->AddInode(std::move(rec)));
    paths_.emplace(path, node);
    return node;
  }

  Status AddEntry(archive_entry* e, uint64_t index) {
    std::string path;
    const char* raw = archive_entry_pathname(e);
    if (raw == nullptr || !NormalizePath(raw, &path))
      return Status::InvalidArgument(path_ + ": entry " + std::to_string(index) + ": unsafe path '" +
                                     (raw ? raw : "") + "'");
    const auto slash = path.rfind('/');
    const std::string name = slash == std::string::npos ? path : path.substr(slash + 1);
    if (!path.empty() && name.size() > format::kNameMax)
      return Status::InvalidArgument(path_ + ": " + path + ": name longer than 255 bytes");

    if (const char* link = archive_entry_hardlink(e)) {
      std::string target;
      auto it = NormalizePath(link, &target) ? paths_.find(target) : paths_.end();
      if (it == paths_.end())
        return Status::InvalidArgument(path_ + ": " + path + ": hard link to unknown '" + link + "'");
      const uint32_t inode = tree_->nodes[it->second].inode;
      if (S_ISDIR(tree_->inodes[inode].mode))
        return Status::InvalidArgument(path_ + ": " + path + ": hard link to a directory");
      return Place(path, name, inode);
    }

    DAXFS_ASSIGN_OR_RETURN(InodeRec rec, InodeFromArchiveEntry(e, *options_, path_ + ": " + path, index));
    rec.source_index = index;
    if (path.empty()) {  // "./" entry: the root's own metadata
      if (!S_ISDIR(rec.mode)) return Status::InvalidArgument(path_ + ": root entry is not a directory");
      tree_->inodes[0] = std::move(rec);
      return Status::OK();
    }
    return Place(path, name, tree_->AddInode(std::move(rec)));
  }

  // Puts inode at path; a later entry for an existing path replaces it, as
  // extracting the archive would (directories keep their children).
  Status Place(const std::string& path, const std::string& name, uint32_t inode) {
    if (auto it = paths_.find(path); it != paths_.end()) {
      Node& node = tree_->nodes[it->second];
      const bool old_dir = S_ISDIR(tree_->inodes[node.inode].mode);
      const bool new_dir = S_ISDIR(tree_->inodes[inode].mode);
      if (old_dir && !new_dir && !node.children.empty())
        return Status::InvalidArgument(path_ + ": " + path + ": replaces a non-empty directory");
      node.inode = inode;
      return Status::OK();
    }
    const auto slash = path.rfind('/');
    DAXFS_ASSIGN_OR_RETURN(uint32_t parent, DirNode(slash == std::string::npos ? "" : path.substr(0, slash)));
    paths_.emplace(path, tree_->AddNode(parent, name, inode));
    return Status::OK();
  }

  std::string path_;
  Tree* tree_ = nullptr;
  const BuildOptions* options_ = nullptr;
  std::unordered_map<std::string, uint32_t> paths_;
};

}  // namespace

std::unique_ptr<Source> NewTarSource(std::string path) {
  return std::make_unique<TarSource>(std::move(path));
}

}  // namespace daxfs::build
