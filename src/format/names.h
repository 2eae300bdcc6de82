// Rules for names stored in directories.
#pragma once

#include <string_view>

namespace daxfs::format {

// A directory entry name: 1..255 bytes, no '/' or NUL, not "." or "..".
// Returns nullptr when valid, else a description of the problem.
const char* InvalidNameReason(std::string_view name);

}  // namespace daxfs::format
