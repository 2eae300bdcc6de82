#include "container/image_source.h"

#include <sys/utsname.h>

#include <nlohmann/json.hpp>

#include "objects/sha256.h"

namespace daxfs::container {

namespace {

using json = nlohmann::json;

constexpr std::string_view kIndexType = "application/vnd.oci.image.index.v1+json";
constexpr std::string_view kDockerListType = "application/vnd.docker.distribution.manifest.list.v2+json";
constexpr std::string_view kRefName = "org.opencontainers.image.ref.name";

Result<json> ParseJson(const std::string& text, const std::string& where) {
  json j = json::parse(text, nullptr, false);
  if (j.is_discarded()) return Status::Corruption(where + ": not valid JSON");
  return j;
}

std::string Hex(const objects::Digest& d) { return objects::DigestHex(d); }

// The SHA-256 of a blob, streamed.
Result<std::string> HashBlob(const BlobStore& store, const std::string& name, uint64_t* size) {
  DAXFS_ASSIGN_OR_RETURN(auto s, store.Open(name));
  objects::Sha256 h;
  std::vector<std::byte> buf(1 << 20);
  *size = 0;
  for (;;) {
    DAXFS_ASSIGN_OR_RETURN(size_t n, s->Read(buf));
    if (n == 0) break;
    h.Update({buf.data(), n});
    *size += n;
  }
  DAXFS_ASSIGN_OR_RETURN(auto d, h.Final());
  return "sha256:" + Hex(d);
}

// "sha256:<64 hex>" -> "blobs/sha256/<hex>"; errors for other algorithms.
Result<std::string> BlobPath(const std::string& digest, const std::string& where) {
  const auto colon = digest.find(':');
  if (colon == std::string::npos || digest.substr(0, colon) != "sha256")
    return Status::NotSupported(where + ": digest '" + digest + "': only sha256 digests are read");
  const std::string hex = digest.substr(colon + 1);
  if (hex.size() != 64 || hex.find_first_not_of("0123456789abcdef") != std::string::npos)
    return Status::Corruption(where + ": malformed digest '" + digest + "'");
  return "blobs/sha256/" + hex;
}

// A small blob, read and checked against its descriptor.
Result<std::string> ReadVerified(const BlobStore& store, const json& desc, const std::string& what) {
  const std::string digest = desc.value("digest", "");
  DAXFS_ASSIGN_OR_RETURN(std::string name, BlobPath(digest, what));
  if (!store.Exists(name)) return Status::NotFound(store.Where(name) + ": " + what + " blob missing");
  DAXFS_ASSIGN_OR_RETURN(std::string text, ReadSmallBlob(store, name));
  DAXFS_ASSIGN_OR_RETURN(auto d, objects::HashBytes(std::as_bytes(std::span(text))));
  if ("sha256:" + Hex(d) != digest)
    return Status::Corruption(store.Where(name) + ": " + what + " does not match its digest " + digest);
  if (desc.contains("size") && desc["size"].is_number_unsigned() && desc["size"].get<uint64_t>() != text.size())
    return Status::Corruption(store.Where(name) + ": " + what + " is " + std::to_string(text.size()) +
                              " bytes, its descriptor says " + std::to_string(desc["size"].get<uint64_t>()));
  return text;
}

std::string PlatformOf(const json& desc) {
  if (!desc.contains("platform") || !desc["platform"].is_object()) return "";
  const json& p = desc["platform"];
  std::string out = p.value("os", "") + "/" + p.value("architecture", "");
  if (p.contains("variant") && p["variant"].is_string()) out += "/" + p["variant"].get<std::string>();
  return out;
}

// "linux/arm64" matches "linux/arm64/v8"; an exact variant is asked for only when given.
bool PlatformMatches(const std::string& want, const std::string& have) {
  return have == want || (have.starts_with(want + "/") && std::count(want.begin(), want.end(), '/') == 1);
}

// "os/arch[/variant]" of an image config ("/" when it says nothing).
std::string ConfigPlatform(const json& config) {
  if (!config.is_object()) return "/";
  std::string out = config.value("os", "") + "/" + config.value("architecture", "");
  if (config.contains("variant") && config["variant"].is_string()) out += "/" + config["variant"].get<std::string>();
  return out;
}

struct Chosen {
  json manifest_desc;
  std::string name;
};

// Picks the manifest of an OCI index (recursing into nested indexes).
Result<Chosen> ChooseManifest(const BlobStore& store, const json& index, const ImageRef& ref,
                              const std::string& platform, const std::string& where, int depth) {
  if (depth > 4) return Status::Corruption(where + ": image indexes nested too deeply");
  if (!index.contains("manifests") || !index["manifests"].is_array())
    return Status::Corruption(where + ": no \"manifests\" list");
  std::vector<Chosen> named;
  for (const json& d : index["manifests"]) {
    if (!d.is_object()) continue;
    std::string name;
    if (d.contains("annotations") && d["annotations"].is_object()) name = d["annotations"].value(std::string(kRefName), "");
    if (!ref.name.empty() && name != ref.name && depth == 0) continue;
    named.push_back({d, name});
  }
  if (named.empty()) {
    std::string have;
    for (const json& d : index["manifests"])
      if (d.is_object() && d.contains("annotations") && d["annotations"].is_object())
        have += " '" + d["annotations"].value(std::string(kRefName), "") + "'";
    return Status::NotFound(where + ": no image named '" + ref.name + "'" + (have.empty() ? "" : " (it has" + have + ")"));
  }
  // Among those, the one for the platform.
  std::vector<Chosen> fit;
  std::string platforms;
  for (const Chosen& c : named) {
    const std::string p = PlatformOf(c.manifest_desc);
    if (!p.empty()) platforms += " " + p;
    if (p.empty() || PlatformMatches(platform, p)) fit.push_back(c);
  }
  if (fit.empty())
    return Status::NotFound(where + ": no manifest for platform " + platform + " (it has" + platforms +
                            "; --platform chooses another)");
  if (fit.size() > 1) {
    std::string names;
    for (const Chosen& c : fit) names += " '" + c.name + "'";
    return Status::InvalidArgument(where + ": holds several images (" + names +
                                   " ); name one: oci:DIR:NAME or oci-archive:FILE:NAME");
  }
  Chosen c = fit.front();
  const std::string type = c.manifest_desc.value("mediaType", "");
  if (type == kIndexType || type == kDockerListType) {
    DAXFS_ASSIGN_OR_RETURN(std::string text, ReadVerified(store, c.manifest_desc, "image index"));
    DAXFS_ASSIGN_OR_RETURN(json nested, ParseJson(text, where + " (nested index)"));
    DAXFS_ASSIGN_OR_RETURN(Chosen inner, ChooseManifest(store, nested, ref, platform, where, depth + 1));
    if (inner.name.empty()) inner.name = c.name;
    return inner;
  }
  return c;
}

Result<ContainerImage> OpenOci(std::shared_ptr<const BlobStore> store, const ImageRef& ref, const std::string& platform) {
  ContainerImage out;
  const std::string where = store->Where("index.json");
  if (!store->Exists("index.json"))
    return Status::InvalidArgument(ref.path + ": no index.json: not an OCI image layout" +
                                   (store->Exists("manifest.json") ? " (it looks like a docker-archive: use docker-archive:)" : ""));
  DAXFS_ASSIGN_OR_RETURN(std::string index_text, ReadSmallBlob(*store, "index.json"));
  DAXFS_ASSIGN_OR_RETURN(json index, ParseJson(index_text, where));
  DAXFS_ASSIGN_OR_RETURN(Chosen chosen, ChooseManifest(*store, index, ref, platform, where, 0));
  DAXFS_ASSIGN_OR_RETURN(std::string manifest_text, ReadVerified(*store, chosen.manifest_desc, "manifest"));
  DAXFS_ASSIGN_OR_RETURN(json manifest, ParseJson(manifest_text, where + " (manifest)"));
  if (!manifest.contains("config") || !manifest["config"].is_object() || !manifest.contains("layers") ||
      !manifest["layers"].is_array())
    return Status::Corruption(where + ": the manifest has no config or layers");
  DAXFS_ASSIGN_OR_RETURN(out.config, ReadVerified(*store, manifest["config"], "config"));
  // An index without platforms (podman save's): the config says which.
  DAXFS_ASSIGN_OR_RETURN(json config, ParseJson(out.config, where + " (config)"));
  const std::string have = ConfigPlatform(config);
  if (have != "/" && !PlatformMatches(platform, have) && !PlatformMatches(have, platform))
    return Status::NotFound(where + ": the image is for " + have + ", not " + platform +
                            " (--platform " + have + " takes it anyway)");
  for (const json& l : manifest["layers"]) {
    if (!l.is_object()) return Status::Corruption(where + ": a layer descriptor is not an object");
    Layer layer;
    layer.digest = l.value("digest", "");
    layer.media_type = l.value("mediaType", "");
    DAXFS_ASSIGN_OR_RETURN(layer.blob, BlobPath(layer.digest, where + " (layer)"));
    if (layer.media_type.find("nondistributable") == std::string::npos && !store->Exists(layer.blob))
      return Status::NotFound(store->Where(layer.blob) + ": layer blob missing");
    out.layers.push_back(std::move(layer));
  }
  out.description = ref.ToString() + " (" + (chosen.name.empty() ? "unnamed" : chosen.name) + ", " +
                    (PlatformOf(chosen.manifest_desc).empty() ? platform : PlatformOf(chosen.manifest_desc)) + ")";
  out.store = std::move(store);
  return out;
}

Result<ContainerImage> OpenDocker(std::shared_ptr<const BlobStore> store, const ImageRef& ref, const std::string& platform) {
  ContainerImage out;
  const std::string where = store->Where("manifest.json");
  if (!store->Exists("manifest.json"))
    return Status::InvalidArgument(ref.path + ": no manifest.json: not a docker-archive" +
                                   (store->Exists("index.json") ? " (it looks like an OCI archive: use oci-archive:)" : ""));
  DAXFS_ASSIGN_OR_RETURN(std::string text, ReadSmallBlob(*store, "manifest.json"));
  DAXFS_ASSIGN_OR_RETURN(json list, ParseJson(text, where));
  if (!list.is_array() || list.empty()) return Status::Corruption(where + ": not a list of images");
  const json* pick = nullptr;
  std::string tags;
  for (const json& m : list) {
    if (!m.is_object()) continue;
    std::vector<std::string> repo_tags;
    if (m.contains("RepoTags") && m["RepoTags"].is_array())
      for (const json& t : m["RepoTags"])
        if (t.is_string()) repo_tags.push_back(t.get<std::string>());
    for (const auto& t : repo_tags) tags += " " + t;
    if (ref.name.empty()) {
      if (pick != nullptr)
        return Status::InvalidArgument(where + ": holds several images; name one: docker-archive:FILE:REPO:TAG");
      pick = &m;
    } else if (std::find(repo_tags.begin(), repo_tags.end(), ref.name) != repo_tags.end()) {
      pick = &m;
    }
  }
  if (pick == nullptr) return Status::NotFound(where + ": no image tagged '" + ref.name + "' (it has" + tags + ")");
  const std::string config_name = pick->value("Config", "");
  if (config_name.empty() || !pick->contains("Layers") || !(*pick)["Layers"].is_array())
    return Status::Corruption(where + ": an entry without Config or Layers");
  DAXFS_ASSIGN_OR_RETURN(out.config, ReadSmallBlob(*store, config_name));
  // The config is named by its digest (<hex>.json or blobs/sha256/<hex>).
  {
    DAXFS_ASSIGN_OR_RETURN(auto d, objects::HashBytes(std::as_bytes(std::span(out.config))));
    std::string base = config_name.substr(config_name.rfind('/') + 1);
    if (base.ends_with(".json")) base.resize(base.size() - 5);
    if (base.size() == 64 && base != Hex(d))
      return Status::Corruption(store->Where(config_name) + ": config does not match its digest");
  }
  DAXFS_ASSIGN_OR_RETURN(json config, ParseJson(out.config, store->Where(config_name)));
  std::vector<std::string> diff_ids;
  if (config.contains("rootfs") && config["rootfs"].is_object() && config["rootfs"].contains("diff_ids") &&
      config["rootfs"]["diff_ids"].is_array())
    for (const json& d : config["rootfs"]["diff_ids"])
      if (d.is_string()) diff_ids.push_back(d.get<std::string>());
  const json& layers = (*pick)["Layers"];
  if (diff_ids.size() != layers.size())
    return Status::Corruption(where + ": " + std::to_string(layers.size()) + " layers, but the config lists " +
                              std::to_string(diff_ids.size()) + " diff_ids");
  for (size_t i = 0; i < layers.size(); ++i) {
    if (!layers[i].is_string()) return Status::Corruption(where + ": a layer name is not a string");
    Layer layer;
    layer.blob = layers[i].get<std::string>();
    layer.digest = diff_ids[i];  // docker-archive layers are stored uncompressed
    if (!store->Exists(layer.blob)) return Status::NotFound(store->Where(layer.blob) + ": layer missing");
    out.layers.push_back(std::move(layer));
  }
  const std::string have = ConfigPlatform(config);
  if (have != "/" && !PlatformMatches(platform, have) && !PlatformMatches(have, platform))
    return Status::NotFound(where + ": the image is for " + have + ", not " + platform +
                            " (--platform " + have + " takes it anyway)");
  std::string name = ref.name;
  if (name.empty() && pick->contains("RepoTags") && (*pick)["RepoTags"].is_array() && !(*pick)["RepoTags"].empty() &&
      (*pick)["RepoTags"][0].is_string())
    name = (*pick)["RepoTags"][0].get<std::string>();
  out.description = ref.ToString() + " (" + (name.empty() ? "untagged" : name) + ", " + have + ")";
  out.store = std::move(store);
  return out;
}

}  // namespace

std::string HostPlatform() {
  utsname u{};
  uname(&u);
  const std::string m = u.machine;
  std::string arch = m;
  if (m == "x86_64") arch = "amd64";
  else if (m == "aarch64") arch = "arm64";
  else if (m == "i686" || m == "i386") arch = "386";
  else if (m.starts_with("armv7")) arch = "arm/v7";
  else if (m == "ppc64le") arch = "ppc64le";
  else if (m == "s390x") arch = "s390x";
  else if (m == "riscv64") arch = "riscv64";
  return "linux/" + arch;
}

Result<ContainerImage> OpenContainerImage(const ImageRef& ref, const std::string& platform_given) {
  const std::string platform = platform_given.empty() ? HostPlatform() : platform_given;
  if (std::count(platform.begin(), platform.end(), '/') < 1)
    return Status::InvalidArgument("--platform " + platform + ": expected OS/ARCH[/VARIANT], e.g. linux/arm64");
  std::shared_ptr<const BlobStore> store;
  if (ref.kind == ImageRef::Kind::kOciDir) {
    DAXFS_ASSIGN_OR_RETURN(auto s, OpenDirectoryStore(ref.path));
    store = std::move(s);
  } else {
    DAXFS_ASSIGN_OR_RETURN(auto s, OpenArchiveStore(ref.path));
    store = std::move(s);
  }
  try {
    if (ref.kind == ImageRef::Kind::kDockerArchive) return OpenDocker(std::move(store), ref, platform);
    return OpenOci(std::move(store), ref, platform);
  } catch (const json::exception& e) {
    return Status::Corruption(ref.ToString() + ": malformed image metadata (" + e.what() + ")");
  }
}

Status VerifyLayers(const ContainerImage& image) {
  for (const Layer& l : image.layers) {
    uint64_t size = 0;
    DAXFS_ASSIGN_OR_RETURN(std::string got, HashBlob(*image.store, l.blob, &size));
    if (got != l.digest)
      return Status::Corruption(image.store->Where(l.blob) + ": layer does not match its digest " + l.digest +
                                " (it hashes to " + got + ")");
  }
  return Status::OK();
}

}  // namespace daxfs::container
