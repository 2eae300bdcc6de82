// Serializes a laid-out tree into an image file.
#pragma once

#include <string>

#include "build/layout.h"
#include "build/source.h"

namespace daxfs::build {

// Writes the image to `output` atomically (temporary file + rename).
Status WriteImage(const Tree& tree, const Layout& layout, Source* source,
                  const std::string& output, const BuildOptions& options);

}  // namespace daxfs::build
