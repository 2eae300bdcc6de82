#include "util/path_components.h"

namespace daxfs {

std::optional<std::vector<std::string_view>> SplitPathComponents(std::string_view path, DotDot dotdot) {
  std::vector<std::string_view> out;
  size_t pos = 0;
  while (pos <= path.size()) {
    size_t slash = path.find('/', pos);
    if (slash == std::string_view::npos) slash = path.size();
    const std::string_view comp = path.substr(pos, slash - pos);
    pos = slash + 1;
    if (comp.empty() || comp == ".") continue;
    if (comp == "..") {
      if (dotdot == DotDot::kRefuse || out.empty()) return std::nullopt;
      out.pop_back();
      continue;
    }
    out.push_back(comp);
  }
  return out;
}

std::string JoinPathComponents(const std::vector<std::string_view>& components) {
  std::string out;
  for (const auto& c : components) {
    if (!out.empty()) out += '/';
    out.append(c);
  }
  return out;
}

}  // namespace daxfs
