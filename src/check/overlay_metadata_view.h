// What the EROFS view of an object-store image must show (CheckErofsView):
// the image's tree as the metadata layer of an OverlayFS data-only lower
// stack. Files with an object read as holes and carry the OverlayFS
// metacopy and redirect xattrs; the tree's own trusted.overlay.* xattrs
// appear escaped (format/overlay_xattrs.h). Everything else is the image's.
#pragma once

#include <memory>

#include "daxfs/fs_view.h"
#include "daxfs/image.h"

namespace daxfs {

std::shared_ptr<const FsView> MakeOverlayMetadataView(std::shared_ptr<const Image> image);

}  // namespace daxfs
