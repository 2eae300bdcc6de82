// One libarchive entry as the builder's inode: what the tar source and the
// container layers source both read from their archives.
#pragma once

#include <archive_entry.h>

#include <cstdint>
#include <string>

#include "builder/tree.h"
#include "daxfs/builder.h"
#include "daxfs/status.h"

namespace daxfs::build {

// Mode, owner, ns mtime, size, symlink target, device number and (unless
// the options leave them out) xattrs of `e`; the options' metadata rules
// applied. `where` ("ARCHIVE: PATH") and `index` name the entry in errors.
Result<InodeRec> InodeFromArchiveEntry(archive_entry* e, const BuildOptions& options, const std::string& where,
                                       uint64_t index);

}  // namespace daxfs::build
