// Names every function the public headers declare, so that linking this
// program against libdaxfs.so fails if one of them is not exported
// (DAXFS_EXPORT, include/daxfs/export.h). tests/cli/install.sh builds and
// runs it against the installed library.
#include <cstdio>
#include <typeinfo>

#include <daxfs/branch.h>
#include <daxfs/builder.h>
#include <daxfs/check.h>
#include <daxfs/container.h>
#include <daxfs/erofs.h>
#include <daxfs/extract.h>
#include <daxfs/fs_view.h>
#include <daxfs/image.h>
#include <daxfs/prefetch.h>
#include <daxfs/region.h>
#include <daxfs/region_server.h>
#include <daxfs/safetensors.h>
#include <daxfs/status.h>

namespace {

using namespace daxfs;

const void* const kFunctions[] = {
    reinterpret_cast<const void*>(&FeatureNames),
    reinterpret_cast<const void*>(&FileTypeName),
    reinterpret_cast<const void*>(&ZeroPage),
    reinterpret_cast<const void*>(&MakeImageView),
    reinterpret_cast<const void*>(
        static_cast<Status (*)(const Region&, std::span<const std::byte>, PrefetchMode)>(&Prefetch)),
    reinterpret_cast<const void*>(static_cast<Status (*)(const Image&, Ino, PrefetchMode)>(&Prefetch)),
    reinterpret_cast<const void*>(
        static_cast<Status (*)(const PinnedData&, std::span<const std::byte>, PrefetchMode)>(&Prefetch)),
    reinterpret_cast<const void*>(&safetensors::DTypeName),
    reinterpret_cast<const void*>(&safetensors::ParseDType),
    reinterpret_cast<const void*>(&safetensors::Parse),
    reinterpret_cast<const void*>(&safetensors::ParseFile),
    reinterpret_cast<const void*>(&ServeRegion),
    reinterpret_cast<const void*>(&HasErofsSuperblock),
    reinterpret_cast<const void*>(&OpenErofsView),
    reinterpret_cast<const void*>(&ParseContainerConfig),
    reinterpret_cast<const void*>(static_cast<Status (*)(const Image&, const std::string&, const std::string&,
                                                         const ExtractOptions&)>(&Extract)),
    reinterpret_cast<const void*>(
        static_cast<Status (*)(const FsView&, const std::string&, const std::string&, const ExtractOptions&,
                               std::function<Status()>)>(&Extract)),
    reinterpret_cast<const void*>(&CheckImage),
    reinterpret_cast<const void*>(&CheckView),
    reinterpret_cast<const void*>(&CheckErofsView),
    reinterpret_cast<const void*>(&CompareViews),
    reinterpret_cast<const void*>(&BuildFromDirectory),
    reinterpret_cast<const void*>(&BuildFromTar),
    reinterpret_cast<const void*>(&BuildFromContainerImage),
    reinterpret_cast<const void*>(&BuildLayerImages),
    reinterpret_cast<const void*>(&IsContainerImageRef),
    reinterpret_cast<const void*>(&MayWriteRoot),
    reinterpret_cast<const void*>(
        static_cast<Result<ExportStats> (*)(const FsView&, const std::string&, bool)>(&ExportView)),
    reinterpret_cast<const void*>(
        static_cast<Result<BuildStats> (*)(const FsView&, const std::string&, const BuildOptions&)>(&ExportView)),
    reinterpret_cast<const void*>(&Credentials::OfThisProcess),
};

}  // namespace

int main() {
  // Classes: their type information (a program may derive from FsView or
  // catch by type) and calls that reach their out-of-line members.
  const std::type_info* types[] = {&typeid(Image),  &typeid(Directory), &typeid(Region),       &typeid(Status),
                                   &typeid(FsView), &typeid(DirCursor), &typeid(Branch),       &typeid(BranchStore),
                                   &typeid(Credentials), &typeid(safetensors::Header)};
  const Status s = Status::NotFound("probe");
  auto image = Image::Open("/nonexistent/daxfs-api-exports.img");
  auto region = Region::Open("/nonexistent/daxfs-api-exports.img", Access::kReadOnly);
  auto store = BranchStore::Open("/nonexistent/daxfs-api-exports.region");
  if (s.ok() || image.ok() || region.ok() || store.ok()) return 1;
  std::printf("%zu functions, %zu classes resolved\n", sizeof kFunctions / sizeof kFunctions[0],
              sizeof types / sizeof types[0]);
  return 0;
}
