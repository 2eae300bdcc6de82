#include "container/image_ref.h"

namespace daxfs::container {

namespace {
struct Transport {
  std::string_view prefix;
  ImageRef::Kind kind;
};
constexpr Transport kTransports[] = {
    {"oci:", ImageRef::Kind::kOciDir},
    {"oci-archive:", ImageRef::Kind::kOciArchive},
    {"docker-archive:", ImageRef::Kind::kDockerArchive},
};
}  // namespace

bool IsImageRef(std::string_view source) {
  for (const auto& t : kTransports)
    if (source.starts_with(t.prefix)) return true;
  return false;
}

Result<ImageRef> ParseImageRef(std::string_view source) {
  for (const auto& t : kTransports) {
    if (!source.starts_with(t.prefix)) continue;
    ImageRef ref;
    ref.kind = t.kind;
    std::string_view rest = source.substr(t.prefix.size());
    // The path ends at the first ':' (as skopeo reads it); what follows names
    // the image (a REPO:TAG keeps its own ':').
    const size_t colon = rest.find(':');
    ref.path = std::string(rest.substr(0, colon));
    if (colon != std::string_view::npos) ref.name = std::string(rest.substr(colon + 1));
    if (ref.path.empty())
      return Status::InvalidArgument(std::string(source) + ": no " +
                                     (t.kind == ImageRef::Kind::kOciDir ? "directory" : "archive") + " named");
    if (colon != std::string_view::npos && ref.name.empty())
      return Status::InvalidArgument(std::string(source) + ": empty image name after ':'");
    return ref;
  }
  return Status::InvalidArgument(std::string(source) +
                                 ": not a container image reference (oci:DIR, oci-archive:FILE, docker-archive:FILE)");
}

std::string ImageRef::ToString() const {
  std::string out = kind == Kind::kOciDir ? "oci:" : kind == Kind::kOciArchive ? "oci-archive:" : "docker-archive:";
  out += path;
  if (!name.empty()) out += ":" + name;
  return out;
}

}  // namespace daxfs::container
