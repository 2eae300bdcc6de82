// BuildFromDirectory / BuildFromTar: scan, lay out, write.
#include "daxfs/builder.h"

#include <sys/stat.h>

#include "builder/image_writer.h"
#include "builder/layout.h"
#include "builder/object_sink.h"
#include "builder/source.h"
#include "container/image_ref.h"
#include "container/image_source.h"
#include "daxfs/image.h"
#include "output/new_file.h"

namespace daxfs {
namespace {

// Refuses an output that is not ours to replace, before any work is done
// (WriteImage checks again when it creates the file).
Status CheckOutput(const std::string& output, const std::string& source) {
  DAXFS_RETURN_IF_ERROR(output::NewFile::CheckTarget(output));
  struct stat out, src;
  if (stat(output.c_str(), &out) == 0 && stat(source.c_str(), &src) == 0 &&
      out.st_dev == src.st_dev && out.st_ino == src.st_ino)
    return Status::InvalidArgument(output + ": is the source itself: refusing to replace it");
  return Status::OK();
}

Result<BuildStats> Build(build::Source* source, const std::string& source_path,
                         const std::string& output, const BuildOptions& given) {
  DAXFS_RETURN_IF_ERROR(CheckOutput(output, source_path));
  BuildOptions options = given;
  std::unique_ptr<build::ObjectDirForBuild> objects;
  if (!given.object_dir.empty()) {
    DAXFS_ASSIGN_OR_RETURN(objects, build::ObjectDirForBuild::Prepare(given.object_dir, output));
    options.object_dir = objects->path();
  }
  build::Tree tree;
  DAXFS_RETURN_IF_ERROR(source->Scan(&tree, options));
  if (std::string config = source->ContainerConfig(); !config.empty()) options.container_config = std::move(config);
  std::vector<uint64_t> data_key(tree.inodes.size());
  for (size_t i = 0; i < tree.inodes.size(); ++i) data_key[i] = source->DataOrderKey(tree.inodes[i]);
  DAXFS_ASSIGN_OR_RETURN(build::Layout layout, build::ComputeLayout(&tree, options, data_key));
  BuildStats stats = layout.stats;
  DAXFS_RETURN_IF_ERROR(build::WriteImage(tree, layout, source, output, options, &stats));
  if (objects) objects->Keep();
  return stats;
}

}  // namespace

Result<BuildStats> BuildFromDirectory(const std::string& source_dir, const std::string& output,
                                      const BuildOptions& options) {
  auto source = build::NewDirectorySource(source_dir);
  return Build(source.get(), source_dir, output, options);
}

Result<BuildStats> BuildFromTar(const std::string& tar_path, const std::string& output,
                                const BuildOptions& options) {
  auto source = build::NewTarSource(tar_path);
  return Build(source.get(), tar_path, output, options);
}

Result<BuildStats> BuildFromContainerImage(const std::string& ref_text, const std::string& output,
                                           const BuildOptions& options) {
  DAXFS_ASSIGN_OR_RETURN(container::ImageRef ref, container::ParseImageRef(ref_text));
  DAXFS_ASSIGN_OR_RETURN(container::ContainerImage image, container::OpenContainerImage(ref, options.platform));
  // Every layer checked before anything is written (objects included).
  if (options.progress) {
    BuildProgress p;
    p.phase = "verifying layers";
    options.progress(p);
  }
  DAXFS_RETURN_IF_ERROR(container::VerifyLayers(image));
  const std::string description = image.description;
  const uint64_t layers = image.layers.size();
  auto source = build::NewLayersSource(std::move(image));
  DAXFS_ASSIGN_OR_RETURN(BuildStats stats, Build(source.get(), ref.path, output, options));
  stats.container_image = description;
  stats.layers = layers;
  return stats;
}

Result<std::vector<LayerImage>> BuildLayerImages(const std::string& ref_text, const std::string& dir,
                                                 const BuildOptions& options) {
  DAXFS_ASSIGN_OR_RETURN(container::ImageRef ref, container::ParseImageRef(ref_text));
  DAXFS_ASSIGN_OR_RETURN(container::ContainerImage image, container::OpenContainerImage(ref, options.platform));
  struct stat st;
  if (stat(dir.c_str(), &st) != 0 || !S_ISDIR(st.st_mode))
    return Status::NotDirectory(dir + ": not a directory (one image per layer is written there)");
  DAXFS_RETURN_IF_ERROR(container::VerifyLayers(image));
  std::vector<LayerImage> out;
  for (size_t l = 0; l < image.layers.size(); ++l) {
    LayerImage li;
    li.digest = image.layers[l].digest;
    li.path = dir + "/" + li.digest.substr(li.digest.find(':') + 1) + ".img";
    // The name is the layer's digest: an image there is this layer's (a
    // damaged one fails its checks when opened: rebuilt).
    if (Image::Open(li.path).ok()) {
      li.reused = true;
    } else {
      BuildOptions o = options;
      o.container_config.clear();  // a layer may be shared by images of other configs
      // The layer images are for OverlayFS stacks of kernel EROFS mounts.
      if (o.erofs == BuildOptions::Erofs::kAuto) o.erofs = BuildOptions::Erofs::kAlways;
      auto source = build::NewLayersSource(image, static_cast<int>(l));
      DAXFS_ASSIGN_OR_RETURN(li.stats, Build(source.get(), ref.path, li.path, o));
      li.stats.container_image = image.description;
      li.stats.layers = 1;
    }
    out.push_back(std::move(li));
  }
  return out;
}

bool IsContainerImageRef(const std::string& source) { return container::IsImageRef(source); }

}  // namespace daxfs
