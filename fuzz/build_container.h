// Builds an image from arbitrary bytes laid out as an OCI image layout and
// checks the result: anything the builder accepts must give an image that
// its own reader opens and that CheckImage finds clean, with a config
// ParseContainerConfig reads. Shared by the fuzz target and the replay test.
//
// The input is sections separated by "\n%%\n": the first is index.json, the
// others are blobs 1, 2, ... In a section, "@N" becomes blob N's digest
// ("sha256:<hex>") and "#N" its size, so that mutated JSON still reaches
// the blobs it names (a digest could never be guessed). A blob may name
// only blobs after it (a manifest names its config and layers).
#pragma once

#include <sys/stat.h>
#include <unistd.h>

#include <cstdint>
#include <cstdio>
#include <filesystem>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "build_archive.h"
#include "daxfs/builder.h"
#include "daxfs/check.h"
#include "daxfs/container.h"
#include "daxfs/image.h"
#include "objects/sha256.h"

namespace daxfs::testing {

inline constexpr std::string_view kContainerSectionBreak = "\n%%\n";
inline constexpr size_t kMaxContainerBlobs = 9;

inline std::vector<std::string> SplitContainerSections(const uint8_t* data, size_t size) {
  const std::string_view all(reinterpret_cast<const char*>(data), size);
  std::vector<std::string> out;
  size_t pos = 0;
  while (out.size() <= kMaxContainerBlobs) {
    const size_t at = all.find(kContainerSectionBreak, pos);
    out.emplace_back(all.substr(pos, at == std::string_view::npos ? std::string_view::npos : at - pos));
    if (at == std::string_view::npos) break;
    pos = at + kContainerSectionBreak.size();
  }
  return out;
}

// Replaces "@N" and "#N" for blobs N > `after` whose digests are known.
inline std::string FillContainerReferences(const std::string& in, size_t after,
                                           const std::vector<std::string>& digests,
                                           const std::vector<std::string>& blobs) {
  std::string out;
  for (size_t i = 0; i < in.size(); ++i) {
    const char c = in[i];
    if ((c == '@' || c == '#') && i + 1 < in.size() && in[i + 1] >= '1' && in[i + 1] <= '9') {
      const size_t n = static_cast<size_t>(in[i + 1] - '0');
      if (n > after && n < digests.size()) {
        out += c == '@' ? "sha256:" + digests[n] : std::to_string(blobs[n].size());
        ++i;
        continue;
      }
    }
    out += c;
  }
  return out;
}

// Returns an empty string, or what went wrong with an accepted image.
// `scratch` is a directory for the layout and the image; `built` says
// whether one was made.
inline std::string BuildContainerAndCheck(const uint8_t* data, size_t size, const std::string& scratch,
                                          bool* built = nullptr) {
  if (built) *built = false;
  std::vector<std::string> sections = SplitContainerSections(data, size);
  // Blobs last to first, each with the digests of those after it.
  std::vector<std::string> digests(sections.size());
  for (size_t n = sections.size() - 1; n >= 1; --n) {
    sections[n] = FillContainerReferences(sections[n], n, digests, sections);
    auto d = objects::HashBytes(std::as_bytes(std::span(sections[n].data(), sections[n].size())));
    if (!d.ok()) return "sha256 failed";
    digests[n] = objects::DigestHex(*d);
  }
  sections[0] = FillContainerReferences(sections[0], 0, digests, sections);
  // File bytes the layers declare, each as often as it is named (a
  // manifest may list one layer many times): past the limit the builder
  // would honestly write them all, which is slow, not a bug.
  int64_t declared = 0;
  for (size_t n = 1; n < sections.size(); ++n) {
    int64_t refs = 0;
    const std::string ref = "sha256:" + digests[n];
    for (const auto& s : sections)
      for (size_t at = s.find(ref); at != std::string::npos; at = s.find(ref, at + 1)) ++refs;
    if (refs == 0) continue;
    declared += refs * DeclaredFileBytes(reinterpret_cast<const uint8_t*>(sections[n].data()), sections[n].size());
    if (declared > kMaxArchiveFileBytes) return "";
  }

  const std::string layout = scratch + "/layout";
  std::error_code ec;
  std::filesystem::remove_all(layout, ec);
  std::filesystem::create_directories(layout + "/blobs/sha256", ec);
  if (ec) return "cannot make " + layout + ": " + ec.message();
  auto write = [](const std::string& path, const std::string& bytes) {
    FILE* f = std::fopen(path.c_str(), "wb");
    if (f == nullptr) return false;
    const bool ok = std::fwrite(bytes.data(), 1, bytes.size(), f) == bytes.size();
    return std::fclose(f) == 0 && ok;
  };
  bool wrote = write(layout + "/oci-layout", R"({"imageLayoutVersion":"1.0.0"})") &&
               write(layout + "/index.json", sections[0]);
  for (size_t n = 1; n < sections.size(); ++n)
    wrote = wrote && write(layout + "/blobs/sha256/" + digests[n], sections[n]);
  if (!wrote) return "cannot write the layout in " + layout;

  std::string why;
  const std::string out = scratch + "/img";
  BuildOptions options;
  options.platform = "linux/amd64";  // the same on every machine
  auto result = BuildFromContainerImage("oci:" + layout, out, options);
  if (result.ok()) {
    if (built) *built = true;
    // The recorded config is whatever JSON the image had: parsing it may
    // fail, never crash.
    why = CheckBuiltImage(out, [](const Image& image) { (void)ParseContainerConfig(image.info().container_config); });
  }
  std::filesystem::remove_all(layout, ec);
  return why;
}

}  // namespace daxfs::testing
