// --json for daxfs info, stat, check and branch list: one JSON object per
// command on stdout, its schema named and versioned in "schema"
// (docs/JSON.md). Names and paths that are not UTF-8 have each invalid
// byte replaced by U+FFFD.
#pragma once

#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "daxfs/branch.h"
#include "daxfs/image.h"

namespace daxfs::tools {

nlohmann::json InfoJson(const Image& img);
// Empty (null) where the path does not resolve; `error` says why.
nlohmann::json StatJson(const Image& img, Ino ino, const std::string& path, std::string* error);
nlohmann::json BranchListJson(const std::vector<BranchInfo>& branches, const RegionUsage& usage);
nlohmann::json CheckJson(const std::string& image, uint64_t inodes, uint64_t entries,
                         const std::vector<std::string>& problems, const std::vector<std::string>& warnings);

void PrintJson(const nlohmann::json& j);

}  // namespace daxfs::tools
