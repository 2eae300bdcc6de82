// Parsing of region descriptors ("shm:/img", "dax:/dev/dax0.0", ...).
#include <fcntl.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <sys/vfs.h>
#include <unistd.h>

#include <cstring>
#include <fstream>
#include <string_view>

#include "daxfs/region.h"
#include "region/open_flags.h"
#include "region/fd_passing.h"
#include "region/region_spec.h"

namespace daxfs {
namespace {

bool ParseU64(std::string_view s, uint64_t* out) {
  if (s.empty()) return false;
  char* end = nullptr;
  std::string tmp(s);
  errno = 0;
  unsigned long long v = std::strtoull(tmp.c_str(), &end, 0);
  if (errno != 0 || end == tmp.c_str()) return false;
  uint64_t mult = 1;
  std::string_view suffix(end);
  if (suffix == "K" || suffix == "k") mult = 1ull << 10;
  else if (suffix == "M" || suffix == "m") mult = 1ull << 20;
  else if (suffix == "G" || suffix == "g") mult = 1ull << 30;
  else if (!suffix.empty()) return false;
  if (v > UINT64_MAX / mult) return false;
  *out = v * mult;
  return true;
}

Result<uint64_t> ReadSysfsU64(const std::string& path) {
  std::ifstream in(path);
  std::string text;
  if (!in || !(in >> text)) return Status::NotFound(path + ": cannot read");
  uint64_t v;
  if (!ParseU64(text, &v)) return Status::InvalidArgument(path + ": not a number: " + text);
  return v;
}

Result<std::shared_ptr<Region>> OpenDeviceDax(const std::string& path, Access access) {
  int fd = open(path.c_str(), OpenFlagsFor(access));
  if (fd < 0) return Status::FromErrno(errno, path + ": cannot open: " + std::strerror(errno));
  struct stat st;
  if (fstat(fd, &st) != 0 || !S_ISCHR(st.st_mode)) {
    close(fd);
    return Status::InvalidArgument(path + ": not a device-DAX character device");
  }
  const std::string sys = "/sys/dev/char/" + std::to_string(major(st.st_rdev)) + ":" +
                          std::to_string(minor(st.st_rdev));
  auto size = ReadSysfsU64(sys + "/size");
  if (!size.ok()) {
    close(fd);
    return size.status().WithContext(path + ": device-DAX size");
  }
  // Device DAX refuses mappings not aligned to its "align" attribute; the
  // whole device is mapped, so only the size needs rounding down.
  auto align = ReadSysfsU64(sys + "/align");
  uint64_t len = *size;
  if (align.ok() && *align > 0) len = len / *align * *align;
  return Region::MapFd(fd, access, "dax:" + path, 0, len);
}

Result<std::shared_ptr<Region>> OpenPhys(std::string_view range, Access access) {
  const auto plus = range.find('+');
  uint64_t addr = 0, size = 0;
  if (plus == std::string_view::npos || !ParseU64(range.substr(0, plus), &addr) ||
      !ParseU64(range.substr(plus + 1), &size) || size == 0) {
    return Status::InvalidArgument("phys:" + std::string(range) +
                                   ": expected phys:0xADDRESS+SIZE (e.g. phys:0x100000000+1G)");
  }
  int fd = open("/dev/mem", OpenFlagsFor(access) | O_SYNC);
  if (fd < 0) return Status::FromErrno(errno, std::string("/dev/mem: cannot open: ") +
                                                  std::strerror(errno));
  return Region::MapFd(fd, access, "phys:" + std::string(range), addr, size);
}

Result<std::shared_ptr<Region>> OpenResource(std::string_view rest, Access access) {
  std::string path(rest);
  uint64_t size = 0;
  if (auto plus = rest.rfind('+'); plus != std::string_view::npos) {
    if (!ParseU64(rest.substr(plus + 1), &size))
      return Status::InvalidArgument("resource:" + path + ": bad size after '+'");
    path = std::string(rest.substr(0, plus));
  }
  int fd = open(path.c_str(), OpenFlagsFor(access));
  if (fd < 0) return Status::FromErrno(errno, path + ": cannot open: " + std::strerror(errno));
  return Region::MapFd(fd, access, "resource:" + path, 0, size);
}

}  // namespace

RegionSpec SplitRegionSpec(const std::string& spec) {
  const auto colon = spec.find(':');
  if (colon == std::string::npos || colon == 0 || spec.find('/') < colon)
    return {"", spec};  // a plain path (which may contain ':')
  return {spec.substr(0, colon), spec.substr(colon + 1)};
}

Result<std::string> ShmPath(const std::string& spec, const std::string& rest) {
  std::string name = rest;
  while (!name.empty() && name.front() == '/') name.erase(0, 1);
  if (name.empty() || name.find('/') != std::string::npos)
    return Status::InvalidArgument(spec + ": expected shm:/NAME");
  return "/dev/shm/" + name;
}

Result<std::shared_ptr<Region>> Region::Open(const std::string& spec, Access access) {
  const auto [kind, rest] = SplitRegionSpec(spec);
  if (kind.empty() || kind == "file") return OpenFile(rest, access);
  if (kind == "shm") {
    DAXFS_ASSIGN_OR_RETURN(std::string path, ShmPath(spec, rest));
    return OpenFile(path, access);
  }
  if (kind == "hugetlbfs") {
    struct statfs sfs;
    if (statfs(rest.c_str(), &sfs) != 0)
      return Status::FromErrno(errno, rest + ": " + std::strerror(errno));
    if (sfs.f_type != kHugetlbfsMagic)
      return Status::InvalidArgument(rest + ": not on a hugetlbfs mount");
    return OpenFile(rest, access);
  }
  if (kind == "dax") return OpenDeviceDax(rest, access);
  if (kind == "phys") return OpenPhys(rest, access);
  if (kind == "resource") return OpenResource(rest, access);
  if (kind == "fd") {
    uint64_t n;
    if (!ParseU64(rest, &n) || n > INT32_MAX) return Status::InvalidArgument(spec + ": bad fd");
    int fd = fcntl(static_cast<int>(n), F_DUPFD_CLOEXEC, 3);
    if (fd < 0) return Status::FromErrno(errno, spec + ": " + std::strerror(errno));
    return MapFd(fd, access, spec);
  }
  if (kind == "memfd") {
    DAXFS_ASSIGN_OR_RETURN(int fd, ReceiveRegionFd(rest));
    // A sealed memfd cannot be mapped writable; the server decides.
    return MapFd(fd, access, spec);
  }
  return Status::InvalidArgument(
      spec + ": unknown region kind '" + std::string(kind) +
      "' (expected file:, shm:, hugetlbfs:, dax:, phys:, resource:, fd: or memfd:)");
}

}  // namespace daxfs
