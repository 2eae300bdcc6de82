// Command-line parsing shared by the tools: CLI11, with the exit codes users
// of mkfs-style tools expect (0 for --help/--version, 2 for usage errors).
#pragma once

#include <CLI/CLI.hpp>

#define DAXFS_PARSE_OR_EXIT(app, argc, argv)        \
  do {                                              \
    try {                                           \
      (app).parse((argc), (argv));                  \
    } catch (const CLI::ParseError& e) {            \
      const int rc = (app).exit(e);                 \
      return rc == 0 ? 0 : 2;                       \
    }                                               \
  } while (0)
