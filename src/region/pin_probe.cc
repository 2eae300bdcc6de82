// Region::kernel_can_pin: whether the kernel can pin the mapping's pages.
//
// A PFN mapping (remap_pfn_range: PCI BARs, /dev/mem) has no struct page for
// get_user_pages to take, so every call that pins user memory fails on it
// with EFAULT; worse, a FUSE reply whose payload cannot be copied is answered
// to the reader as EIO, so the mount must know before it writes one. The
// probe asks the kernel directly: vmsplice pins the pages it is given.
#include <fcntl.h>
#include <sys/uio.h>
#include <unistd.h>

#include <cerrno>

#include "daxfs/region.h"

namespace daxfs {

bool Region::kernel_can_pin() const {
  int known = pinnable_.load(std::memory_order_relaxed);
  if (known >= 0) return known != 0;
  bool can = true;  // what we cannot probe (no pipe, no vmsplice) we assume
  int p[2];
  if (size_ > 0 && pipe2(p, O_CLOEXEC | O_NONBLOCK) == 0) {
    iovec v{data_, 1};
    if (vmsplice(p[1], &v, 1, SPLICE_F_NONBLOCK) < 0 && errno == EFAULT) can = false;
    close(p[0]);
    close(p[1]);
  }
  pinnable_.store(can ? 1 : 0, std::memory_order_relaxed);
  return can;
}

}  // namespace daxfs
