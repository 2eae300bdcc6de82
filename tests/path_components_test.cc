#include "util/path_components.h"

#include <gtest/gtest.h>

namespace daxfs {
namespace {

std::string Normal(std::string_view path, DotDot dotdot) {
  const auto comps = SplitPathComponents(path, dotdot);
  return comps ? "[" + JoinPathComponents(*comps) + "]" : "refused";
}

TEST(PathComponents, EmptyAndDotComponentsDisappear) {
  for (DotDot d : {DotDot::kRefuse, DotDot::kResolve}) {
    EXPECT_EQ(Normal("./usr//lib/", d), "[usr/lib]");
    EXPECT_EQ(Normal("/abs/path", d), "[abs/path]");
    EXPECT_EQ(Normal("", d), "[]");
    EXPECT_EQ(Normal("./", d), "[]");
    EXPECT_EQ(Normal("a/./b/.", d), "[a/b]");
    EXPECT_EQ(Normal("...", d), "[...]");  // a name, not a parent
    EXPECT_EQ(Normal("..a/b..", d), "[..a/b..]");
  }
}

TEST(PathComponents, DotDotIsRefusedOrResolvedBelowTheTop) {
  EXPECT_EQ(Normal("a/../b", DotDot::kRefuse), "refused");
  EXPECT_EQ(Normal("a/../b", DotDot::kResolve), "[b]");
  EXPECT_EQ(Normal("a/b/../../c", DotDot::kResolve), "[c]");
  EXPECT_EQ(Normal("a/..", DotDot::kResolve), "[]");
  EXPECT_EQ(Normal("..", DotDot::kResolve), "refused");
  EXPECT_EQ(Normal("a/../../etc/passwd", DotDot::kResolve), "refused");
  EXPECT_EQ(Normal("/../x", DotDot::kResolve), "refused");
}

}  // namespace
}  // namespace daxfs
