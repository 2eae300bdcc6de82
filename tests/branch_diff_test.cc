// Differential test: thousands of random operations applied to a branch
// (through the library) and to a plain directory on tmpfs side by side; the
// whole trees (names, types, modes, owners, link counts, sizes, contents,
// symlink targets, device numbers, xattrs, hard-link structure, mtimes) are
// compared after every batch, before and after commits, with nested branches.
//
// DAXFS_DIFF_OPS (default 1500 per phase) and DAXFS_DIFF_SEED tune a run.
#include <dirent.h>
#include <fcntl.h>
#include <linux/fs.h>
#include <stdio.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <sys/xattr.h>
#include <unistd.h>

#include <algorithm>
#include <cstring>
#include <map>
#include <random>

#include "branch_test_util.h"
#include "daxfs/check.h"

namespace daxfs::testing {
namespace {

struct Entry {
  std::string path;  // relative, "" = root
  struct stat st;
};

std::vector<Entry> WalkDir(const std::string& root) {
  std::vector<Entry> out;
  std::vector<std::string> todo{""};
  while (!todo.empty()) {
    std::string rel = todo.back();
    todo.pop_back();
    struct stat st;
    if (lstat((root + "/" + rel).c_str(), &st) != 0) continue;
    out.push_back({rel, st});
    if (!S_ISDIR(st.st_mode)) continue;
    DIR* d = opendir((root + "/" + rel).c_str());
    if (!d) continue;
    while (dirent* de = readdir(d)) {
      std::string n = de->d_name;
      if (n == "." || n == "..") continue;
      todo.push_back(rel.empty() ? n : rel + "/" + n);
    }
    closedir(d);
  }
  std::sort(out.begin(), out.end(), [](const Entry& a, const Entry& b) { return a.path < b.path; });
  return out;
}

std::map<std::string, std::string> DiskXattrs(const std::string& path) {
  std::map<std::string, std::string> out;
  char names[8192];
  ssize_t n = llistxattr(path.c_str(), names, sizeof names);
  for (ssize_t p = 0; n > 0 && p < n;) {
    std::string name(names + p);
    p += static_cast<ssize_t>(name.size()) + 1;
    if (name.rfind("trusted.", 0) != 0 && name.rfind("user.", 0) != 0) continue;
    char v[70000];
    ssize_t vl = lgetxattr(path.c_str(), name.c_str(), v, sizeof v);
    if (vl >= 0) out[name] = std::string(v, static_cast<size_t>(vl));
  }
  return out;
}

std::string DiskContents(const std::string& path) {
  int fd = open(path.c_str(), O_RDONLY);
  std::string out;
  char buf[65536];
  ssize_t n;
  while ((n = read(fd, buf, sizeof buf)) > 0) out.append(buf, static_cast<size_t>(n));
  close(fd);
  return out;
}

// Compares the view with the directory; returns a description of the first
// differences (empty when equal).
std::string Compare(const FsView& v, const std::string& dir) {
  std::string diffs;
  auto diff = [&](const std::string& what) {
    if (diffs.size() < 4000) diffs += what + "\n";
  };
  std::map<Ino, ino_t> ino_map;
  std::map<ino_t, Ino> back_map;
  struct Item {
    Ino ino;
    std::string rel;
  };
  std::vector<Item> todo{{v.root(), ""}};
  while (!todo.empty()) {
    Item it = todo.back();
    todo.pop_back();
    const std::string disk = dir + "/" + it.rel;
    const std::string name = "/" + it.rel;
    struct stat st;
    if (lstat(disk.c_str(), &st) != 0) {
      diff(name + ": missing on disk");
      continue;
    }
    auto a = v.stat(it.ino);
    if (!a.ok()) {
      diff(name + ": stat: " + a.status().ToString());
      continue;
    }
    if (a->mode != st.st_mode) diff(name + ": mode " + std::to_string(a->mode) + " vs " + std::to_string(st.st_mode));
    if (a->uid != st.st_uid || a->gid != st.st_gid) diff(name + ": owner");
    if (a->nlink != st.st_nlink)
      diff(name + ": nlink " + std::to_string(a->nlink) + " vs " + std::to_string(st.st_nlink));
    if (std::llabs(a->mtime_sec - st.st_mtim.tv_sec) > 2)
      diff(name + ": mtime " + std::to_string(a->mtime_sec) + " vs " + std::to_string(st.st_mtim.tv_sec));
    if (!S_ISDIR(st.st_mode)) {
      auto [m, fresh] = ino_map.emplace(it.ino, st.st_ino);
      auto [bm, bfresh] = back_map.emplace(st.st_ino, it.ino);
      if (m->second != st.st_ino || bm->second != it.ino) diff(name + ": hard-link structure differs");
    }
    if (S_ISREG(st.st_mode)) {
      if (a->size != static_cast<uint64_t>(st.st_size))
        diff(name + ": size " + std::to_string(a->size) + " vs " + std::to_string(st.st_size));
      else if (ReadAll(v, it.ino) != DiskContents(disk))
        diff(name + ": contents differ");
    }
    if (S_ISLNK(st.st_mode)) {
      char t[4096];
      ssize_t n = readlink(disk.c_str(), t, sizeof t);
      auto bt = v.readlink(it.ino);
      if (!bt.ok() || *bt != std::string(t, static_cast<size_t>(std::max<ssize_t>(n, 0))))
        diff(name + ": symlink target");
    }
    if (S_ISCHR(st.st_mode) || S_ISBLK(st.st_mode)) {
      if (a->rdev_major != major(st.st_rdev) || a->rdev_minor != minor(st.st_rdev)) diff(name + ": rdev");
    }
    std::map<std::string, std::string> bx;
    Status xs = v.list_xattrs(it.ino, [&](std::string_view n, std::span<const std::byte> val) {
      bx[std::string(n)] = std::string(reinterpret_cast<const char*>(val.data()), val.size());
    });
    if (!xs.ok()) diff(name + ": xattrs: " + xs.ToString());
    if (bx != DiskXattrs(disk)) diff(name + ": xattrs differ");
    if (!S_ISDIR(st.st_mode)) continue;
    std::vector<std::string> disk_names;
    DIR* d = opendir(disk.c_str());
    while (dirent* de = readdir(d)) {
      std::string n = de->d_name;
      if (n != "." && n != "..") disk_names.push_back(n);
    }
    closedir(d);
    std::sort(disk_names.begin(), disk_names.end());
    std::vector<std::string> names;
    auto cur = v.opendir(it.ino);
    if (!cur.ok()) {
      diff(name + ": opendir: " + cur.status().ToString());
      continue;
    }
    for (;;) {
      auto e = (*cur)->next();
      if (!e.ok()) {
        diff(name + ": readdir: " + e.status().ToString());
        break;
      }
      if (!*e) break;
      names.push_back((*e)->name);
      auto l = v.lookup(it.ino, (*e)->name);
      if (!l.ok() || *l != (*e)->ino) diff(name + "/" + (*e)->name + ": lookup disagrees with readdir");
      todo.push_back({(*e)->ino, it.rel.empty() ? (*e)->name : it.rel + "/" + (*e)->name});
    }
    if (names != disk_names) {
      std::string a1, b1;
      for (auto& n : names) a1 += n + " ";
      for (auto& n : disk_names) b1 += n + " ";
      diff(name + ": entries [" + a1 + "] vs [" + b1 + "]");
    }
  }
  return diffs;
}

class Differ {
 public:
  Differ(std::shared_ptr<Branch> b, std::string dir, uint32_t seed)
      : b_(std::move(b)), dir_(std::move(dir)), rng_(seed) {}

  // One random operation on both sides; their outcomes must agree.
  void Step() {
    auto all = WalkDir(dir_);
    std::vector<const Entry*> dirs, files, nondirs;
    for (const auto& e : all) {
      if (S_ISDIR(e.st.st_mode)) dirs.push_back(&e);
      else nondirs.push_back(&e);
      if (S_ISREG(e.st.st_mode)) files.push_back(&e);
    }
    auto pick = [&](const std::vector<const Entry*>& v) -> const Entry* {
      return v.empty() ? nullptr : v[rng_() % v.size()];
    };
    auto any = [&]() -> const Entry* { return &all[rng_() % all.size()]; };
    static const char* kNames[] = {"a", "b", "c", "d", "e", "longer-name", "x.txt", "y"};
    auto name = [&]() { return std::string(kNames[rng_() % 8]); };
    auto disk = [&](const std::string& rel) { return dir_ + "/" + rel; };
    auto join = [](const std::string& d, const std::string& n) { return d.empty() ? n : d + "/" + n; };
    auto split = [](const std::string& rel) {
      const size_t s = rel.rfind('/');
      return s == std::string::npos ? std::make_pair(std::string(), rel)
                                    : std::make_pair(rel.substr(0, s), rel.substr(s + 1));
    };
    auto ino = [&](const std::string& rel) -> Ino {
      auto r = b_->resolve("/" + rel);
      EXPECT_TRUE(r.ok()) << rel << ": " << r.status().ToString();
      return r.ok() ? *r : 0;
    };
    auto sys = [](int rc) { return rc == 0 ? 0 : errno; };
    int want = 0;
    Status got;
    std::string what;
    const int op = static_cast<int>(rng_() % 20);
    switch (op) {
      case 0: case 1: {  // create
        const Entry* d = pick(dirs);
        std::string n = name();
        what = "create " + join(d->path, n);
        int fd = open(disk(join(d->path, n)).c_str(), O_CREAT | O_EXCL | O_WRONLY, 0640);
        want = fd >= 0 ? 0 : errno;
        if (fd >= 0) close(fd);
        got = b_->create(ino(d->path), n, 0640).status();
        break;
      }
      case 2: {  // mkdir
        const Entry* d = pick(dirs);
        std::string n = name();
        what = "mkdir " + join(d->path, n);
        want = sys(::mkdir(disk(join(d->path, n)).c_str(), 0751));
        got = b_->mkdir(ino(d->path), n, 0751).status();
        break;
      }
      case 3: {  // symlink / mknod
        const Entry* d = pick(dirs);
        std::string n = name();
        const int kind = static_cast<int>(rng_() % 3);
        what = "special " + std::to_string(kind) + " " + join(d->path, n);
        if (kind == 0) {
          want = sys(::symlink("target/of/link", disk(join(d->path, n)).c_str()));
          got = b_->symlink(ino(d->path), n, "target/of/link").status();
        } else if (kind == 1) {
          want = sys(::mknod(disk(join(d->path, n)).c_str(), S_IFIFO | 0600, 0));
          got = b_->mknod(ino(d->path), n, S_IFIFO | 0600, 0, 0).status();
        } else {
          want = sys(::mknod(disk(join(d->path, n)).c_str(), S_IFCHR | 0600, makedev(1, 3)));
          got = b_->mknod(ino(d->path), n, S_IFCHR | 0600, 1, 3).status();
        }
        break;
      }
      case 4: {  // link
        const Entry* f = pick(nondirs);
        if (!f) return;
        const Entry* d = pick(dirs);
        std::string n = name();
        what = "link " + f->path + " " + join(d->path, n);
        want = sys(::link(disk(f->path).c_str(), disk(join(d->path, n)).c_str()));
        got = b_->link(ino(f->path), ino(d->path), n);
        break;
      }
      case 5: {  // unlink (anything: directories must fail with EISDIR)
        const Entry* e = any();
        if (e->path.empty()) return;
        auto [p, n] = split(e->path);
        what = "unlink " + e->path;
        want = sys(::unlink(disk(e->path).c_str()));
        got = b_->unlink(ino(p), n);
        break;
      }
      case 6: {  // rmdir (anything)
        const Entry* e = any();
        if (e->path.empty()) return;
        auto [p, n] = split(e->path);
        what = "rmdir " + e->path;
        want = sys(::rmdir(disk(e->path).c_str()));
        got = b_->rmdir(ino(p), n);
        break;
      }
      case 7: case 8: {  // rename, with flags
        const Entry* s = any();
        if (s->path.empty()) return;
        const Entry* d = pick(dirs);
        std::string n = rng_() % 3 == 0 && !nondirs.empty() ? split(pick(nondirs)->path).second : name();
        static const unsigned kFlags[] = {0, 0, RENAME_NOREPLACE, RENAME_EXCHANGE};
        const unsigned flags = kFlags[rng_() % 4];
        auto [sp, sn] = split(s->path);
        what = "rename " + s->path + " " + join(d->path, n) + " flags " + std::to_string(flags);
        want = sys(renameat2(AT_FDCWD, disk(s->path).c_str(), AT_FDCWD, disk(join(d->path, n)).c_str(), flags));
        got = b_->rename(ino(sp), sn, ino(d->path), n, flags);
        break;
      }
      case 9: case 10: case 11: case 12: {  // write at a random offset
        const Entry* f = pick(files);
        if (!f) return;
        const uint64_t off = rng_() % 3 == 0 ? rng_() % 40000 : rng_() % (f->st.st_size + 1);
        const size_t len = rng_() % 3 == 0 ? rng_() % 20000 : rng_() % 300;
        std::string data(len, '\0');
        for (auto& c : data) c = static_cast<char>('A' + rng_() % 26);
        what = "write " + f->path + " @" + std::to_string(off) + " +" + std::to_string(len);
        int fd = open(disk(f->path).c_str(), O_WRONLY);
        want = fd >= 0 && pwrite(fd, data.data(), len, static_cast<off_t>(off)) == static_cast<ssize_t>(len) ? 0 : errno;
        if (fd >= 0) close(fd);
        got = b_->write(ino(f->path), off, B(data));
        break;
      }
      case 13: case 14: {  // truncate (anything: directories fail)
        const Entry* e = rng_() % 4 == 0 ? any() : pick(files);
        if (!e || S_ISLNK(e->st.st_mode) || S_ISCHR(e->st.st_mode) || S_ISFIFO(e->st.st_mode)) return;
        const uint64_t size = rng_() % 2 ? rng_() % 9000 : rng_() % (e->st.st_size + 1);
        what = "truncate " + e->path + " " + std::to_string(size);
        want = sys(::truncate(disk(e->path).c_str(), static_cast<off_t>(size)));
        got = b_->truncate(ino(e->path), size);
        break;
      }
      case 15: {  // chmod / chown
        const Entry* e = any();
        if (S_ISLNK(e->st.st_mode)) return;
        if (rng_() % 2) {
          const uint32_t mode = rng_() % 07777;
          what = "chmod " + e->path;
          want = sys(::chmod(disk(e->path).c_str(), mode));
          got = b_->chmod(ino(e->path), mode);
        } else {
          const uint32_t uid = rng_() % 4, gid = rng_() % 4;
          what = "chown " + e->path;
          want = sys(::lchown(disk(e->path).c_str(), uid, gid));
          got = b_->chown(ino(e->path), uid, gid);
          // chown clears set-id bits on Linux: do the same through chmod.
          struct stat st;
          lstat(disk(e->path).c_str(), &st);
          if (got.ok() && (st.st_mode & 07777) != (e->st.st_mode & 07777))
            got = b_->chmod(ino(e->path), st.st_mode & 07777);
        }
        break;
      }
      case 16: {  // utimens
        const Entry* e = any();
        timespec ts[2] = {{static_cast<time_t>(1000000000 + rng_() % 100000), 7},
                          {static_cast<time_t>(1000000000 + rng_() % 100000), 9}};
        what = "utimens " + e->path;
        want = sys(utimensat(AT_FDCWD, disk(e->path).c_str(), ts, AT_SYMLINK_NOFOLLOW));
        got = b_->utimens(ino(e->path), ts);
        break;
      }
      case 17: case 18: {  // setxattr
        const Entry* e = any();
        if (S_ISLNK(e->st.st_mode)) return;  // trusted.* on symlinks: fine, but keep it simple
        std::string k = std::string("trusted.") + kNames[rng_() % 3];
        std::string val(rng_() % 100, static_cast<char>('a' + rng_() % 26));
        static const int kF[] = {0, 0, XATTR_CREATE, XATTR_REPLACE};
        const int flags = kF[rng_() % 4];
        what = "setxattr " + e->path + " " + k;
        want = sys(lsetxattr(disk(e->path).c_str(), k.c_str(), val.data(), val.size(), flags));
        got = b_->setxattr(ino(e->path), k, B(val), static_cast<uint32_t>(flags));
        break;
      }
      case 19: {  // removexattr
        const Entry* e = any();
        std::string k = std::string("trusted.") + kNames[rng_() % 3];
        what = "removexattr " + e->path + " " + k;
        want = sys(lremovexattr(disk(e->path).c_str(), k.c_str()));
        got = b_->removexattr(ino(e->path), k);
        break;
      }
    }
    ++ops_;
    if (getenv("DAXFS_DIFF_TRACE")) fprintf(stderr, "%d %s -> %d/%d\n", ops_, what.c_str(), want, got.errno_value());
    if (want != got.errno_value()) {
      ADD_FAILURE() << "op " << ops_ << ": " << what << ": tmpfs errno " << want << " ("
                    << std::strerror(want) << "), branch: " << got.ToString();
      ++mismatches_;
    }
  }

  int mismatches() const { return mismatches_; }
  void set_branch(std::shared_ptr<Branch> b) { b_ = std::move(b); }
  void set_dir(std::string d) { dir_ = std::move(d); }

 private:
  std::shared_ptr<Branch> b_;
  std::string dir_;
  std::mt19937 rng_;
  int ops_ = 0;
  int mismatches_ = 0;
};

int EnvInt(const char* name, int def) {
  const char* v = getenv(name);
  return v ? atoi(v) : def;
}

TEST(BranchDiff, RandomOperationsMatchTmpfsAcrossNestedBranchesAndCommits) {
  if (!IsRoot()) GTEST_SKIP() << "needs root (chown, device nodes, trusted.* xattrs)";
  const int ops = EnvInt("DAXFS_DIFF_OPS", 1500);
  const uint32_t seed = static_cast<uint32_t>(EnvInt("DAXFS_DIFF_SEED", 12345));
  constexpr int kBatch = 100;
  TempDir work("/dev/shm");
  const std::string src = work / "src";
  ::mkdir(src.c_str(), 0755);
  WriteFile(src + "/file", std::string(10000, 'q'));
  WriteFile(src + "/small", "small");
  ::mkdir((src + "/sub").c_str(), 0755);
  WriteFile(src + "/sub/deep", std::string(5000, 'd'));
  ASSERT_EQ(::link((src + "/small").c_str(), (src + "/sub/hard").c_str()), 0);
  ASSERT_EQ(lsetxattr((src + "/small").c_str(), "trusted.a", "v", 1, 0), 0);
  BranchRegion region(src, 512ull << 20);
  auto& store = *region.store();
  auto cp = [&](const std::string& from, const std::string& to) {
    ASSERT_EQ(RunShell("cp -a " + from + " " + to), 0);
  };
  auto check = [&](const FsView& v, const std::string& dir, const std::string& when) {
    std::string d = Compare(v, dir);
    EXPECT_EQ(d, "") << when;
    // The tree checks (daxfs branch check) find nothing either.
    CheckOptions co;
    std::string problems;
    co.report = [&](const std::string& m) { problems += m + "\n"; };
    EXPECT_EQ(CheckView(v, co).problems, 0u) << when << "\n" << problems;
    return d.empty() && problems.empty();
  };
  auto run = [&](Differ& df, const std::shared_ptr<Branch>& b, const std::string& dir, int n,
                 const std::string& label) {
    for (int i = 0; i < n; ++i) {
      df.Step();
      if ((i + 1) % kBatch == 0 && !check(*b, dir, label + " after " + std::to_string(i + 1) + " ops")) return false;
      if (df.mismatches() > 5) return false;
    }
    return true;
  };

  // Round 1: branch "a" of main.
  const std::string ta = work / "ta";
  cp(src, ta);
  ASSERT_TRUE(store.Create("a").ok());
  auto a = *store.OpenBranch("a", true);
  Differ da(a, ta, seed);
  ASSERT_TRUE(run(da, a, ta, ops, "branch a"));
  // Nested: "n" of "a" works on a copy; "a" must not change meanwhile.
  const std::string tn = work / "tn";
  cp(ta, tn);
  ASSERT_TRUE(store.Create("n", "a").ok());
  auto n = *store.OpenBranch("n", true);
  Differ dn(n, tn, seed + 1);
  ASSERT_TRUE(run(dn, n, tn, ops, "nested n"));
  ASSERT_TRUE(check(*a, ta, "a while n was written"));
  // Commit n into a: a now equals tn.
  n.reset();
  ASSERT_DAXFS_OK(store.Commit("n"));
  ASSERT_TRUE(check(*a, tn, "a after committing n"));
  da.set_dir(tn);
  ASSERT_TRUE(run(da, a, tn, ops / 2, "a after the merge"));
  a.reset();
  // A sibling made before the commit keeps main's old state.
  ASSERT_TRUE(store.Create("old").ok());
  ASSERT_DAXFS_OK(store.Commit("a"));
  auto main = *store.OpenBranch("main");
  ASSERT_TRUE(check(*main, tn, "main after committing a"));
  ASSERT_TRUE(check(**store.OpenBranch("old"), src, "sibling made before the commit"));
  // Round 2: a fresh branch of main, seen by a second opener of the region.
  ASSERT_TRUE(store.Create("b").ok());
  auto b = *store.OpenBranch("b", true);
  Differ db(b, tn, seed + 2);
  ASSERT_TRUE(run(db, b, tn, ops / 2, "branch b"));
  auto reopened = BranchStore::Open(region.spec());
  ASSERT_TRUE(reopened.ok());
  ASSERT_TRUE(check(**(*reopened)->OpenBranch("b"), tn, "b replayed by another opener"));
  b.reset();
  ASSERT_DAXFS_OK(store.Commit("b"));
  ASSERT_TRUE(check(*main, tn, "main after committing b"));
  // Export of main equals the tree too.
  auto exported = ExportView(*main, work / "main.img");
  ASSERT_TRUE(exported.ok()) << exported.status().ToString();
  auto img = Image::Open(work / "main.img");
  ASSERT_TRUE(img.ok());
  std::string d = Compare(*MakeImageView(*img), tn);
  // Images keep only mtime; atime/ctime are not compared anyway.
  EXPECT_EQ(d, "") << "exported image";
  EXPECT_EQ(store.Check([](const std::string& m) { ADD_FAILURE() << m; }), 0u);
}

}  // namespace
}  // namespace daxfs::testing
