#include "builder/data_writer.h"

#include <algorithm>
#include <cstring>

#include "daxfs/format.h"
#include "util/file_io.h"

namespace daxfs::build {

namespace fmt = daxfs::format;

namespace {

constexpr size_t kBufferSize = 8u << 20;
// Small files wait in a pool (bounded memory) so that they can fill the
// unused ends of later large files' last blocks; above the limit the oldest
// half is written out packed.
constexpr uint64_t kPoolLimit = 32u << 20;
constexpr size_t kCompareChunk = 1u << 20;
const std::byte kZeros[64 * 1024] = {};

}  // namespace

DataWriter::DataWriter(int fd, std::string name, uint64_t base_offset, uint64_t data_start,
                       uint32_t inode_count, const DataPolicy& policy,
                       const BuildOptions& options, uint64_t files_total, uint64_t bytes_total)
    : fd_(fd), name_(std::move(name)), base_offset_(base_offset),
      data_start_(base_offset + data_start), policy_(policy), options_(options),
      buf_(kBufferSize), pos_(data_start_), dirty_end_(data_start_) {
  XXH3_64bits_reset(&hash_);
  blob_by_ino_.assign(size_t{inode_count} + 1, UINT32_MAX);
  progress_.phase = "writing";
  progress_.items_total = files_total;
  progress_.bytes_total = bytes_total;
}

void DataWriter::HashZeros(XXH3_state_t* state, uint64_t n) {
  while (n > 0) {
    const size_t k = static_cast<size_t>(std::min<uint64_t>(n, sizeof kZeros));
    XXH3_64bits_update(state, kZeros, k);
    n -= k;
  }
}

std::span<std::byte> DataWriter::ReserveRaw(size_t want) {
  if (fill_ == buf_.size()) {
    // Reserve cannot return a Status: a write error is remembered and
    // reported by the next Commit, EndFile or Finish.
    write_error_ = Flush();
    if (!write_error_.ok()) fill_ = 0;
  }
  const size_t n = std::min(want, buf_.size() - fill_);
  return {buf_.data() + fill_, n};
}

Status DataWriter::WriteBytes(std::span<const std::byte> bytes) {
  while (!bytes.empty()) {
    auto space = ReserveRaw(bytes.size());
    std::memcpy(space.data(), bytes.data(), space.size());
    fill_ += space.size();
    bytes = bytes.subspan(space.size());
  }
  return write_error_;
}

Status DataWriter::WriteZeros(uint64_t n) {
  while (n > 0) {
    auto space = ReserveRaw(static_cast<size_t>(std::min<uint64_t>(n, kBufferSize)));
    std::memset(space.data(), 0, space.size());
    fill_ += space.size();
    n -= space.size();
  }
  return write_error_;
}

Status DataWriter::AlignCursor() {
  return WriteZeros(fmt::AlignUp(cursor(), fmt::kBlockSize) - cursor());
}

Status DataWriter::Flush() {
  // A streamed file may still turn out to be a duplicate and be rewound:
  // remember the data checksum as of its first byte before hashing past it.
  const bool crosses_start = streaming_ && !at_start_valid_ &&
                             cur_start_ >= pos_ && cur_start_ <= pos_ + fill_;
  if (crosses_start) {
    const size_t before = static_cast<size_t>(cur_start_ - pos_);
    XXH3_64bits_update(&hash_, buf_.data(), before);
    at_start_ = hash_;
    at_start_valid_ = true;
    XXH3_64bits_update(&hash_, buf_.data() + before, fill_ - before);
  } else {
    XXH3_64bits_update(&hash_, buf_.data(), fill_);
  }
  if (fill_ == 0) return Status::OK();
  DAXFS_RETURN_IF_ERROR(PwriteAll(fd_, {buf_.data(), fill_}, pos_, name_));
  pos_ += fill_;
  fill_ = 0;
  dirty_end_ = std::max(dirty_end_, pos_);
  return Status::OK();
}

Status DataWriter::BeginFile(const InodeRec& inode) {
  if (!write_error_.ok()) return write_error_;
  if (inode.ino == 0 || inode.ino >= blob_by_ino_.size())
    return Status::InvalidArgument(name_ + ": internal error: data for unnumbered inode");
  cur_ino_ = inode.ino;
  cur_size_ = remaining_ = inode.size;
  if (policy_.dedup) XXH3_128bits_reset(&file_hash_);
  staged_ = policy_.pack && inode.size <= fmt::kPackedFileMax;
  if (staged_) {
    stage_.assign(inode.size, std::byte{0});
    stage_fill_ = 0;
    return Status::OK();
  }
  DAXFS_RETURN_IF_ERROR(AlignCursor());
  open_block_ = false;
  cur_start_ = cursor();
  at_start_valid_ = false;
  streaming_ = true;
  return Status::OK();
}

std::span<std::byte> DataWriter::Reserve(size_t want) {
  want = static_cast<size_t>(std::min<uint64_t>(want, remaining_ ? remaining_ : 1));
  if (staged_) {
    if (stage_fill_ + want > stage_.size()) stage_.resize(stage_fill_ + want);
    return {stage_.data() + stage_fill_, want};
  }
  return ReserveRaw(want);
}

Status DataWriter::Commit(size_t n) {
  if (!write_error_.ok()) return write_error_;
  if (n > remaining_) n = static_cast<size_t>(remaining_);
  std::byte* p = staged_ ? stage_.data() + stage_fill_ : buf_.data() + fill_;
  if (policy_.dedup) XXH3_128bits_update(&file_hash_, p, n);
  (staged_ ? stage_fill_ : fill_) += n;
  remaining_ -= n;
  progress_.bytes_done += n;
  return Status::OK();
}

Status DataWriter::Append(std::span<const std::byte> bytes) {
  while (!bytes.empty() && remaining_ > 0) {
    auto space = Reserve(bytes.size());
    std::memcpy(space.data(), bytes.data(), space.size());
    DAXFS_RETURN_IF_ERROR(Commit(space.size()));
    bytes = bytes.subspan(space.size());
  }
  return Status::OK();
}

Status DataWriter::AppendZeros(uint64_t n) {
  if (!write_error_.ok()) return write_error_;
  n = std::min(n, remaining_);
  remaining_ -= n;
  progress_.bytes_done += n;
  if (policy_.dedup) HashZeros(&file_hash_, n);
  if (staged_) {
    std::memset(stage_.data() + stage_fill_, 0, static_cast<size_t>(n));  // n < a block
    stage_fill_ += static_cast<size_t>(n);
    return Status::OK();
  }
  // Whole blocks of zeros past anything ever written stay holes (the image
  // file is sparse where the source was); zeros elsewhere are written, since
  // a rewound duplicate may have left bytes there.
  const uint64_t start = cursor(), end = start + n;
  const uint64_t hole_begin = fmt::AlignUp(std::max(start, dirty_end_), fmt::kBlockSize);
  const uint64_t hole_end = end / fmt::kBlockSize * fmt::kBlockSize;
  if (hole_begin >= hole_end) return WriteZeros(n);
  DAXFS_RETURN_IF_ERROR(WriteZeros(hole_begin - start));
  DAXFS_RETURN_IF_ERROR(Flush());
  HashZeros(&hash_, hole_end - hole_begin);
  pos_ = hole_end;
  return WriteZeros(end - hole_end);
}

Status DataWriter::ReadBack(uint64_t offset, std::span<std::byte> out) {
  if (offset < pos_) {
    const size_t k = static_cast<size_t>(std::min<uint64_t>(out.size(), pos_ - offset));
    DAXFS_RETURN_IF_ERROR(PreadFull(fd_, out.first(k), offset, name_));
    out = out.subspan(k);
    offset += k;
  }
  if (!out.empty()) std::memcpy(out.data(), buf_.data() + (offset - pos_), out.size());
  return Status::OK();
}

// Whether the current file's bytes equal those of `blob` (same size).
Result<bool> DataWriter::SameAsBlob(uint32_t blob, uint64_t size) {
  const Blob& b = blobs_[blob];
  if (staged_) {
    if (b.held != UINT32_MAX) {
      const auto& bytes = result_.held[b.held];
      return bytes.size() == size && std::memcmp(bytes.data(), stage_.data(), size) == 0;
    }
    if (b.offset == kUnplaced) {
      const PoolItem& item = pool_[b.pool_seq - pool_front_seq_];
      return item.bytes.size() == size && std::memcmp(item.bytes.data(), stage_.data(), size) == 0;
    }
    std::vector<std::byte> other(size);
    DAXFS_RETURN_IF_ERROR(ReadBack(b.offset, other));
    return std::memcmp(other.data(), stage_.data(), size) == 0;
  }
  if (b.offset == kUnplaced) return false;  // small files are never streamed here
  std::vector<std::byte> mine(std::min<uint64_t>(size, kCompareChunk)), theirs(mine.size());
  for (uint64_t at = 0; at < size; at += mine.size()) {
    const size_t k = static_cast<size_t>(std::min<uint64_t>(size - at, mine.size()));
    DAXFS_RETURN_IF_ERROR(ReadBack(cur_start_ + at, {mine.data(), k}));
    DAXFS_RETURN_IF_ERROR(ReadBack(b.offset + at, {theirs.data(), k}));
    if (std::memcmp(mine.data(), theirs.data(), k) != 0) return false;
  }
  return true;
}

// Drops the current streamed file's bytes: the next data overwrites them.
void DataWriter::Rewind() {
  if (cur_start_ >= pos_) {
    fill_ = static_cast<size_t>(cur_start_ - pos_);
    return;
  }
  hash_ = at_start_;  // valid: a flush crossed cur_start_
  pos_ = cur_start_;
  fill_ = 0;
}

Status DataWriter::EndFile() {
  if (!write_error_.ok()) return write_error_;
  if (remaining_ != 0) return Status::IOError(name_ + ": internal error: file data incomplete", EIO);
  const uint64_t size = cur_size_;
  cur_size_ = 0;
  const bool was_streaming = streaming_;
  streaming_ = false;
  ++progress_.items_done;
  if (options_.progress && progress_.items_done % 256 == 0) options_.progress(progress_);

  DedupKey key{size, 0, 0};
  if (policy_.dedup) {
    const XXH128_hash_t h = XXH3_128bits_digest(&file_hash_);
    key.hi = h.high64;
    key.lo = h.low64;
    if (auto it = by_contents_.find(key); it != by_contents_.end()) {
      DAXFS_ASSIGN_OR_RETURN(bool same, SameAsBlob(it->second, size));
      if (same) {
        if (was_streaming) Rewind();
        blob_by_ino_[cur_ino_] = it->second;
        ++result_.duplicate_files;
        result_.duplicate_bytes += size;
        staged_ = false;
        return Status::OK();
      }
    }
  }
  const auto blob = static_cast<uint32_t>(blobs_.size());
  blobs_.emplace_back();
  blob_by_ino_[cur_ino_] = blob;
  if (policy_.dedup) by_contents_.emplace(key, blob);

  if (staged_ && policy_.hold_small) {
    staged_ = false;
    stage_.resize(size);
    blobs_[blob].held = static_cast<uint32_t>(result_.held.size());
    result_.held.push_back(std::move(stage_));
    stage_ = {};
    ++result_.packed_files;
    return Status::OK();
  }
  if (staged_) {
    staged_ = false;
    stage_.resize(size);
    const uint64_t seq = pool_front_seq_ + pool_.size();
    blobs_[blob].pool_seq = seq;
    pool_.push_back(PoolItem{blob, std::move(stage_), unplaced_by_size_.emplace(size, seq)});
    stage_ = {};
    pool_bytes_ += size;
    ++result_.packed_files;
    if (pool_bytes_ > kPoolLimit) return DrainPool(kPoolLimit / 2);
    return Status::OK();
  }
  blobs_[blob].offset = cur_start_;
  if (!policy_.share_tails) return Status::OK();
  if (policy_.hold_small && cursor() % fmt::kBlockSize != 0)
    result_.tail_gaps.emplace_back(cursor(), fmt::AlignUp(cursor(), fmt::kBlockSize));
  open_block_ = true;
  return FillTailGap();
}

// Writes a pool item at the cursor (the current block, when open for packed
// data, or the next one).
Status DataWriter::PlacePacked(PoolItem* item) {
  if (!open_block_) DAXFS_RETURN_IF_ERROR(AlignCursor());
  open_block_ = true;
  if (policy_.avoid_aligned_packed_start && cursor() % fmt::kBlockSize == 0)
    DAXFS_RETURN_IF_ERROR(WriteZeros(1));
  unplaced_by_size_.erase(item->in_index);
  blobs_[item->blob].offset = cursor();
  DAXFS_RETURN_IF_ERROR(WriteBytes(item->bytes));
  pool_bytes_ -= item->bytes.size();
  item->bytes = {};
  return Status::OK();
}

// Fills the rest of the block after a large file with the largest waiting
// small files that fit (best fit, deterministic for a given input).
Status DataWriter::FillTailGap() {
  uint64_t gap = fmt::AlignUp(cursor(), fmt::kBlockSize) - cursor();
  while (gap > 0 && !unplaced_by_size_.empty()) {
    auto it = unplaced_by_size_.upper_bound(gap);
    if (it == unplaced_by_size_.begin()) break;
    --it;
    gap -= it->first;
    DAXFS_RETURN_IF_ERROR(PlacePacked(&pool_[it->second - pool_front_seq_]));
  }
  return Status::OK();
}

// Writes out the oldest waiting small files until at most `keep_bytes` wait.
Status DataWriter::DrainPool(uint64_t keep_bytes) {
  while (!pool_.empty() && (pool_bytes_ > keep_bytes || pool_.front().bytes.empty())) {
    if (!pool_.front().bytes.empty()) DAXFS_RETURN_IF_ERROR(PlacePacked(&pool_.front()));
    pool_.pop_front();
    ++pool_front_seq_;
  }
  return Status::OK();
}

Result<DataPlacement> DataWriter::Finish() {
  if (!write_error_.ok()) return write_error_;
  DAXFS_RETURN_IF_ERROR(DrainPool(0));
  DAXFS_RETURN_IF_ERROR(AlignCursor());
  DAXFS_RETURN_IF_ERROR(Flush());
  if (options_.progress) options_.progress(progress_);
  result_.data_end = cursor() - base_offset_;
  result_.checksum = XXH3_64bits_digest(&hash_);
  result_.offset_by_ino.assign(blob_by_ino_.size(), 0);
  result_.held_by_ino.assign(blob_by_ino_.size(), UINT32_MAX);
  for (size_t ino = 0; ino < blob_by_ino_.size(); ++ino) {
    if (blob_by_ino_[ino] == UINT32_MAX) continue;
    const Blob& b = blobs_[blob_by_ino_[ino]];
    if (b.held != UINT32_MAX) {
      result_.held_by_ino[ino] = b.held;
      continue;
    }
    if (b.offset == kUnplaced)
      return Status::IOError(name_ + ": internal error: inode " + std::to_string(ino) +
                                 " has no data placed", EIO);
    result_.offset_by_ino[ino] = b.offset - base_offset_;
  }
  return std::move(result_);
}

}  // namespace daxfs::build
