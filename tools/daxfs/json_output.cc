#include "json_output.h"

#include <sys/stat.h>

#include <cstdio>

#include "daxfs/container.h"
#include "daxfs/erofs.h"
#include "daxfs/erofs_format.h"
#include "daxfs/format.h"

namespace daxfs::tools {

namespace {
using json = nlohmann::json;

const char* TypeName(uint32_t mode) {
  switch (mode & S_IFMT) {
    case S_IFREG: return "file";
    case S_IFDIR: return "directory";
    case S_IFLNK: return "symlink";
    case S_IFCHR: return "char-device";
    case S_IFBLK: return "block-device";
    case S_IFIFO: return "fifo";
    case S_IFSOCK: return "socket";
    default: return "unknown";
  }
}

std::string Hex(std::span<const std::byte> v) {
  static const char* d = "0123456789abcdef";
  std::string out;
  for (std::byte b : v) {
    out += d[static_cast<unsigned>(b) >> 4];
    out += d[static_cast<unsigned>(b) & 15];
  }
  return out;
}
}  // namespace

json InfoJson(const Image& img) {
  const auto& i = img.info();
  json j;
  j["schema"] = "daxfs.info/1";
  j["image"] = img.region().name();
  j["format"] = i.compact_dirs ? "compact" : i.daxfs_extensions ? "upstream-readable" : "upstream";
  j["region_size"] = i.region_size;
  j["total_size"] = i.total_size;
  j["base_offset"] = i.base_offset;
  j["base_size"] = i.base_size;
  j["inodes"] = i.inode_count;
  j["branch_table"] = i.branching;
  j["objects"] = i.objects;
  if (i.objects) {
    j["object_dir"] = i.object_dir;
    j["recorded_object_dir"] = i.recorded_object_dir;
  }
  const auto bytes = img.region().bytes().first(i.total_size);
  j["erofs_view"] = HasErofsSuperblock(bytes);
  if (i.daxfs_extensions) {
    j["metadata_size"] = i.meta_size;
    j["entries"] = i.file_count;
    json features = json::array();
    const std::string names = FeatureNames(i);
    for (size_t at = 0; at < names.size();) {
      size_t end = names.find(' ', at);
      if (end == std::string::npos) end = names.size();
      if (end > at) features.push_back(names.substr(at, end - at));
      at = end + 1;
    }
    j["features"] = features;
    j["build_time"] = i.build_time;
    j["label"] = i.label;
  }
  if (!i.container_config.empty()) {
    auto c = ParseContainerConfig(i.container_config);
    json cj;
    if (c.ok()) {
      cj["platform"] = c->platform;
      cj["entrypoint"] = c->entrypoint;
      cj["cmd"] = c->cmd;
      cj["env"] = c->env;
      cj["working_dir"] = c->working_dir;
      cj["user"] = c->user;
    } else {
      cj["error"] = c.status().message();
    }
    j["container"] = cj;
  }
  return j;
}

json StatJson(const Image& img, Ino ino, const std::string& path, std::string* error) {
  auto a = img.stat(ino);
  if (!a.ok()) {
    *error = a.status().ToString();
    return nullptr;
  }
  json j;
  j["schema"] = "daxfs.stat/1";
  j["path"] = path;
  j["ino"] = a->ino;
  j["type"] = TypeName(a->mode);
  j["mode"] = a->mode & 07777;
  j["nlink"] = a->nlink;
  j["uid"] = a->uid;
  j["gid"] = a->gid;
  j["size"] = a->size;
  j["mtime"] = {{"sec", a->mtime_sec}, {"nsec", a->mtime_nsec}};
  if (S_ISCHR(a->mode) || S_ISBLK(a->mode)) j["rdev"] = {{"major", a->rdev_major}, {"minor", a->rdev_minor}};
  if (S_ISLNK(a->mode)) {
    auto t = img.readlink(ino);
    if (t.ok()) j["target"] = *t;
  }
  if (auto obj = img.object_path(ino); obj.ok()) {
    j["data"] = {{"object", *obj}};
  } else if (auto ext = img.extent(ino); ext.ok() && ext->length) {
    j["data"] = {{"region_offset", ext->offset}, {"length", ext->length}};
  }
  json xattrs = json::array();
  Status st = img.list_xattrs(ino, [&](std::string_view n, std::span<const std::byte> v) {
    xattrs.push_back({{"name", std::string(n)}, {"size", v.size()}, {"value_hex", Hex(v)}});
  });
  if (!st.ok()) {
    *error = st.ToString();
    return nullptr;
  }
  j["xattrs"] = xattrs;
  return j;
}

json BranchListJson(const std::vector<BranchInfo>& branches, const RegionUsage& u) {
  json j;
  j["schema"] = "daxfs.branch-list/1";
  json list = json::array();
  for (const auto& b : branches) {
    json e;
    e["name"] = b.name;
    e["id"] = b.id;
    e["state"] = b.state;
    e["parent"] = b.parent.empty() ? json(nullptr) : json(b.parent);
    e["log_bytes"] = b.log_bytes;
    e["snapshot"] = b.snapshot;
    e["writer_pid"] = b.writer ? json(b.writer) : json(nullptr);
    e["children"] = b.children;
    e["created"] = b.created_sec;
    e["siblings"] = b.parent.empty() ? json(nullptr) : json(b.siblings);
    list.push_back(e);
  }
  j["branches"] = list;
  j["delta"] = {{"size", u.delta_size}, {"used", u.delta_used}, {"free", u.delta_free}};
  j["slots_used"] = u.slots_used;
  j["attached"] = u.attached;
  return j;
}

json CheckJson(const std::string& image, uint64_t inodes, uint64_t entries, const std::vector<std::string>& problems,
               const std::vector<std::string>& warnings) {
  json j;
  j["schema"] = "daxfs.check/1";
  j["image"] = image;
  j["inodes"] = inodes;
  j["entries"] = entries;
  j["clean"] = problems.empty();
  j["problems"] = problems;
  j["warnings"] = warnings;
  return j;
}

void PrintJson(const json& j) {
  std::printf("%s\n", j.dump(2, ' ', false, json::error_handler_t::replace).c_str());
}

}  // namespace daxfs::tools
