// DataWriter: places file contents in the image's data area as a Source
// streams them, and decides every file's data offset on the way:
//  * files of at least a block start block-aligned (mappable in place);
//  * smaller files are packed next to each other, and (when tails may be
//    shared) into the unused end of a larger file's last block;
//  * contents already stored are not stored again (dedup, verified byte for
//    byte, so a hash collision can never alias two different files).
// Offsets are known only when the stream ends, which is why the metadata is
// serialized after the data.
#pragma once

#define XXH_STATIC_LINKING_ONLY
#include <xxhash.h>

#include <cstdint>
#include <deque>
#include <map>
#include <string>
#include <unordered_map>
#include <vector>

#include "builder/source.h"
#include "daxfs/builder.h"
#include "daxfs/status.h"

namespace daxfs::build {

struct DataPlacement {
  std::vector<uint64_t> offset_by_ino;  // base-relative data offset, index = ino
  uint64_t data_end = 0;                // base-relative, block aligned
  uint64_t checksum = 0;                // XXH3-64 of base bytes [data_start, data_end)
  uint64_t packed_files = 0;
  uint64_t duplicate_files = 0;
  uint64_t duplicate_bytes = 0;
  // DataPolicy::hold_small: small files kept in memory instead of written
  // (their offset_by_ino is 0); index into `held` by ino, UINT32_MAX none.
  std::vector<uint32_t> held_by_ino;
  std::vector<std::vector<std::byte>> held;
  // hold_small with share_tails: the unused ends of large files' last
  // blocks, absolute [begin, end) (zeros in the image; the EROFS view puts
  // its inodes and inline files there).
  std::vector<std::pair<uint64_t, uint64_t>> tail_gaps;
};

struct DataPolicy {
  bool pack = true;         // pack files smaller than a block
  bool share_tails = true;  // packed files may use a larger file's last block
  // Packed files never start on a block boundary: the upstream module maps a
  // page directly when a file's data is page-aligned, which would show the
  // next file's bytes after EOF; unaligned data it copies and zero-fills.
  bool avoid_aligned_packed_start = false;
  bool dedup = true;
  // Small files are not written but handed back in DataPlacement::held
  // (the EROFS view stores them inline after their EROFS inodes, and the
  // daxfs inodes point there: one copy for both readers).
  bool hold_small = false;
};

class DataWriter final : public DataSink {
 public:
  // `fd` is the image file; the base image starts at absolute `base_offset`
  // and file data at base-relative `data_start` (block aligned).
  DataWriter(int fd, std::string name, uint64_t base_offset, uint64_t data_start,
             uint32_t inode_count, const DataPolicy& policy, const BuildOptions& options,
             uint64_t files_total, uint64_t bytes_total);

  Status BeginFile(const InodeRec& inode) override;
  Status Append(std::span<const std::byte> bytes) override;
  Status AppendZeros(uint64_t n) override;
  std::span<std::byte> Reserve(size_t want) override;
  Status Commit(size_t n) override;
  Status EndFile() override;

  // Places what is still pending, pads to a block and writes everything out.
  Result<DataPlacement> Finish();

 private:
  static constexpr uint64_t kUnplaced = UINT64_MAX;
  struct Blob {                 // one stored copy of some contents
    uint64_t offset = kUnplaced;  // absolute, once placed
    uint64_t pool_seq = 0;        // while unplaced: its pool item
    uint32_t held = UINT32_MAX;   // hold_small: index into result_.held
  };
  using SizeIndex = std::multimap<uint64_t, uint64_t>;  // size -> pool seq, unplaced items
  struct PoolItem {             // a small file waiting for a place
    uint32_t blob;
    std::vector<std::byte> bytes;  // emptied once placed
    SizeIndex::iterator in_index;  // valid while unplaced
  };
  struct DedupKey {
    uint64_t size, hi, lo;
    bool operator==(const DedupKey&) const = default;
  };
  struct DedupKeyHash {
    size_t operator()(const DedupKey& k) const { return k.lo ^ (k.hi * 31) ^ k.size; }
  };

  uint64_t cursor() const { return pos_ + fill_; }
  std::span<std::byte> ReserveRaw(size_t want);
  Status WriteBytes(std::span<const std::byte> bytes);
  Status WriteZeros(uint64_t n);
  Status AlignCursor();
  Status Flush();
  Status ReadBack(uint64_t offset, std::span<std::byte> out);
  Result<bool> SameAsBlob(uint32_t blob, uint64_t size);
  // Writes a waiting pool item at the cursor and takes it out of the index.
  Status PlacePacked(PoolItem* item);
  Status FillTailGap();
  Status DrainPool(uint64_t keep_bytes);
  void Rewind();
  void HashZeros(XXH3_state_t* state, uint64_t n);

  int fd_;
  std::string name_;
  uint64_t base_offset_;
  uint64_t data_start_;         // absolute
  DataPolicy policy_;
  const BuildOptions& options_;

  std::vector<std::byte> buf_;  // write buffer for bytes at [pos_, pos_ + fill_)
  uint64_t pos_;
  size_t fill_ = 0;
  uint64_t dirty_end_ = 0;      // end of what was ever written: holes only past it
  bool open_block_ = false;     // packed data may continue in the current block
  XXH3_state_t hash_;           // data checksum of everything flushed, in order
  Status write_error_;

  // The file being received.
  uint32_t cur_ino_ = 0;
  uint64_t cur_size_ = 0;
  uint64_t remaining_ = 0;
  bool staged_ = false;         // small file collected in stage_
  bool streaming_ = false;      // large file written at cur_start_
  std::vector<std::byte> stage_;
  size_t stage_fill_ = 0;
  uint64_t cur_start_ = 0;      // absolute start of a streamed file
  XXH3_state_t at_start_;       // hash_ as of cur_start_, once flushed past it
  bool at_start_valid_ = false;
  XXH3_state_t file_hash_;      // XXH3-128 of the current file (dedup key)

  std::vector<Blob> blobs_;
  std::vector<uint32_t> blob_by_ino_;
  std::unordered_map<DedupKey, uint32_t, DedupKeyHash> by_contents_;
  std::deque<PoolItem> pool_;
  uint64_t pool_front_seq_ = 0;
  uint64_t pool_bytes_ = 0;     // bytes of unplaced pool items
  SizeIndex unplaced_by_size_;

  DataPlacement result_;
  BuildProgress progress_;
};

}  // namespace daxfs::build
