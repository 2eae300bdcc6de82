// On-region structures of a branchable region (format::kFeatureBranchRegion).
// See docs/BRANCHES.md for the layout and the rules.
//
// Region layout:
//   [superblock][base image, as in the source image][control block][delta area]
//
// The control block and the delta area are written by every process that
// uses the region, so readers treat them as untrusted: every offset, length,
// slot number and inode number is checked before use. Shared fields marked
// "atomic" are only accessed through std::atomic_ref with acquire/release
// ordering; everything else in a slot is written before the slot's state is
// published (release) and not changed afterwards.
#pragma once

#include <pthread.h>

#include <cstddef>
#include <cstdint>

namespace daxfs::format::branch {

inline constexpr uint32_t kControlMagic = 0x48435244;  // "DRCH"
// Version 2 added the free-extent table (gc); version 1 regions (no table)
// are read, and become the current version at their first gc.
inline constexpr uint32_t kControlVersionNoFreeTable = 1;
// Version 3 added forget records, nameless creates, keep bits, merge
// records naming the child's first chunk, slot flags and viewer masks, and
// slots freed online: an older daxfs must not open such a region (its
// exclusive gc would free the logs of children whose slots are gone).
// Version 2 regions are upgraded when a version-3 daxfs first attaches.
inline constexpr uint32_t kControlVersion = 3;
inline constexpr uint32_t kControlVersionFreeTable = 2;
inline constexpr uint32_t kSlotCount = 256;
inline constexpr uint32_t kAttachCount = 128;
inline constexpr uint32_t kBranchNameMax = 63;
inline constexpr uint32_t kMainSlot = 0;
inline constexpr uint64_t kPage = 4096;

// Control block header at the control block's offset (first 4 KiB).
struct ControlHeader {
  uint32_t magic;              // 0   kControlMagic
  uint32_t version;            // 4   kControlVersion
  uint64_t control_size;       // 8   bytes of the control block (4 KiB multiple)
  uint64_t delta_offset;       // 16  absolute start of the delta area (4 KiB aligned)
  uint64_t delta_size;         // 24  bytes of the delta area
  uint32_t slot_count;         // 32  kSlotCount
  uint32_t slot_size;          // 36  sizeof(Slot)
  uint32_t attach_count;       // 40  kAttachCount
  uint32_t reserved0;          // 44
  uint64_t base_inode_count;   // 48  inode numbers <= this are the base image's
  uint64_t geometry_csum;      // 56  XXH3-64 of bytes [0, 56): the fixed geometry
  uint64_t next_inode_id;      // 64  atomic: next inode number for a new inode
  uint64_t delta_cursor;       // 72  atomic: bytes of the delta area handed out
  uint64_t generation;         // 80  atomic: bumped by create/commit/abort/gc
  uint64_t next_branch_id;     // 88  under the mutex
  uint64_t boot_hash;          // 96  atomic: the boot the mutex was set up in
  uint64_t free_pages;         // 104 atomic: pages in free_extents (a hint: may be high
                               //     after a crash; gc sets it exactly)
  uint8_t reserved1[16];       // 112
  uint8_t mutex[64];           // 128 pthread_mutex_t: process-shared, robust
  uint64_t free_extents[480];  // 192 atomic each: FreeExtent words, 0 = empty
  uint8_t reserved2[64];       // 4032
};
static_assert(sizeof(ControlHeader) == 4096);
static_assert(sizeof(pthread_mutex_t) <= 64);

// A free run of delta pages that gc found unreferenced, packed in one word
// so that taking pages from it is a single compare-and-swap: a process that
// dies halfway can only leak pages (the next gc finds them), never hand the
// same page out twice.
inline constexpr uint32_t kFreeExtents = 480;
inline constexpr unsigned kFreeCountBits = 24;
inline constexpr uint64_t kFreeCountMax = (uint64_t{1} << kFreeCountBits) - 1;
inline constexpr uint64_t FreeExtent(uint64_t first_page, uint64_t pages) {
  return first_page << kFreeCountBits | pages;
}
inline constexpr uint64_t FreeExtentFirst(uint64_t w) { return w >> kFreeCountBits; }
inline constexpr uint64_t FreeExtentPages(uint64_t w) { return w & kFreeCountMax; }

enum SlotState : uint32_t {
  kFree = 0,
  kActive = 1,
  kCommitted = 2,
  kAborted = 3,
};

// One branch (slot 0 is main). 256 bytes, kSlotCount of them after the header.
struct Slot {
  uint32_t state;              // 0   atomic SlotState; published last (release)
  uint32_t parent_slot;        // 4
  uint64_t id;                 // 8   unique, increasing; main is 1
  uint64_t parent_id;          // 16  the parent slot's id (checked)
  uint64_t snapshot_len;       // 24  parent's published log length at creation
  uint64_t first_chunk;        // 32  delta-relative offset of the first log chunk
  uint64_t published_len;      // 40  atomic: logical bytes of the log readers may use
  uint64_t lease_pid;          // 48  atomic: writer's pid (0 = none)
  uint64_t lease_start;        // 56  atomic: writer's start time (/proc/PID/stat field 22)
  uint64_t lease_token;        // 64  atomic: writer's BranchStore instance
  int64_t created_sec;         // 72
  uint64_t commit_pos;         // 80  committed: the merge record's position in the parent log
  char name[64];               // 88  NUL terminated, 1..63 bytes
  uint32_t flags;              // 152 kSlotFirstWins (set before the state is published),
                               //     kSlotSelfContained (set with the committed state)
  uint32_t reserved_a;         // 156
  uint64_t viewers[2];         // 160 atomic: bit i = attach entry i has a view of this branch open
  uint8_t reserved[80];        // 176
};
// Sibling policy of a branch (docs/BRANCHES.md): without it a sibling
// commits unless it touched what its parent changed since it was made;
// with it the branch's commit fails once a sibling committed first.
inline constexpr uint32_t kSlotFirstWins = 1;
// Committed, and its merge record in the parent names its log's first chunk
// (and so do all merges in its own log): the parent's log reaches it without
// the slot, which may then be freed and reused (online reclamation).
inline constexpr uint32_t kSlotSelfContained = 2;
static_assert(sizeof(Slot) == 256);

// A process attached to the region (LMDB-style reader table).
struct AttachEntry {
  uint64_t pid;                // 0 atomic (0 = free)
  uint64_t start;              // 8 atomic
  uint64_t token;              // 16 atomic
  uint64_t reserved;           // 24
};
static_assert(sizeof(AttachEntry) == 32);

inline constexpr uint64_t kSlotsOffset = 4096;  // from the control block start
inline constexpr uint64_t kAttachOffset = kSlotsOffset + uint64_t{kSlotCount} * sizeof(Slot);
inline constexpr uint64_t kControlSize =
    (kAttachOffset + uint64_t{kAttachCount} * sizeof(AttachEntry) + kPage - 1) / kPage * kPage;
// Delta offsets are delta-relative; the first page is never handed out so
// that 0 can mean "none".
inline constexpr uint64_t kDeltaReserved = kPage;

// A log chunk (page aligned in the delta area). A log is a chain of chunks;
// logical log positions count only the chunks' data bytes.
inline constexpr uint32_t kChunkMagic = 0x4b4e4843;  // "CHNK"
struct ChunkHeader {
  uint32_t magic;              // 0
  uint32_t reserved;           // 4
  uint64_t capacity;           // 8   bytes including this header (4 KiB multiple)
  uint64_t log_start;          // 16  logical position of the first data byte
  uint64_t next;               // 24  atomic: delta-relative next chunk (0 = none)
};
static_assert(sizeof(ChunkHeader) == 32);

// Records are 8-aligned: a header, then the type's fixed part, then names
// and values. A record never crosses a chunk; the rest of a chunk after the
// last record is a kPad record, or fewer than 8 bytes that are skipped.
enum RecordType : uint32_t {
  kRecPad = 1,
  kRecCreate = 2,
  kRecLink = 3,
  kRecUnlink = 4,
  kRecRename = 5,
  kRecSetattr = 6,
  kRecWrite = 7,
  kRecSetxattr = 8,
  kRecRemovexattr = 9,
  kRecMerge = 10,
  kRecForget = 11,
};
struct RecordHeader {
  uint32_t type;
  uint32_t length;             // bytes including this header, multiple of 8
};
inline constexpr uint32_t kRecordMax = 128 * 1024;

struct RecCreate {             // + name + symlink target
  uint64_t dir, ino;
  uint32_t mode, uid, gid, rdev;
  int64_t sec;
  uint32_t nsec;
  uint16_t name_len, target_len;
};
struct RecLink {               // + name
  uint64_t dir, ino;
  int64_t sec;
  uint32_t nsec;
  uint16_t name_len, reserved;
};
struct RecUnlink {             // + name
  uint64_t dir, ino;
  int64_t sec;
  uint32_t nsec;
  uint16_t name_len, is_dir;   // kUnlinkDir | kUnlinkKeepOrphan
};
// is_dir bits of RecUnlink. kUnlinkKeepOrphan: the inode losing its last
// name stays, nameless (nlink 0), because it is still open: an orphan,
// dropped by a later kRecForget (when its last handle goes), at the end of
// the merge that commits it, or when a new writer takes the branch over.
inline constexpr uint16_t kUnlinkDir = 1;
inline constexpr uint16_t kUnlinkKeepOrphan = 2;
struct RecRename {             // + source name + destination name
  uint64_t sdir, ddir, sino, dino;  // dino: inode at the destination, 0 = none
  int64_t sec;
  uint32_t nsec, flags;        // RENAME_NOREPLACE / RENAME_EXCHANGE
  uint16_t sname_len, dname_len;
  uint32_t keep;               // kRenameKeepOrphan: a replaced dino that is open stays an orphan
};
inline constexpr uint32_t kRenameKeepOrphan = 1;
// A create record with dir 0 and no name makes an orphan (O_TMPFILE): a
// regular file with nlink 0 that a link record may name later.
enum SetattrMask : uint32_t {
  kSetMode = 1, kSetUid = 2, kSetGid = 4, kSetSize = 8,
  kSetAtime = 16, kSetMtime = 32,
};
struct RecSetattr {
  uint64_t ino;
  uint32_t mask, mode, uid, gid;
  uint64_t size;
  int64_t atime_sec, mtime_sec, ctime_sec;
  uint32_t atime_nsec, mtime_nsec, ctime_nsec, reserved;
};
// Replaces whole pages [first_page, first_page + count) of a regular file by
// delta blocks (each 4 KiB, page aligned); the file grows to at least `end`.
struct RecWrite {              // + count x u64 delta-relative block offsets
  uint64_t ino, end, first_page;
  int64_t sec;
  uint32_t nsec, count;
};
inline constexpr uint32_t kWritePagesMax = 1024;
struct RecXattr {              // + name + value (set) / + name (remove)
  uint64_t ino;
  int64_t sec;
  uint32_t nsec, flags;        // XATTR_CREATE / XATTR_REPLACE
  uint16_t name_len, reserved;
  uint32_t value_len;
};
// Drops the orphan `ino` (its last handle went); nothing if it has a name
// again or is gone already.
struct RecForget {
  uint64_t ino;
  int64_t sec;
  uint32_t nsec, reserved;
};
// The commit of a child: replays the child's log [0, child_len) here.
// Records written since online reclamation also carry child_first_chunk (a
// RecMergeChunk after the RecMerge): the child's log is then read from
// there, without its slot. Older merge records end after RecMerge.
struct RecMerge {
  uint32_t child_slot, reserved;
  uint64_t child_id, child_len;
};
struct RecMergeChunk {
  uint64_t child_first_chunk;  // delta-relative
};

}  // namespace daxfs::format::branch
