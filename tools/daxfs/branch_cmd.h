// `daxfs branch ...` subcommands (tools/daxfs/branch_cmd.cc).
#pragma once

#include <functional>

#include "common/cli.h"

namespace daxfs::tools {

struct BranchCommand {
  CLI::App* app;             // parsed() when a branch subcommand was given
  std::function<int()> run;  // runs it; returns the exit status
};

BranchCommand AddBranchCommand(CLI::App& app);

}  // namespace daxfs::tools
