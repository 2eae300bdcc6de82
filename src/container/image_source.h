// A container image resolved to what a build needs: its layers in order
// (each verified against its digest) and its config, from an OCI layout
// (directory or archive) or a docker-save archive.
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "container/blob_store.h"
#include "container/image_ref.h"
#include "daxfs/status.h"

namespace daxfs::container {

struct Layer {
  std::string blob;          // name in the store
  std::string digest;        // "sha256:..." the blob must hash to
  std::string media_type;    // empty for docker-archive (plain tar)
};

struct ContainerImage {
  std::shared_ptr<const BlobStore> store;
  std::string description;   // "oci-archive:app.tar (localhost/app:1, linux/amd64)"
  std::vector<Layer> layers; // lowest first
  std::string config;        // the image config (JSON, as stored)
};

// "linux/amd64" etc. for this machine (OCI platform names).
std::string HostPlatform();

// Resolves `ref`: the manifest for `platform` ("os/arch[/variant]"; empty:
// this machine's) when the image has several; verifies the digests of the
// manifest and config. Layers are verified by VerifyLayers.
Result<ContainerImage> OpenContainerImage(const ImageRef& ref, const std::string& platform);

// Reads every layer once and checks its digest; an error names the blob.
Status VerifyLayers(const ContainerImage& image);

}  // namespace daxfs::container
