#include "format/names.h"

#include "daxfs/format.h"

namespace daxfs::format {

const char* InvalidNameReason(std::string_view name) {
  if (name.empty()) return "empty name";
  if (name.size() > kNameMax) return "name longer than 255 bytes";
  if (name == "." || name == "..") return "name is '.' or '..'";
  for (char c : name) {
    if (c == '/') return "name contains '/'";
    if (c == '\0') return "name contains a NUL byte";
  }
  return nullptr;
}

}  // namespace daxfs::format
