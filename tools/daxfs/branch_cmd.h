// `daxfs branch ...` subcommands (tools/daxfs/branch_cmd.cc).
#pragma once

#include <functional>
#include <string>

#include "common/cli.h"

namespace daxfs::tools {

struct BranchCommand {
  CLI::App* app;             // parsed() when a branch subcommand was given
  std::function<int()> run;  // runs it; returns the exit status
};

BranchCommand AddBranchCommand(CLI::App& app);

// `daxfs check` on a branch region: the base image, the branch table and
// free list, every live log and the tree of main and every active branch
// (what `daxfs branch check` does). Returns fsck's exit status.
int CheckBranchRegion(const std::string& region, bool quiet);

}  // namespace daxfs::tools
