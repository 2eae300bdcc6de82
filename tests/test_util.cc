#include "test_util.h"

#include <dirent.h>
#include <fcntl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <sys/un.h>
#include <sys/xattr.h>
#include <unistd.h>
#define XXH_STATIC_LINKING_ONLY
#include <xxhash.h>

#include <algorithm>
#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <map>
#include <sstream>

namespace daxfs::testing {

TempDir::TempDir(const std::string& base) {
  std::string tmpl = base + "/daxfs-test.XXXXXX";
  if (mkdtemp(tmpl.data()) == nullptr) std::abort();
  path_ = tmpl;
}
TempDir::~TempDir() { RemoveTree(path_); }

void RemoveTree(const std::string& path) {
  RunShell("chmod -R u+rwx '" + path + "' 2>/dev/null; rm -rf '" + path + "'");
}

int RunShell(const std::string& cmd) {
  int rc = std::system(cmd.c_str());
  return WIFEXITED(rc) ? WEXITSTATUS(rc) : 128;
}

bool IsRoot() { return geteuid() == 0; }

void WriteFile(const std::string& path, const std::string& contents, mode_t mode) {
  int fd = open(path.c_str(), O_WRONLY | O_CREAT | O_TRUNC, mode);
  ASSERT_GE(fd, 0) << path << ": " << std::strerror(errno);
  ASSERT_EQ(write(fd, contents.data(), contents.size()), static_cast<ssize_t>(contents.size()));
  close(fd);
  chmod(path.c_str(), mode);
}

std::string ReadFile(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

std::vector<std::byte> ReadBytes(const std::string& path) {
  std::string s = ReadFile(path);
  std::vector<std::byte> v(s.size());
  if (!s.empty()) std::memcpy(v.data(), s.data(), s.size());
  return v;
}

std::vector<CorpusFile> ReadCorpus(const std::string& dir) {
  std::vector<CorpusFile> files;
  DIR* d = opendir(dir.c_str());
  if (d == nullptr) {
    ADD_FAILURE() << dir << ": " << std::strerror(errno);
    return files;
  }
  while (dirent* de = readdir(d)) {
    if (de->d_name[0] == '.') continue;
    files.push_back({de->d_name, ReadBytes(dir + "/" + de->d_name)});
  }
  closedir(d);
  std::sort(files.begin(), files.end(), [](const auto& a, const auto& b) { return a.name < b.name; });
  return files;
}

std::shared_ptr<const Image> OpenOrDie(const std::string& path) {
  auto img = Image::Open(path);
  EXPECT_TRUE(img.ok()) << img.status().ToString();
  return img.ok() ? *img : nullptr;
}

static void SetTime(const std::string& path, int64_t sec, long nsec) {
  timespec ts[2] = {{sec, nsec}, {sec, nsec}};
  utimensat(AT_FDCWD, path.c_str(), ts, AT_SYMLINK_NOFOLLOW);
}

void MakeRichTree(const std::string& root) {
  auto p = [&](const std::string& rel) { return root + "/" + rel; };
  mkdir(p("empty_dir").c_str(), 0755);
  mkdir(p("sub").c_str(), 0750);
  WriteFile(p("empty_file"), "");
  WriteFile(p("hello.txt"), "hello, daxfs\n");
  WriteFile(p("exec.sh"), "#!/bin/sh\necho hi\n", 0755);
  WriteFile(p("setuid"), "s", 04755);
  WriteFile(p("private"), "secret", 0600);
  WriteFile(p("name with spaces"), "spaces");
  WriteFile(p("-leading-dash"), "dash");
  WriteFile(p("ünïcødé"), "utf8");
  WriteFile(p(std::string(255, 'L')), "long name");
  std::string big(5 * 1024 * 1024 + 123, '\0');
  for (size_t i = 0; i < big.size(); ++i) big[i] = static_cast<char>((i * 2654435761u) >> 13);
  WriteFile(p("sub/big.bin"), big);
  WriteFile(p("sub/page.bin"), std::string(4096, 'P'));
  // Sparse: 64 MiB with data at 10 MiB and at the end.
  {
    int fd = open(p("sparse.img").c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
    ASSERT_GE(fd, 0);
    ASSERT_EQ(pwrite(fd, "middle", 6, 10 << 20), 6);
    ASSERT_EQ(ftruncate(fd, 64 << 20), 0);
    ASSERT_EQ(pwrite(fd, "end", 3, (64 << 20) - 3), 3);
    close(fd);
  }
  // Hard links, also across directories.
  WriteFile(p("linked"), "one inode, three names");
  ASSERT_EQ(link(p("linked").c_str(), p("linked2").c_str()), 0);
  ASSERT_EQ(link(p("linked").c_str(), p("sub/linked3").c_str()), 0);
  // Symlinks.
  ASSERT_EQ(symlink("hello.txt", p("rel_link").c_str()), 0);
  ASSERT_EQ(symlink("/etc/hostname", p("abs_link").c_str()), 0);
  ASSERT_EQ(symlink("does/not/exist", p("dangling").c_str()), 0);
  ASSERT_EQ(symlink(std::string(4095, 't').c_str(), p("long_target").c_str()), 0);
  ASSERT_EQ(symlink("..", p("sub/up").c_str()), 0);
  // Deep nesting.
  std::string deep = p("deep");
  for (int i = 0; i < 64; ++i) {
    mkdir(deep.c_str(), 0755);
    deep += "/d" + std::to_string(i);
  }
  mkdir(deep.c_str(), 0755);
  WriteFile(deep + "/bottom", "bottom of the tree");
  // A directory past upstream's 241-entry stride edge.
  mkdir(p("many").c_str(), 0755);
  for (int i = 0; i < 300; ++i) WriteFile(p("many/f" + std::to_string(i)), std::to_string(i));
  // Special files.
  ASSERT_EQ(mkfifo(p("fifo").c_str(), 0640), 0);
  {
    int s = socket(AF_UNIX, SOCK_STREAM, 0);
    sockaddr_un addr{};
    addr.sun_family = AF_UNIX;
    std::string sp = p("socket");
    if (sp.size() < sizeof addr.sun_path) {
      std::memcpy(addr.sun_path, sp.c_str(), sp.size() + 1);
      ASSERT_EQ(bind(s, reinterpret_cast<sockaddr*>(&addr), sizeof addr), 0);
    }
    close(s);
  }
  // xattrs (user.* works unprivileged on most filesystems).
  setxattr(p("hello.txt").c_str(), "user.comment", "greeting", 8, 0);
  setxattr(p("hello.txt").c_str(), "user.empty", "", 0, 0);
  setxattr(p("sub").c_str(), "user.dirattr", "d", 1, 0);
  std::string bin(300, '\0');
  for (size_t i = 0; i < bin.size(); ++i) bin[i] = static_cast<char>(i);
  setxattr(p("exec.sh").c_str(), "user.binary", bin.data(), bin.size(), 0);
  setxattr(p("linked").c_str(), "user.comment", "greeting", 8, 0);  // shared record
  if (IsRoot()) {
    ASSERT_EQ(mknod(p("null").c_str(), S_IFCHR | 0666, makedev(1, 3)), 0);
    ASSERT_EQ(mknod(p("loop").c_str(), S_IFBLK | 0660, makedev(7, 0)), 0);
    ASSERT_EQ(mknod(p("bigdev").c_str(), S_IFCHR | 0600, makedev(259, 70000)), 0);
    ASSERT_EQ(chown(p("private").c_str(), 1234, 5678), 0);
    ASSERT_EQ(lchown(p("rel_link").c_str(), 42, 43), 0);
    const unsigned char cap[] = {1, 0, 0, 2, 0, 0x20, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0};
    setxattr(p("exec.sh").c_str(), "security.capability", cap, sizeof cap, 0);
    setxattr(p("sub").c_str(), "trusted.overlay.opaque", "y", 1, 0);
  }
  SetTime(p("hello.txt"), 1700000000, 123456789);
  SetTime(p("private"), -86400, 5);  // before the epoch
  SetTime(p("rel_link"), 1600000000, 999999999);
  SetTime(p("empty_dir"), 1000000000, 1);
}

namespace {

struct EntryInfo {
  uint32_t mode = 0;
  uint32_t uid = 0, gid = 0;
  uint64_t size = 0;
  int64_t mtime_sec = 0;
  uint32_t mtime_nsec = 0;
  uint32_t rdev_major = 0, rdev_minor = 0;
  uint64_t content_hash = 0;
  std::string target;
  std::map<std::string, std::string> xattrs;
  std::string link_group;  // first path (in sorted order) with the same inode
  uint32_t nlink = 0;
};

using Snapshot = std::map<std::string, EntryInfo>;

void SnapshotDir(const std::string& root, bool xattrs, Snapshot* out) {
  std::map<std::pair<dev_t, ino_t>, std::string> groups;
  std::vector<std::string> todo{""};
  while (!todo.empty()) {
    std::string rel = todo.back();
    todo.pop_back();
    const std::string full = rel.empty() ? root : root + "/" + rel;
    DIR* d = opendir(full.c_str());
    ASSERT_NE(d, nullptr) << full;
    std::vector<std::string> names;
    while (dirent* de = readdir(d)) {
      std::string n = de->d_name;
      if (n != "." && n != "..") names.push_back(n);
    }
    closedir(d);
    std::sort(names.begin(), names.end());
    for (const auto& n : names) {
      const std::string crel = rel.empty() ? n : rel + "/" + n;
      const std::string cfull = root + "/" + crel;
      struct stat st;
      ASSERT_EQ(lstat(cfull.c_str(), &st), 0) << cfull;
      EntryInfo e;
      e.mode = st.st_mode;
      e.uid = st.st_uid;
      e.gid = st.st_gid;
      e.mtime_sec = st.st_mtim.tv_sec;
      e.mtime_nsec = static_cast<uint32_t>(st.st_mtim.tv_nsec);
      e.nlink = static_cast<uint32_t>(st.st_nlink);
      if (S_ISREG(st.st_mode)) {
        e.size = static_cast<uint64_t>(st.st_size);
        auto bytes = ReadBytes(cfull);
        ASSERT_EQ(bytes.size(), e.size) << cfull;
        e.content_hash = XXH3_64bits(bytes.data(), bytes.size());
      } else if (S_ISLNK(st.st_mode)) {
        char buf[8192];
        ssize_t k = readlink(cfull.c_str(), buf, sizeof buf);
        e.target.assign(buf, static_cast<size_t>(k));
        e.size = e.target.size();
      } else if (S_ISCHR(st.st_mode) || S_ISBLK(st.st_mode)) {
        e.rdev_major = major(st.st_rdev);
        e.rdev_minor = minor(st.st_rdev);
      }
      if (!S_ISDIR(st.st_mode)) {
        auto [it, fresh] = groups.emplace(std::make_pair(st.st_dev, st.st_ino), crel);
        e.link_group = it->second;
      }
      if (xattrs) {
        char list[65536];
        ssize_t k = llistxattr(cfull.c_str(), list, sizeof list);
        for (ssize_t pos = 0; pos < k;) {
          std::string xn(list + pos);
          pos += static_cast<ssize_t>(xn.size()) + 1;
          char val[65536];
          ssize_t v = lgetxattr(cfull.c_str(), xn.c_str(), val, sizeof val);
          if (v >= 0) e.xattrs[xn] = std::string(val, static_cast<size_t>(v));
        }
      }
      (*out)[crel] = e;
      if (S_ISDIR(st.st_mode)) todo.push_back(crel);
    }
  }
  // Link counts as seen inside this tree (links from outside do not count).
  std::map<std::string, uint32_t> group_size;
  for (const auto& [path, e] : *out)
    if (!e.link_group.empty()) ++group_size[e.link_group];
  for (auto& [path, e] : *out)
    if (!e.link_group.empty()) e.nlink = group_size[e.link_group];
}

void SnapshotImage(const Image& image, bool xattrs, Snapshot* out) {
  std::map<Ino, std::string> groups;
  std::vector<std::pair<Ino, std::string>> todo{{image.root(), ""}};
  while (!todo.empty()) {
    auto [dir, rel] = todo.back();
    todo.pop_back();
    auto d = image.opendir(dir);
    ASSERT_TRUE(d.ok()) << rel << ": " << d.status().ToString();
    std::vector<std::pair<std::string, Ino>> names;
    for (size_t i = 0; i < d->size(); ++i) {
      auto ent = d->entry(i);
      ASSERT_TRUE(ent.ok()) << ent.status().ToString();
      names.emplace_back(std::string(ent->name), ent->ino);
      // Every listed name must be found by lookup too.
      auto found = image.lookup(dir, ent->name);
      ASSERT_TRUE(found.ok()) << rel << "/" << ent->name << ": " << found.status().ToString();
      EXPECT_EQ(*found, ent->ino);
    }
    std::sort(names.begin(), names.end());
    for (const auto& [n, ino] : names) {
      const std::string crel = rel.empty() ? n : rel + "/" + n;
      auto a = image.stat(ino);
      ASSERT_TRUE(a.ok()) << crel << ": " << a.status().ToString();
      EntryInfo e;
      e.mode = a->mode;
      e.uid = a->uid;
      e.gid = a->gid;
      e.mtime_sec = a->mtime_sec;
      e.mtime_nsec = a->mtime_nsec;
      e.nlink = a->nlink;
      e.rdev_major = a->rdev_major;
      e.rdev_minor = a->rdev_minor;
      if (S_ISREG(a->mode)) {
        e.size = a->size;
        auto data = image.contents(ino);
        ASSERT_TRUE(data.ok()) << crel;
        ASSERT_EQ(data->size(), a->size);
        e.content_hash = XXH3_64bits(data->data(), data->size());
      } else if (S_ISLNK(a->mode)) {
        auto t = image.readlink(ino);
        ASSERT_TRUE(t.ok()) << crel;
        e.target = std::string(*t);
        e.size = a->size;
      }
      if (!S_ISDIR(a->mode)) e.link_group = groups.emplace(ino, crel).first->second;
      if (xattrs) {
        ASSERT_DAXFS_OK(image.list_xattrs(ino, [&](std::string_view k, std::span<const std::byte> v) {
          e.xattrs[std::string(k)] = std::string(reinterpret_cast<const char*>(v.data()), v.size());
        }));
      }
      (*out)[crel] = e;
      if (S_ISDIR(a->mode)) {
        auto parent = image.lookup(ino, "..");
        ASSERT_TRUE(parent.ok());
        EXPECT_EQ(*parent, dir) << crel << "/..";
        todo.emplace_back(ino, crel);
      }
    }
  }
}

void CompareSnapshots(const Snapshot& want, const Snapshot& got, bool mtime) {
  for (const auto& [path, w] : want) {
    auto it = got.find(path);
    if (it == got.end()) {
      ADD_FAILURE() << path << ": missing";
      continue;
    }
    const EntryInfo& g = it->second;
    EXPECT_EQ(g.mode, w.mode) << path;
    EXPECT_EQ(g.uid, w.uid) << path;
    EXPECT_EQ(g.gid, w.gid) << path;
    if (!S_ISDIR(w.mode)) {
      EXPECT_EQ(g.size, w.size) << path;
    }
    if (mtime) {
      EXPECT_EQ(g.mtime_sec, w.mtime_sec) << path;
      EXPECT_EQ(g.mtime_nsec, w.mtime_nsec) << path;
    }
    EXPECT_EQ(g.rdev_major, w.rdev_major) << path;
    EXPECT_EQ(g.rdev_minor, w.rdev_minor) << path;
    EXPECT_EQ(g.content_hash, w.content_hash) << path;
    EXPECT_EQ(g.target, w.target) << path;
    EXPECT_EQ(g.xattrs, w.xattrs) << path;
    EXPECT_EQ(g.link_group, w.link_group) << path;
    EXPECT_EQ(g.nlink, w.nlink) << path;
  }
  for (const auto& [path, g] : got)
    if (!want.count(path)) ADD_FAILURE() << path << ": unexpected extra entry";
}

}  // namespace

void ExpectImageMatchesDirectory(const Image& image, const std::string& source_dir,
                                 bool compare_xattrs, bool compare_mtime) {
  Snapshot want, got;
  SnapshotDir(source_dir, compare_xattrs, &want);
  SnapshotImage(image, compare_xattrs, &got);
  CompareSnapshots(want, got, compare_mtime);
}

void ExpectDirectoriesMatch(const std::string& a, const std::string& b) {
  Snapshot sa, sb;
  SnapshotDir(a, true, &sa);
  SnapshotDir(b, true, &sb);
  CompareSnapshots(sa, sb, true);
}

}  // namespace daxfs::testing
