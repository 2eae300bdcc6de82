// CheckErofsView: an image's EROFS view describes its tree.
#define XXH_STATIC_LINKING_ONLY
#include <xxhash.h>

#include <cstring>

#include "check/overlay_metadata_view.h"
#include "daxfs/check.h"
#include "daxfs/erofs.h"
#include "daxfs/format.h"

namespace daxfs {

CheckResult CheckErofsView(const std::shared_ptr<const Image>& image, const CheckOptions& options) {
  CheckResult r;
  const auto bytes = image->region().bytes().first(image->info().total_size);
  if (!HasErofsSuperblock(bytes)) return r;
  auto problem = [&](const std::string& m) {
    ++r.problems;
    if (options.report) options.report(m);
  };
  const std::string name = image->region().name();
  if (image->info().features_compat & format::kFeatureErofsView) {
    format::Superblock sb;
    std::memcpy(&sb, bytes.data(), sizeof sb);
    uint64_t stored;
    std::memcpy(&stored, sb.ext.reserved + format::kExtErofsChecksum, 8);
    const uint64_t got = XXH3_64bits(bytes.data() + format::kErofsBlock0Begin,
                                     format::kErofsBlock0End - format::kErofsBlock0Begin);
    if (got != stored)
      problem(name + ": EROFS superblock and root inode (bytes [1024, 4096)) do not match their checksum");
  }
  auto erofs = OpenErofsView(bytes, image, name + " (EROFS view)");
  if (!erofs.ok()) {
    problem(erofs.status().message());
    return r;
  }
  CheckOptions o = options;
  o.report = [&](const std::string& m) {
    if (options.report) options.report(name + ": EROFS view: " + m);
  };
  // Object-store images: the view is the metadata layer of an OverlayFS
  // stack over the object directory (files are holes with a redirect).
  const auto daxfs = image->info().objects ? MakeOverlayMetadataView(image) : MakeImageView(image);
  CheckResult c = CompareViews(*daxfs, **erofs, o, "daxfs", "EROFS");
  r.problems += c.problems;
  r.inodes_reached = c.inodes_reached;
  r.entries = c.entries;
  return r;
}

}  // namespace daxfs
