#include "check/overlay_metadata_view.h"

#include <sys/stat.h>

#include <algorithm>
#include <deque>
#include <mutex>
#include <string>
#include <utility>
#include <vector>

#include "format/overlay_xattrs.h"

namespace daxfs {

namespace {

class OverlayMetadataView final : public FsView {
 public:
  explicit OverlayMetadataView(std::shared_ptr<const Image> image)
      : image_(image), base_(MakeImageView(std::move(image))) {}

  Ino root() const override { return base_->root(); }
  Result<FsAttr> stat(Ino ino) const override { return base_->stat(ino); }
  Result<Ino> lookup(Ino dir, std::string_view name) const override { return base_->lookup(dir, name); }
  Result<std::unique_ptr<DirCursor>> opendir(Ino dir) const override { return base_->opendir(dir); }
  Result<std::string> readlink(Ino ino) const override { return base_->readlink(ino); }

  Result<std::span<const std::byte>> read(Ino ino, uint64_t offset, size_t len) const override {
    DAXFS_ASSIGN_OR_RETURN(FsAttr a, base_->stat(ino));
    if (!S_ISREG(a.mode)) return base_->read(ino, offset, len);
    if (offset >= a.size) return std::span<const std::byte>{};
    const uint64_t n = std::min<uint64_t>({len, a.size - offset, ZeroPage().size()});
    return ZeroPage().first(n);
  }

  Status list_xattrs(Ino ino,
                     const std::function<void(std::string_view, std::span<const std::byte>)>& fn) const override {
    DAXFS_ASSIGN_OR_RETURN(auto all, Xattrs(ino));
    for (const auto& [n, v] : all) fn(n, std::as_bytes(std::span(v)));
    return Status::OK();
  }

  Result<std::span<const std::byte>> getxattr(Ino ino, std::string_view name) const override {
    // The values are made here: keep each one for the view's life (a
    // check asks once per inode and name).
    DAXFS_ASSIGN_OR_RETURN(auto all, Xattrs(ino));
    for (auto& [n, v] : all) {
      if (n != name) continue;
      std::lock_guard<std::mutex> lock(mu_);
      const std::string& kept = kept_.emplace_back(std::move(v));
      return std::as_bytes(std::span(kept));
    }
    return Status::FromErrno(ENODATA, image_->region().name() + ": inode " + std::to_string(ino) + ": no xattr " +
                                          std::string(name));
  }

 private:
  Result<std::vector<std::pair<std::string, std::string>>> Xattrs(Ino ino) const {
    std::vector<std::pair<std::string, std::string>> all;
    DAXFS_RETURN_IF_ERROR(base_->list_xattrs(ino, [&](std::string_view n, std::span<const std::byte> v) {
      all.emplace_back(format::EscapeOverlayXattr(n), std::string(reinterpret_cast<const char*>(v.data()), v.size()));
    }));
    auto object = image_->object_name(ino);
    if (object.ok()) {
      all.emplace_back(format::kOverlayMetacopy, std::string());
      all.emplace_back(format::kOverlayRedirect, format::OverlayRedirect(*object));
    }
    std::sort(all.begin(), all.end());
    return all;
  }

  std::shared_ptr<const Image> image_;
  std::shared_ptr<const FsView> base_;
  mutable std::mutex mu_;
  mutable std::deque<std::string> kept_;  // a deque never moves its elements
};

}  // namespace

std::shared_ptr<const FsView> MakeOverlayMetadataView(std::shared_ptr<const Image> image) {
  return std::make_shared<OverlayMetadataView>(std::move(image));
}

}  // namespace daxfs
