// Container image references as skopeo and podman spell them:
//   oci:DIR[:REF]                 an OCI image layout directory
//   oci-archive:FILE[:REF]        the same, in a tar (podman save --format oci-archive)
//   docker-archive:FILE[:NAME]    docker save / podman save (docker-archive)
#pragma once

#include <string>
#include <string_view>

#include "daxfs/status.h"

namespace daxfs::container {

struct ImageRef {
  enum class Kind { kOciDir, kOciArchive, kDockerArchive };
  Kind kind = Kind::kOciDir;
  std::string path;
  std::string name;  // REF (an org.opencontainers.image.ref.name) or REPO:TAG; empty: the only one
  std::string ToString() const;
};

// Whether `source` starts with one of the transports above.
bool IsImageRef(std::string_view source);

Result<ImageRef> ParseImageRef(std::string_view source);

}  // namespace daxfs::container
