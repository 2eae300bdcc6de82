// FsView over a read-only Image, and the FsView helpers.
#include <sys/stat.h>

#include <algorithm>
#include <cstring>
#include <vector>

#include "daxfs/format.h"
#include "daxfs/fs_view.h"
#include "format/path_walk.h"

namespace daxfs {

std::span<const std::byte> ZeroPage() {
  alignas(format::kBlockSize) static const std::byte kZeros[format::kBlockSize] = {};
  return {kZeros, sizeof kZeros};
}

Result<Ino> FsView::resolve(std::string_view path) const {
  return WalkPath(root(), path, [this](Ino dir, std::string_view name) { return lookup(dir, name); });
}

Result<size_t> FsView::read_into(Ino ino, uint64_t offset, std::span<std::byte> out) const {
  size_t done = 0;
  while (done < out.size()) {
    DAXFS_ASSIGN_OR_RETURN(auto s, read(ino, offset + done, out.size() - done));
    if (s.empty()) break;
    std::memcpy(out.data() + done, s.data(), s.size());
    done += s.size();
  }
  return done;
}

namespace {

class ImageCursor final : public DirCursor {
 public:
  ImageCursor(std::shared_ptr<const Image> image, Directory dir)
      : image_(std::move(image)), dir_(dir) {}
  Result<std::optional<FsDirEntry>> next() override {
    if (i_ >= dir_.size()) return std::optional<FsDirEntry>();
    DAXFS_ASSIGN_OR_RETURN(DirEntry e, dir_.entry(i_));
    ++i_;
    return std::optional<FsDirEntry>(FsDirEntry{std::string(e.name), e.ino, e.mode});
  }

 private:
  std::shared_ptr<const Image> image_;
  Directory dir_;
  size_t i_ = 0;
};

// Unsorted (upstream) directories are listed in name order like every other
// FsView: read once and sorted.
class VectorCursor final : public DirCursor {
 public:
  explicit VectorCursor(std::vector<FsDirEntry> v) : v_(std::move(v)) {}
  Result<std::optional<FsDirEntry>> next() override {
    if (i_ >= v_.size()) return std::optional<FsDirEntry>();
    return std::optional<FsDirEntry>(v_[i_++]);
  }

 private:
  std::vector<FsDirEntry> v_;
  size_t i_ = 0;
};

class ImageView final : public FsView {
 public:
  explicit ImageView(std::shared_ptr<const Image> image) : image_(std::move(image)) {}

  Ino root() const override { return image_->root(); }
  Result<FsAttr> stat(Ino ino) const override {
    DAXFS_ASSIGN_OR_RETURN(Attr a, image_->stat(ino));
    FsAttr f;
    static_cast<Attr&>(f) = a;
    f.atime_sec = f.ctime_sec = a.mtime_sec;
    f.atime_nsec = f.ctime_nsec = a.mtime_nsec;
    return f;
  }
  Result<Ino> lookup(Ino dir, std::string_view name) const override {
    return image_->lookup(dir, name);
  }
  Result<std::unique_ptr<DirCursor>> opendir(Ino dir) const override {
    DAXFS_ASSIGN_OR_RETURN(Directory d, image_->opendir(dir));
    if (d.sorted()) return std::unique_ptr<DirCursor>(new ImageCursor(image_, d));
    std::vector<FsDirEntry> v;
    for (size_t i = 0; i < d.size(); ++i) {
      DAXFS_ASSIGN_OR_RETURN(DirEntry e, d.entry(i));
      v.push_back(FsDirEntry{std::string(e.name), e.ino, e.mode});
    }
    std::sort(v.begin(), v.end(), [](const auto& a, const auto& b) { return a.name < b.name; });
    return std::unique_ptr<DirCursor>(new VectorCursor(std::move(v)));
  }
  Result<std::string> readlink(Ino ino) const override {
    DAXFS_ASSIGN_OR_RETURN(std::string_view t, image_->readlink(ino));
    return std::string(t);
  }
  Result<std::span<const std::byte>> read(Ino ino, uint64_t offset, size_t len) const override {
    return image_->read(ino, offset, len);
  }
  Status list_xattrs(Ino ino, const std::function<void(std::string_view, std::span<const std::byte>)>&
                                  fn) const override {
    return image_->list_xattrs(ino, fn);
  }
  Result<std::span<const std::byte>> getxattr(Ino ino, std::string_view name) const override {
    return image_->getxattr(ino, name);
  }

 private:
  std::shared_ptr<const Image> image_;
};

}  // namespace

std::shared_ptr<const FsView> MakeImageView(std::shared_ptr<const Image> image) {
  return std::make_shared<ImageView>(std::move(image));
}

}  // namespace daxfs
