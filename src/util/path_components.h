// Names inside archives and layers ("./usr//lib/x") as the components of a
// path below a root, with ".." either refused or resolved lexically.
#pragma once

#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace daxfs {

enum class DotDot {
  kRefuse,   // an archive member naming ".." is unsafe (tar, image layers)
  kResolve,  // "a/../b" is "b", as long as it stays below the top
};

// "./usr//lib/" -> {"usr", "lib"}; nullopt for a ".." refused, or one that
// leaves the top. The views point into `path`.
std::optional<std::vector<std::string_view>> SplitPathComponents(std::string_view path, DotDot dotdot);

// {"usr", "lib"} -> "usr/lib" ("" for the root).
std::string JoinPathComponents(const std::vector<std::string_view>& components);

}  // namespace daxfs
