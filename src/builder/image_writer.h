// Serializes a laid-out tree into an image file.
#pragma once

#include <string>

#include "builder/layout.h"
#include "builder/source.h"

namespace daxfs::build {

// Writes the image to `output` atomically (temporary file + rename): file
// data first (its placement decides the data offsets), then the metadata.
// Fills in the stats the data placement decides.
Status WriteImage(const Tree& tree, const Layout& layout, Source* source,
                  const std::string& output, const BuildOptions& options, BuildStats* stats);

}  // namespace daxfs::build
