// BuildFromDirectory / BuildFromTar: scan, lay out, write.
#include "daxfs/builder.h"

#include "build/image_writer.h"
#include "build/layout.h"
#include "build/source.h"

namespace daxfs {
namespace {

Result<BuildStats> Build(build::Source* source, const std::string& output,
                         const BuildOptions& options) {
  build::Tree tree;
  DAXFS_RETURN_IF_ERROR(source->Scan(&tree, options));
  std::vector<uint64_t> data_key(tree.inodes.size());
  for (size_t i = 0; i < tree.inodes.size(); ++i) data_key[i] = source->DataOrderKey(tree.inodes[i]);
  DAXFS_ASSIGN_OR_RETURN(build::Layout layout, build::ComputeLayout(&tree, options, data_key));
  BuildStats stats = layout.stats;
  DAXFS_RETURN_IF_ERROR(build::WriteImage(tree, layout, source, output, options, &stats));
  return stats;
}

}  // namespace

Result<BuildStats> BuildFromDirectory(const std::string& source_dir, const std::string& output,
                                      const BuildOptions& options) {
  auto source = build::NewDirectorySource(source_dir);
  return Build(source.get(), output, options);
}

Result<BuildStats> BuildFromTar(const std::string& tar_path, const std::string& output,
                                const BuildOptions& options) {
  auto source = build::NewTarSource(tar_path);
  return Build(source.get(), output, options);
}

}  // namespace daxfs
