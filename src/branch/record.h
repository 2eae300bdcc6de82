// Branch log records: the in-memory form, encoding and validated decoding.
#pragma once

#include <cstdint>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "daxfs/branch_format.h"
#include "daxfs/image.h"
#include "daxfs/status.h"

namespace daxfs::branch {

struct Time {
  int64_t sec = 0;
  uint32_t nsec = 0;
};
Time Now();

// One decoded record. Names and values point into the log (region memory,
// never reused while attached) or into the writer's own buffer.
struct Record {
  uint32_t type = 0;
  Ino dir = 0, ino = 0;         // create/link/unlink: dir, ino; rename: sdir, sino
  Ino ddir = 0, dino = 0;       // rename: destination dir and the inode there (0 = none)
  uint32_t mode = 0, uid = 0, gid = 0, rdev = 0;
  uint32_t flags = 0;           // rename, setxattr flags; unlink: is_dir
  bool keep = false;            // unlink / rename: the inode removed stays as an open orphan
  uint32_t mask = 0;            // setattr
  uint64_t size = 0;            // setattr size
  uint64_t end = 0, first_page = 0;  // write
  Time time;                    // the record's ctime (and mtime where it changes data)
  Time atime, mtime;            // setattr
  std::string_view name, name2, target;
  std::span<const std::byte> value;
  std::vector<uint64_t> blocks;  // write: delta-relative block offsets
  uint32_t child_slot = 0;       // merge
  uint64_t child_id = 0, child_len = 0;
  uint64_t child_chunk = 0;      // merge: the child's first log chunk (0: old record, use the slot)
};

// The record's bytes (header included, padded to 8).
std::vector<std::byte> Encode(const Record& r);
// Decodes one record of exactly `bytes.size()` bytes (its header's length),
// checking every length and name. Block offsets are checked by the index.
Result<Record> Decode(std::span<const std::byte> bytes);

const char* RecordTypeName(uint32_t type);

}  // namespace daxfs::branch
