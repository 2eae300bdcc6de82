#include "format/checksum.h"

#define XXH_STATIC_LINKING_ONLY
#include <xxhash.h>

#include "daxfs/format.h"

namespace daxfs::format {

uint64_t SuperChecksum(const std::byte* sb) {
  XXH3_state_t st;
  XXH3_64bits_reset(&st);
  XXH3_64bits_update(&st, sb, kSuperCsumPrefix);
  XXH3_64bits_update(&st, sb + offsetof(Superblock, ext), offsetof(ExtHeader, super_csum));
  return XXH3_64bits_digest(&st);
}

}  // namespace daxfs::format
