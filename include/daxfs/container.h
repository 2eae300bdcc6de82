// Container images (docs/FORMAT.md §12): what an image built from one
// (mkdaxfs IMAGE oci-archive:FILE, BuildFromContainerImage) records of the
// image's config, so that a runtime can start the container from the daxfs
// image alone.
#pragma once

#include <string>
#include <string_view>
#include <vector>

#include "daxfs/export.h"
#include "daxfs/status.h"

namespace daxfs {

// The parts of an OCI image config a runtime needs to start a process.
struct ContainerConfig {
  std::string platform;                  // "linux/amd64"
  std::vector<std::string> entrypoint;   // config.Entrypoint
  std::vector<std::string> cmd;          // config.Cmd
  std::vector<std::string> env;          // config.Env ("NAME=value")
  std::string working_dir;               // config.WorkingDir
  std::string user;                      // config.User
};

// Parses ImageInfo::container_config (the OCI image config JSON).
DAXFS_EXPORT Result<ContainerConfig> ParseContainerConfig(std::string_view json);

}  // namespace daxfs
