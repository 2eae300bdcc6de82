// The OverlayFS xattrs that make an object-store image the metadata layer
// of a data-only lower stack (kernel 6.5+, the composefs arrangement): a
// file with an object is a "metacopy" whose absolute redirect names the
// object in the data-only layer. Used by the EROFS view (mkdaxfs), its
// check, and daxfs-mount -o overlay_lower, so that all three agree (the
// tree's own trusted.overlay.* escaped by all three too).
#pragma once

#include <string>
#include <string_view>

namespace daxfs::format {

inline constexpr std::string_view kOverlayPrefix = "trusted.overlay.";
inline constexpr std::string_view kOverlayMetacopy = "trusted.overlay.metacopy";  // empty: no digest
inline constexpr std::string_view kOverlayRedirect = "trusted.overlay.redirect";  // "/" + object path

// The tree's own trusted.overlay.* xattrs, stored escaped (as
// trusted.overlay.overlay.*) so that OverlayFS shows them as they are
// instead of acting on them (an opaque marker, a whiteout); kernel 6.7+
// unescapes them, as for composefs images.
inline std::string EscapeOverlayXattr(std::string_view name) {
  if (!name.starts_with(kOverlayPrefix)) return std::string(name);
  std::string out(kOverlayPrefix);
  out += "overlay.";
  out += name.substr(kOverlayPrefix.size());
  return out;
}

// The tree's name of an escaped name ("trusted.overlay.overlay.opaque" ->
// "trusted.overlay.opaque"); empty for a name that is not escaped.
inline std::string UnescapeOverlayXattr(std::string_view name) {
  if (!name.starts_with(kOverlayPrefix)) return {};
  const std::string_view rest = name.substr(kOverlayPrefix.size());
  if (!rest.starts_with("overlay.")) return {};
  return std::string(kOverlayPrefix) + std::string(rest.substr(sizeof("overlay.") - 1));
}

// The redirect of a file whose object is at `object_rel_path` in the
// object directory (objects::ObjectRelPath).
inline std::string OverlayRedirect(std::string_view object_rel_path) {
  return "/" + std::string(object_rel_path);
}

}  // namespace daxfs::format
