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
//
// Coordination is by atomic operations on the region alone (version 4): no
// futex, no pthread object, no pid in the protocol, so that processes of
// different kernels (VMs sharing ivshmem, hosts sharing CXL memory) can use
// one region. docs/BRANCHES.md ("The protocol") says who writes each word,
// with which operation, and why a death or a pause at any step is safe.
#pragma once

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
// Version 4 replaced the robust mutex and the pid leases by attach entries
// with heartbeats, leases naming an attach entry's incarnation, fenced
// publication and slot state words with their transition's owner: a
// version 2 or 3 region is refused until `daxfs branch upgrade` converts it.
inline constexpr uint32_t kControlVersion = 4;
inline constexpr uint32_t kControlVersionV3 = 3;
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
  uint64_t next_branch_id;     // 88  atomic: fetch-add by create
  uint64_t reserved_v3;        // 96  (version 3: the boot the mutex was set up in)
  uint64_t free_pages;         // 104 atomic: pages in free_extents (a hint: may be high
                               //     after a crash; gc sets it exactly)
  uint32_t lease_timeout_ms;   // 112 a heartbeat unchanged this long means its owner is gone
  uint32_t reserved1;          // 116
  uint64_t gc_lease;           // 120 atomic: Holder of the exclusive gc, 0 = none
  uint8_t reserved_mutex[64];  // 128 (version 3: a pthread mutex), zero
  uint64_t free_extents[480];  // 192 atomic each: FreeExtent words, 0 = empty
  uint8_t reserved2[64];       // 4032
};
static_assert(sizeof(ControlHeader) == 4096);
inline constexpr uint32_t kLeaseTimeoutDefaultMs = 5000;
inline constexpr uint32_t kLeaseTimeoutMinMs = 200;
inline constexpr uint32_t kLeaseTimeoutMaxMs = 600000;

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
// A free-table word a reclaimer reserved (top bit, and its Holder): only
// that holder may fill it, with one compare-and-swap, so a reclaimer that
// was paused past its lease and resumes can never put pages in twice.
// Allocators skip reserved words; a dead holder's are cleared.
inline constexpr uint64_t kFreeReserved = uint64_t{1} << 63;
inline constexpr bool FreeExtentReserved(uint64_t w) { return (w & kFreeReserved) != 0; }
// Delta areas are at most 1 PiB so that page numbers fit FreeExtent words
// below the reserved bit.
inline constexpr uint64_t kDeltaMax = uint64_t{1} << 50;

// Who holds something (a lease, a state transition, a reserved word): an
// attach entry's index + 1 (low 8 bits) and the incarnation of that entry
// (56 bits; each claim of an entry makes a new one). 0 = nobody. An entry
// whose incarnation moved on, or whose heartbeat stood still for the lease
// timeout, holds nothing any more.
using Holder = uint64_t;
inline constexpr uint64_t kHolderMask = (uint64_t{1} << 56) - 1;
inline constexpr Holder MakeHolder(uint32_t entry, uint64_t incarnation) {
  return (incarnation << 8 | (entry + 1)) & kHolderMask;
}
inline constexpr uint32_t HolderEntry(Holder h) { return static_cast<uint32_t>(h & 0xff) - 1; }
inline constexpr uint64_t HolderIncarnation(Holder h) { return h >> 8; }

enum SlotState : uint32_t {
  kFree = 0,
  kActive = 1,
  kCommitted = 2,
  kAborted = 3,
  // Version 4: being made (its creator fills the slot), and being committed
  // or aborted (its ender checks the children, then finishes or reverts).
  // Readers see a kEnding branch as active; a kClaimed one not at all.
  kClaimed = 4,
  kEnding = 5,
};
// A slot's state word: the SlotState (low 8 bits) and the Holder doing a
// transition that takes several steps (kClaimed, kEnding; also a
// reclaimer's claim of an ended slot), 0 otherwise. Every change is one
// compare-and-swap of the whole word, so a holder that lost its claim (it
// was paused past the lease timeout and someone else finished or undid its
// work) can change nothing when it resumes.
inline constexpr uint64_t SlotWord(uint32_t state, Holder h = 0) { return h << 8 | state; }
inline constexpr uint32_t SlotWordState(uint64_t w) { return static_cast<uint32_t>(w & 0xff); }
inline constexpr Holder SlotWordHolder(uint64_t w) { return w >> 8; }

// A log's published word: the logical length readers may use (low 48
// bits) and the writer epoch (high 16 bits). Appends publish with one
// compare-and-swap that expects the epoch the appender's lease started
// under; taking a lease over from a dead (or paused) holder bumps the
// epoch, so the old holder's next publish fails: fencing.
inline constexpr uint64_t kLenMask = (uint64_t{1} << 48) - 1;
inline constexpr uint64_t PublishedLen(uint64_t w) { return w & kLenMask; }
inline constexpr uint64_t PublishedEpoch(uint64_t w) { return w >> 48; }
inline constexpr uint64_t PublishedWord(uint64_t epoch, uint64_t len) { return (epoch & 0xffff) << 48 | len; }

// One branch (slot 0 is main). 256 bytes, kSlotCount of them after the header.
struct Slot {
  uint64_t state;              // 0   atomic slot state word (SlotWord); changed by CAS only
  uint32_t parent_slot;        // 8
  uint32_t flags;              // 12  kSlotFirstWins (set before the slot is active),
                               //     kSlotSelfContained (set before the committed state)
  uint64_t id;                 // 16  unique, increasing; main is 1
  uint64_t parent_id;          // 24  the parent slot's id (checked)
  uint64_t snapshot_len;       // 32  parent's published log length at creation
  uint64_t first_chunk;        // 40  delta-relative offset of the first log chunk
  uint64_t published;          // 48  atomic: PublishedWord (epoch, length)
  uint64_t lease;              // 56  atomic: Holder of the writer lease, 0 = none
  int64_t created_sec;         // 64
  uint64_t commit_pos;         // 72  committed: the merge record's position in the parent log
  char name[64];               // 80  NUL terminated, 1..63 bytes
  uint64_t viewers[2];         // 144 atomic: bit i = attach entry i has a view of this branch open
  uint8_t reserved[96];        // 160
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

// A user of the region (a process of some kernel), LMDB-style. `owner` is
// the entry's incarnation times 2, plus 1 while in use; claiming the entry
// (free, or its owner gone) is one CAS to the next incarnation. While in
// use, the owner adds 1 to `heartbeat` every lease_timeout/8; others judge
// it gone when the heartbeat stands still for lease_timeout (their own
// clock: kernels share no clock). boot/pid only speed that up inside one
// kernel and pid namespace: a pid that does not exist there is gone now.
struct AttachEntry {
  uint64_t owner;              // 0  atomic
  uint64_t heartbeat;          // 8  atomic
  uint64_t boot;               // 16 atomic: hash of the kernel's boot id and pid namespace
  uint64_t pid;                // 24 atomic: pid in that namespace (informational elsewhere)
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
// logical log positions count only the chunks' data bytes. A chunk's data
// ends at the next chunk's log_start (version 4; older logs pad the rest of
// a full chunk and start the next at its end): a writer that takes a lease
// over links a fresh chunk at the published length, so bytes a paused old
// holder may still write into the old tail lie outside every log.
inline constexpr uint32_t kChunkMagic = 0x4b4e4843;  // "CHNK"
struct ChunkHeader {
  uint32_t magic;              // 0
  uint32_t writer;             // 4   ChunkStamp of the lease epoch whose holder made it
  uint64_t capacity;           // 8   bytes including this header (4 KiB multiple)
  uint64_t log_start;          // 16  logical position of the first data byte
  uint64_t next;               // 24  atomic: delta-relative next chunk (0 = none); set by
                               //     CAS from 0 only, after the chunk's bytes are written
};
static_assert(sizeof(ChunkHeader) == 32);
// ChunkHeader::writer. An appender writes in place only into a chunk made
// under its own lease epoch: a holder that was stopped, taken over and
// resumes finds the taker's chunks stamped with another epoch and writes
// nothing into them. (0, in chunks of earlier v4 regions, matches nothing:
// their next append starts a stamped chunk.)
inline constexpr uint32_t kChunkStamped = 1u << 16;
inline constexpr uint32_t ChunkStamp(uint64_t epoch) { return kChunkStamped | static_cast<uint32_t>(epoch & 0xffff); }
// Whether a chunk stamped `writer` was made under an epoch later than
// `epoch` (16-bit serial arithmetic): then whoever holds `epoch` was taken
// over, and neither writes into that chunk nor links after it.
inline constexpr bool ChunkOfLaterEpoch(uint32_t writer, uint64_t epoch) {
  const uint32_t d = (writer - static_cast<uint32_t>(epoch)) & 0xffff;
  return (writer & kChunkStamped) != 0 && d != 0 && d < 0x8000;
}

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
