#include "builder/archive_entry.h"

#include <archive.h>
#include <sys/stat.h>

#include <algorithm>
#include <cstdio>

#include "builder/source.h"
#include "daxfs/format.h"
#include "format/file_type.h"

namespace daxfs::build {

Result<InodeRec> InodeFromArchiveEntry(archive_entry* e, const BuildOptions& options, const std::string& where,
                                       uint64_t index) {
  InodeRec rec;
  rec.mode = archive_entry_mode(e);
  if ((rec.mode & S_IFMT) == 0) rec.mode |= S_IFREG;
  if (!ValidFileType(rec.mode)) {
    char mode[16];
    std::snprintf(mode, sizeof mode, "%#o", rec.mode);
    return Status::InvalidArgument(where + ": entry " + std::to_string(index) + " has no valid file type (mode " +
                                   mode + ")");
  }
  rec.uid = static_cast<uint32_t>(archive_entry_uid(e));
  rec.gid = static_cast<uint32_t>(archive_entry_gid(e));
  rec.mtime_sec = archive_entry_mtime(e);
  rec.mtime_nsec = static_cast<uint32_t>(archive_entry_mtime_nsec(e));
  if (rec.mtime_sec < 0 && rec.mtime_nsec > 0) {
    // libarchive parses pax "-86399.999999995" sign-magnitude; normalize
    // to the kernel's convention (tv_nsec always adds to tv_sec).
    rec.mtime_sec -= 1;
    rec.mtime_nsec = 1000000000u - rec.mtime_nsec;
  }
  switch (rec.mode & S_IFMT) {
    case S_IFREG: rec.size = static_cast<uint64_t>(archive_entry_size(e)); break;
    case S_IFLNK: {
      const char* t = archive_entry_symlink(e);
      rec.target = t ? t : "";
      if (rec.target.empty() || rec.target.size() > format::kSymlinkMax)
        return Status::InvalidArgument(where + ": symlink target length not in [1, 4095]");
      break;
    }
    case S_IFCHR: case S_IFBLK:
      rec.rdev = format::EncodeDev(static_cast<uint32_t>(archive_entry_rdevmajor(e)),
                                   static_cast<uint32_t>(archive_entry_rdevminor(e)));
      break;
    default: break;
  }
  if (options.xattrs && !options.upstream_only) {
    const char* name;
    const void* value;
    size_t len;
    archive_entry_xattr_reset(e);
    while (archive_entry_xattr_next(e, &name, &value, &len) == ARCHIVE_OK)
      rec.xattrs.emplace_back(name, std::string(static_cast<const char*>(value), len));
    std::sort(rec.xattrs.begin(), rec.xattrs.end());
  }
  ApplyMetadataOptions(&rec, options);
  return rec;
}

}  // namespace daxfs::build
