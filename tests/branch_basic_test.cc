// Branches through the library: upstream's scenarios (main read-only,
// branch writable, isolation, nested branches, abort, commit, siblings),
// every POSIX operation, the sibling rule with its conflict list, leases,
// ENOSPC, export and the region's compatibility with Image::Open.
#include <fcntl.h>
#include <linux/fs.h>
#include <signal.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <sys/wait.h>
#include <sys/xattr.h>

#include <cstring>

#include "branch_test_util.h"
#include "daxfs/check.h"
#include "daxfs/extract.h"

namespace daxfs::testing {
namespace {

class BranchTest : public ::testing::Test {
 protected:
  void SetUp() override {
    WriteFile(src_ / "a.txt", "alpha");
    WriteFile(src_ / "b.txt", "bravo");
    mkdir((src_ / "dir").c_str(), 0755);
    WriteFile(src_ / "dir/inner", "inner");
    mkdir((src_ / "empty").c_str(), 0755);
    std::string big(2 << 20, '\0');
    for (size_t i = 0; i < big.size(); ++i) big[i] = static_cast<char>('a' + i % 26);
    WriteFile(src_ / "big", big);
    big_ = big;
    region_ = std::make_unique<BranchRegion>(src_.path());
    ASSERT_TRUE(region_->store());
  }
  BranchStore& store() { return *region_->store(); }
  std::shared_ptr<Branch> Open(const std::string& name, bool write) {
    auto b = store().OpenBranch(name, write);
    EXPECT_TRUE(b.ok()) << b.status().ToString();
    return b.ok() ? *b : nullptr;
  }
  Ino Path(const FsView& v, const std::string& p) {
    auto i = v.resolve(p);
    EXPECT_TRUE(i.ok()) << p << ": " << i.status().ToString();
    return i.ok() ? *i : 0;
  }

  TempDir src_;
  std::string big_;
  std::unique_ptr<BranchRegion> region_;
};

// Writable main: writes go straight into main's log (no lease, any number
// of writers, in turn with commits); a branch keeps the snapshot it was
// made from, one made after a write sees it; a read-only view stays so.
TEST_F(BranchTest, MainIsWritableDirectlyAndTheRegionOpensAsTheBaseImage) {
  auto main = Open("main", false);
  EXPECT_EQ(ReadPath(*main, "/a.txt"), "alpha");
  EXPECT_EQ(main->create(main->root(), "x", 0644).status().errno_value(), EROFS);
  ASSERT_TRUE(store().Create("before").ok());
  auto w = Open("main", true);
  auto w2 = Open("main", true);  // a second writer of main: no lease to refuse it
  ASSERT_TRUE(w && w2);
  Ino seed = *w->create(w->root(), "seed", 0644);
  ASSERT_TRUE(w->write(seed, 0, B("seeded")).ok());
  ASSERT_TRUE(w2->write(*w2->resolve("/seed"), 6, B("+2")).ok());
  EXPECT_EQ(ReadPath(*main, "/seed"), "seeded+2");
  ASSERT_TRUE(store().Create("after").ok());
  EXPECT_EQ(ReadPath(*Open("after", false), "/seed"), "seeded+2");
  auto before = Open("before", true);
  EXPECT_FALSE(before->resolve("/seed").ok());
  // A commit into main while its writers stay open, then more writes.
  Ino mine = *before->create(before->root(), "mine", 0644);
  ASSERT_TRUE(before->write(mine, 0, B("b")).ok());
  before.reset();
  ASSERT_TRUE(store().Commit("before").ok());
  ASSERT_TRUE(w->unlink(w->root(), "a.txt").ok());
  EXPECT_EQ(ReadPath(*main, "/mine"), "b");
  EXPECT_FALSE(main->resolve("/a.txt").ok());
  // A sibling that touched what main's own writes changed conflicts.
  auto after = Open("after", true);
  ASSERT_TRUE(after->write(*after->resolve("/a.txt"), 0, B("edit")).ok());
  after.reset();
  EXPECT_EQ(store().Commit("after").errno_value(), ESTALE);
  EXPECT_EQ(store().Check(nullptr), 0u);
  w.reset();
  w2.reset();
  main.reset();
  // A plain reader opens the region as the image it was made from.
  auto img = Image::Open(region_->spec());
  ASSERT_TRUE(img.ok()) << img.status().ToString();
  EXPECT_TRUE((*img)->info().features_incompat & format::kFeatureBranchRegion);
  auto ino = (*img)->resolve("/dir/inner");
  ASSERT_TRUE(ino.ok());
  CheckOptions co;
  std::string problems;
  co.report = [&](const std::string& m) { problems += m + "\n"; };
  EXPECT_EQ(CheckImage(**img, co).problems, 0u) << problems;
}

TEST_F(BranchTest, IsolationCommitAndStableInodes) {
  ASSERT_TRUE(store().Create("b1").ok());
  auto b1 = Open("b1", true);
  auto main = Open("main", false);
  auto f = b1->create(b1->root(), "new.txt", 0600);
  ASSERT_TRUE(f.ok()) << f.status().ToString();
  ASSERT_DAXFS_OK(b1->write(*f, 0, B("hello")));
  ASSERT_DAXFS_OK(b1->write(Path(*b1, "/a.txt"), 0, B("ALPHA!")));
  EXPECT_EQ(ReadPath(*b1, "/new.txt"), "hello");
  EXPECT_EQ(ReadPath(*b1, "/a.txt"), "ALPHA!");
  // main and a sibling see nothing of it.
  EXPECT_TRUE(main->resolve("/new.txt").status().IsNotFound());
  EXPECT_EQ(ReadPath(*main, "/a.txt"), "alpha");
  ASSERT_TRUE(store().Create("sib").ok());
  auto sib = Open("sib", false);
  EXPECT_TRUE(sib->resolve("/new.txt").status().IsNotFound());
  // Commit: main (already open) sees it all, with the same inode number.
  ASSERT_DAXFS_OK(store().Commit("b1"));
  EXPECT_EQ(ReadPath(*main, "/new.txt"), "hello");
  EXPECT_EQ(ReadPath(*main, "/a.txt"), "ALPHA!");
  EXPECT_EQ(Path(*main, "/new.txt"), *f);
  auto a = main->stat(*f);
  ASSERT_TRUE(a.ok());
  EXPECT_EQ(a->mode, S_IFREG | 0600u);
  // The committed branch's handle is stale now; the sibling kept its snapshot.
  EXPECT_EQ(b1->stat(*f).status().errno_value(), ESTALE);
  EXPECT_TRUE(sib->resolve("/new.txt").status().IsNotFound());
  EXPECT_EQ(store().Check(nullptr), 0u);
}

TEST_F(BranchTest, NestedBranchesAndAbort) {
  ASSERT_TRUE(store().Create("p").ok());
  auto p = Open("p", true);
  ASSERT_TRUE(p->create(p->root(), "from-p", 0644).ok());
  ASSERT_TRUE(store().Create("c", "p").ok());
  // The child sees the parent as of its creation only.
  ASSERT_TRUE(p->create(p->root(), "later-in-p", 0644).ok());
  auto c = Open("c", true);
  EXPECT_TRUE(c->resolve("/from-p").ok());
  EXPECT_TRUE(c->resolve("/later-in-p").status().IsNotFound());
  ASSERT_TRUE(c->mkdir(c->root(), "from-c", 0755).ok());
  // A branch with children can be neither committed nor aborted.
  EXPECT_EQ(store().Commit("p").errno_value(), EBUSY);
  EXPECT_EQ(store().Abort("p").errno_value(), EBUSY);
  ASSERT_TRUE(store().Create("g", "c").ok());
  EXPECT_EQ(store().Commit("c").errno_value(), EBUSY);
  ASSERT_DAXFS_OK(store().Abort("g"));
  c.reset();
  ASSERT_DAXFS_OK(store().Commit("c"));  // into p, whose writer is this process
  EXPECT_TRUE(p->resolve("/from-c").ok());
  EXPECT_TRUE(p->resolve("/later-in-p").ok());
  ASSERT_TRUE(p->create(p->root(), "after-merge", 0644).ok());
  p.reset();
  ASSERT_DAXFS_OK(store().Commit("p"));
  auto main = Open("main", false);
  for (const char* x : {"/from-p", "/later-in-p", "/from-c", "/after-merge"})
    EXPECT_TRUE(main->resolve(x).ok()) << x;
  // Abort discards.
  ASSERT_TRUE(store().Create("gone").ok());
  auto g = Open("gone", true);
  ASSERT_TRUE(g->create(g->root(), "never", 0644).ok());
  ASSERT_DAXFS_OK(store().Abort("gone"));
  EXPECT_EQ(g->create(g->root(), "more", 0644).status().errno_value(), ESTALE);
  EXPECT_TRUE(main->resolve("/never").status().IsNotFound());
  EXPECT_EQ(store().Commit("gone").errno_value(), ENOENT);
  EXPECT_EQ(store().Check(nullptr), 0u);
}

TEST_F(BranchTest, EveryOperation) {
  ASSERT_TRUE(store().Create("ops").ok());
  auto b = Open("ops", true);
  const Ino root = b->root();
  // create / write at any offset (sparse) / read back
  auto f = b->create(root, "f", 0640, 7, 8);
  ASSERT_TRUE(f.ok());
  ASSERT_DAXFS_OK(b->write(*f, 10000, B("xyz")));
  auto a = b->stat(*f);
  ASSERT_TRUE(a.ok());
  EXPECT_EQ(a->size, 10003u);
  EXPECT_EQ(a->uid, 7u);
  EXPECT_EQ(a->gid, 8u);
  std::string got = ReadAll(*b, *f);
  EXPECT_EQ(got, std::string(10000, '\0') + "xyz");
  EXPECT_EQ(b->create(root, "f", 0644).status().errno_value(), EEXIST);
  // truncate then extend reads zeros (base file and branch file)
  const Ino bt = Path(*b, "/b.txt");
  ASSERT_DAXFS_OK(b->truncate(bt, 2));
  ASSERT_DAXFS_OK(b->truncate(bt, 8));
  EXPECT_EQ(ReadAll(*b, bt), std::string("br") + std::string(6, '\0'));
  ASSERT_DAXFS_OK(b->truncate(*f, 10001));
  ASSERT_DAXFS_OK(b->truncate(*f, 10003));
  EXPECT_EQ(ReadAll(*b, *f), std::string(10000, '\0') + "x" + std::string(2, '\0'));
  // mkdir, rmdir (ENOTEMPTY, ENOTDIR), unlink (EISDIR)
  auto d = b->mkdir(root, "d", 0750);
  ASSERT_TRUE(d.ok());
  ASSERT_TRUE(b->create(*d, "in", 0644).ok());
  EXPECT_EQ(b->rmdir(root, "d").errno_value(), ENOTEMPTY);
  EXPECT_EQ(b->rmdir(root, "f").errno_value(), ENOTDIR);
  EXPECT_EQ(b->unlink(root, "d").errno_value(), EISDIR);
  EXPECT_EQ(b->unlink(root, "nope").errno_value(), ENOENT);
  EXPECT_EQ(b->rmdir(root, "dir").errno_value(), ENOTEMPTY);  // a base directory
  ASSERT_DAXFS_OK(b->rmdir(root, "empty"));
  EXPECT_TRUE(b->resolve("/empty").status().IsNotFound());
  auto ra = b->stat(root);
  ASSERT_TRUE(ra.ok());
  EXPECT_EQ(ra->nlink, 4u);  // ., .., dir, d
  // link and nlink
  ASSERT_DAXFS_OK(b->link(Path(*b, "/a.txt"), *d, "a-link"));
  EXPECT_EQ(b->stat(Path(*b, "/a.txt"))->nlink, 2u);
  EXPECT_EQ(b->link(*d, root, "dlink").errno_value(), EPERM);
  ASSERT_DAXFS_OK(b->unlink(root, "a.txt"));
  EXPECT_EQ(ReadPath(*b, "/d/a-link"), "alpha");
  EXPECT_EQ(b->stat(Path(*b, "/d/a-link"))->nlink, 1u);
  // symlink
  auto s = b->symlink(root, "sl", "d/in");
  ASSERT_TRUE(s.ok());
  EXPECT_EQ(*b->readlink(*s), "d/in");
  // rename: plain, over an existing file, NOREPLACE, EXCHANGE, into itself
  ASSERT_DAXFS_OK(b->rename(root, "f", *d, "f2"));
  EXPECT_TRUE(b->resolve("/f").status().IsNotFound());
  EXPECT_EQ(Path(*b, "/d/f2"), *f);
  ASSERT_DAXFS_OK(b->rename(*d, "f2", *d, "in"));  // replaces "in"
  EXPECT_EQ(Path(*b, "/d/in"), *f);
  auto g = b->create(root, "g", 0644);
  ASSERT_TRUE(g.ok());
  EXPECT_EQ(b->rename(root, "g", *d, "in", RENAME_NOREPLACE).errno_value(), EEXIST);
  ASSERT_DAXFS_OK(b->rename(root, "g", *d, "in", RENAME_EXCHANGE));
  EXPECT_EQ(Path(*b, "/d/in"), *g);
  EXPECT_EQ(Path(*b, "/g"), *f);
  EXPECT_EQ(b->rename(root, "d", *d, "sub").errno_value(), EINVAL);
  EXPECT_EQ(b->rename(root, "g", root, "dir").errno_value(), EISDIR);
  EXPECT_EQ(b->rename(root, "d", root, "g").errno_value(), ENOTDIR);
  EXPECT_EQ(b->rename(root, "d", root, "dir").errno_value(), ENOTEMPTY);
  auto e2 = b->mkdir(root, "e2", 0755);
  ASSERT_TRUE(e2.ok());
  ASSERT_DAXFS_OK(b->rename(root, "d", root, "e2"));  // directory over an empty directory
  EXPECT_EQ(Path(*b, "/e2"), *d);
  EXPECT_EQ(*b->lookup(*d, ".."), root);
  ASSERT_DAXFS_OK(b->rename(root, "e2", Path(*b, "/dir"), "moved"));
  EXPECT_EQ(*b->lookup(*d, ".."), Path(*b, "/dir"));
  EXPECT_EQ(b->stat(Path(*b, "/dir"))->nlink, 3u);
  // chmod / chown / utimens
  ASSERT_DAXFS_OK(b->chmod(*g, 04711));
  ASSERT_DAXFS_OK(b->chown(*g, 1000, UINT32_MAX));
  timespec ts[2] = {{111, 5}, {222, 6}};
  ASSERT_DAXFS_OK(b->utimens(*g, ts));
  auto ga = b->stat(*g);
  EXPECT_EQ(ga->mode, S_IFREG | 04711u);
  EXPECT_EQ(ga->uid, 1000u);
  EXPECT_EQ(ga->gid, 0u);
  EXPECT_EQ(ga->atime_sec, 111);
  EXPECT_EQ(ga->mtime_sec, 222);
  EXPECT_EQ(ga->mtime_nsec, 6u);
  // mknod: devices, fifo, socket
  auto cdev = b->mknod(root, "null", S_IFCHR | 0666, 1, 3);
  ASSERT_TRUE(cdev.ok());
  EXPECT_EQ(b->stat(*cdev)->rdev_major, 1u);
  EXPECT_EQ(b->stat(*cdev)->rdev_minor, 3u);
  ASSERT_TRUE(b->mknod(root, "fifo", S_IFIFO | 0600, 0, 0).ok());
  ASSERT_TRUE(b->mknod(root, "sock", S_IFSOCK | 0600, 0, 0).ok());
  EXPECT_EQ(b->write(*cdev, 0, B("x")).errno_value(), EINVAL);
  EXPECT_EQ(b->write(root, 0, B("x")).errno_value(), EISDIR);
  // xattrs
  ASSERT_DAXFS_OK(b->setxattr(*g, "user.k", B("v1")));
  EXPECT_EQ(b->setxattr(*g, "user.k", B("v2"), XATTR_CREATE).errno_value(), EEXIST);
  EXPECT_EQ(b->setxattr(*g, "user.none", B("v"), XATTR_REPLACE).errno_value(), ENODATA);
  ASSERT_DAXFS_OK(b->setxattr(*g, "user.k", B("v2"), XATTR_REPLACE));
  auto xv = b->getxattr(*g, "user.k");
  ASSERT_TRUE(xv.ok());
  EXPECT_EQ(std::string(reinterpret_cast<const char*>(xv->data()), xv->size()), "v2");
  ASSERT_DAXFS_OK(b->removexattr(*g, "user.k"));
  EXPECT_EQ(b->getxattr(*g, "user.k").status().errno_value(), ENODATA);
  EXPECT_EQ(b->removexattr(*g, "user.k").errno_value(), ENODATA);
  ASSERT_DAXFS_OK(b->fsync());
  // Names are checked.
  EXPECT_EQ(b->create(root, std::string(256, 'n'), 0644).status().errno_value(), ENAMETOOLONG);
  EXPECT_EQ(b->create(root, "a/b", 0644).status().errno_value(), EINVAL);
  // A second process sees exactly this state after reopening the region.
  auto again = BranchStore::Open(region_->spec());
  ASSERT_TRUE(again.ok());
  auto view = (*again)->OpenBranch("ops");
  ASSERT_TRUE(view.ok());
  EXPECT_EQ(ReadPath(**view, "/g"), std::string(10000, '\0') + "x" + std::string(2, '\0'));
  EXPECT_EQ(*(*view)->readlink(Path(**view, "/sl")), "d/in");
  EXPECT_EQ((*view)->stat(Path(**view, "/dir/moved/in"))->mode, S_IFREG | 04711u);
  EXPECT_EQ(store().Check(nullptr), 0u);
}

// The open-but-unlinked file in the engine: an inode whose last name goes
// with keep_open stays (nlink 0) until forget; another process's view sees
// the same; a commit drops the child's orphans; O_TMPFILE orphans can be
// linked, removed ones cannot.
TEST_F(BranchTest, OrphansLiveUntilForgottenAndEndWithTheCommit) {
  ASSERT_TRUE(store().Create("o").ok());
  auto w = Open("o", true);
  Ino f = *w->create(w->root(), "f", 0644);
  ASSERT_TRUE(w->write(f, 0, B("kept")).ok());
  ASSERT_TRUE(w->unlink(w->root(), "f", /*keep_open=*/true).ok());
  EXPECT_EQ(w->lookup(w->root(), "f").status().errno_value(), ENOENT);
  EXPECT_EQ(w->stat(f)->nlink, 0u);
  EXPECT_EQ(ReadAll(*w, f), "kept");
  ASSERT_TRUE(w->write(f, 4, B("+more")).ok());
  ASSERT_TRUE(w->truncate(f, 6).ok());
  EXPECT_EQ(ReadAll(*w, f), "kept+m");
  // A linked-in-again attempt of a removed inode fails as on Linux.
  EXPECT_EQ(w->link(f, w->root(), "again").errno_value(), ENOENT);
  // Another view of the same branch replays the same orphan.
  auto other = store().OpenBranch("o", false);
  ASSERT_TRUE(other.ok());
  EXPECT_EQ(ReadAll(**other, f), "kept+m");
  // Without keep_open the inode goes at once.
  Ino g = *w->create(w->root(), "g", 0644);
  ASSERT_TRUE(w->unlink(w->root(), "g").ok());
  EXPECT_EQ(w->stat(g).status().errno_value(), ENOENT);
  // rename over an open file and rmdir of an open directory.
  Ino victim = *w->create(w->root(), "victim", 0644);
  ASSERT_TRUE(w->write(victim, 0, B("old")).ok());
  Ino repl = *w->create(w->root(), "repl", 0644);
  ASSERT_TRUE(w->rename(w->root(), "repl", w->root(), "victim", 0, /*keep_replaced_open=*/true).ok());
  EXPECT_EQ(ReadAll(*w, victim), "old");
  EXPECT_EQ(*w->lookup(w->root(), "victim"), repl);
  Ino d = *w->mkdir(w->root(), "d", 0755);
  ASSERT_TRUE(w->rmdir(w->root(), "d", true).ok());
  EXPECT_EQ(w->stat(d)->nlink, 0u);
  EXPECT_TRUE((*w->opendir(d))->next()->has_value() == false);
  // O_TMPFILE: nameless, then linked.
  Ino t = *w->tmpfile(w->root(), 0600);
  EXPECT_EQ(w->stat(t)->nlink, 0u);
  ASSERT_TRUE(w->write(t, 0, B("tmp")).ok());
  ASSERT_TRUE(w->link(t, w->root(), "named").ok());
  EXPECT_EQ(w->stat(t)->nlink, 1u);
  EXPECT_EQ(ReadPath(*w, "/named"), "tmp");
  Ino t2 = *w->tmpfile(w->root(), 0600);
  auto orphans = w->orphans();
  ASSERT_TRUE(orphans.ok());
  EXPECT_EQ(orphans->size(), 4u);  // f, victim, d, t2
  // forget drops an orphan; on a named inode it does nothing.
  ASSERT_TRUE(w->forget(victim).ok());
  EXPECT_EQ(w->stat(victim).status().errno_value(), ENOENT);
  ASSERT_TRUE(w->forget(t).ok());
  EXPECT_EQ(ReadPath(*w, "/named"), "tmp");
  ASSERT_TRUE(w->forget(victim).ok());  // twice: nothing
  // Commit: main never sees the orphans left (f, d, t2), check is clean.
  w.reset();
  other->reset();
  ASSERT_TRUE(store().Commit("o").ok());
  auto main = Open("main", false);
  EXPECT_EQ(main->stat(f).status().errno_value(), ENOENT);
  EXPECT_EQ(main->stat(t2).status().errno_value(), ENOENT);
  EXPECT_EQ(main->stat(d).status().errno_value(), ENOENT);
  EXPECT_EQ(ReadPath(*main, "/named"), "tmp");
  EXPECT_EQ(store().Check(nullptr), 0u);
}

TEST_F(BranchTest, OneByteInABigFileCopiesOnePage) {
  ASSERT_TRUE(store().Create("cow").ok());
  auto b = Open("cow", true);
  const Ino big = Path(*b, "/big");
  const uint64_t before = store().Usage().delta_used;
  ASSERT_DAXFS_OK(b->write(big, 1 << 20, B("#")));
  const uint64_t used = store().Usage().delta_used - before;
  EXPECT_LE(used, 64u * 1024) << "one byte copied " << used << " bytes";
  std::string want = big_;
  want[1 << 20] = '#';
  EXPECT_EQ(ReadAll(*b, big), want);
  // Unchanged parts are still the base's bytes (zero-copy spans into the image).
  auto s = b->read(big, 0, 1 << 20);
  ASSERT_TRUE(s.ok());
  EXPECT_EQ(s->size(), 1u << 20);
  auto main = Open("main", false);
  EXPECT_EQ(ReadAll(*main, big), big_);
}

TEST_F(BranchTest, SiblingsSurviveACommitAndConflictsAreListed) {
  ASSERT_TRUE(store().Create("a").ok());
  ASSERT_TRUE(store().Create("b").ok());
  ASSERT_TRUE(store().Create("c").ok());
  {
    auto a = Open("a", true);
    ASSERT_DAXFS_OK(a->write(Path(*a, "/a.txt"), 0, B("from a")));
    ASSERT_TRUE(a->create(Path(*a, "/dir"), "new-a", 0644).ok());
  }
  ASSERT_DAXFS_OK(store().Commit("a"));
  {
    // b touches other paths (even the same directory): its commit succeeds.
    auto b = Open("b", true);
    EXPECT_EQ(ReadPath(*b, "/a.txt"), "alpha");  // its snapshot
    ASSERT_TRUE(b->create(Path(*b, "/dir"), "new-b", 0644).ok());
    ASSERT_DAXFS_OK(b->write(Path(*b, "/b.txt"), 0, B("from b")));
  }
  ASSERT_DAXFS_OK(store().Commit("b"));
  {
    // c touches a.txt and /dir/new-a, both changed in main since c was made.
    auto c = Open("c", true);
    ASSERT_DAXFS_OK(c->chmod(Path(*c, "/a.txt"), 0600));
    ASSERT_TRUE(c->create(Path(*c, "/dir"), "new-a", 0644).ok());
    ASSERT_TRUE(c->create(c->root(), "fine", 0644).ok());
  }
  std::vector<std::string> conflicts;
  Status st = store().Commit("c", &conflicts);
  EXPECT_EQ(st.errno_value(), ESTALE) << st.ToString();
  EXPECT_EQ(conflicts, (std::vector<std::string>{"/a.txt", "/dir/new-a"})) << st.ToString();
  EXPECT_NE(st.message().find("/dir/new-a"), std::string::npos);
  // c is left intact and keeps working.
  auto c = Open("c", true);
  EXPECT_TRUE(c->resolve("/fine").ok());
  EXPECT_EQ(c->stat(Path(*c, "/a.txt"))->mode & 07777, 0600u);
  c.reset();
  ASSERT_DAXFS_OK(store().Abort("c"));
  auto main = Open("main", false);
  EXPECT_EQ(ReadPath(*main, "/a.txt"), "from a");
  EXPECT_EQ(ReadPath(*main, "/b.txt"), "from b");
  EXPECT_TRUE(main->resolve("/dir/new-a").ok());
  EXPECT_TRUE(main->resolve("/dir/new-b").ok());
  EXPECT_TRUE(main->resolve("/fine").status().IsNotFound());
  EXPECT_EQ(store().Check(nullptr), 0u);
}

TEST_F(BranchTest, SiblingDeletedDirectoryConflicts) {
  ASSERT_TRUE(store().Create("x").ok());
  ASSERT_TRUE(store().Create("y").ok());
  {
    auto x = Open("x", true);
    ASSERT_DAXFS_OK(x->rmdir(x->root(), "empty"));
  }
  ASSERT_DAXFS_OK(store().Commit("x"));
  {
    auto y = Open("y", true);
    ASSERT_TRUE(y->create(Path(*y, "/empty"), "inside", 0644).ok());
  }
  std::vector<std::string> conflicts;
  EXPECT_EQ(store().Commit("y", &conflicts).errno_value(), ESTALE);
  EXPECT_FALSE(conflicts.empty());
}

TEST_F(BranchTest, OneWriterPerBranch) {
  ASSERT_TRUE(store().Create("w").ok());
  auto w = Open("w", true);
  auto again = store().OpenBranch("w", true);
  EXPECT_EQ(again.status().errno_value(), EBUSY);
  // Another process gets EBUSY naming this pid.
  pid_t child = fork();
  if (child == 0) {
    auto s = BranchStore::Open(region_->spec());
    if (!s.ok()) _exit(10);
    auto b = (*s)->OpenBranch("w", true);
    if (b.ok()) _exit(11);
    if (b.status().errno_value() != EBUSY) _exit(12);
    if (b.status().message().find(std::to_string(getppid())) == std::string::npos) _exit(13);
    _exit(0);
  }
  int status = 0;
  waitpid(child, &status, 0);
  EXPECT_EQ(WEXITSTATUS(status), 0);
  w.reset();
  // A holder that died is taken over.
  child = fork();
  if (child == 0) {
    auto s = BranchStore::Open(region_->spec());
    auto b = (*s)->OpenBranch("w", true);
    if (!b.ok()) _exit(1);
    (void)(*b)->create((*b)->root(), "by-child", 0644);
    kill(getpid(), SIGKILL);
  }
  waitpid(child, &status, 0);
  auto w2 = store().OpenBranch("w", true);
  ASSERT_TRUE(w2.ok()) << w2.status().ToString();
  EXPECT_TRUE((*w2)->resolve("/by-child").ok());
}

TEST_F(BranchTest, FullDeltaAreaIsENOSPCAndNothingBreaks) {
  BranchRegion small(src_.path(), 1 << 20);
  auto& s = *small.store();
  ASSERT_TRUE(s.Create("fill").ok());
  auto b = s.OpenBranch("fill", true);
  ASSERT_TRUE(b.ok());
  auto f = (*b)->create((*b)->root(), "f", 0644);
  ASSERT_TRUE(f.ok());
  std::string chunk(64 * 1024, 'z');
  uint64_t written = 0;
  Status st;
  for (int i = 0; i < 100; ++i) {
    st = (*b)->write(*f, written, B(chunk));
    if (!st.ok()) break;
    written += chunk.size();
  }
  EXPECT_EQ(st.errno_value(), ENOSPC) << st.ToString();
  EXPECT_GT(written, 0u);
  EXPECT_EQ((*b)->stat(*f)->size, written);
  EXPECT_EQ(ReadAll(**b, *f), std::string(written, 'z'));
  b->reset();
  EXPECT_EQ(s.Check(nullptr), 0u);
  Status cs = s.Commit("fill");
  EXPECT_TRUE(cs.ok()) << cs.ToString();
}

TEST_F(BranchTest, ExportMakesAnIndependentImage) {
  ASSERT_TRUE(store().Create("e").ok());
  {
    auto b = Open("e", true);
    ASSERT_DAXFS_OK(b->write(Path(*b, "/a.txt"), 5, B(" and more")));
    ASSERT_TRUE(b->symlink(b->root(), "link", "a.txt").ok());
    ASSERT_DAXFS_OK(b->link(Path(*b, "/b.txt"), b->root(), "b-hard"));
    ASSERT_DAXFS_OK(b->setxattr(Path(*b, "/b.txt"), "user.x", B("1")));
    ASSERT_DAXFS_OK(b->unlink(Path(*b, "/dir"), "inner"));
    auto sp = b->create(b->root(), "sparse", 0644);
    ASSERT_TRUE(sp.ok());
    ASSERT_DAXFS_OK(b->write(*sp, 1 << 20, B("end")));
  }
  auto view = Open("e", false);
  TempDir out;
  auto st = ExportView(*view, out / "e.img");
  ASSERT_TRUE(st.ok()) << st.status().ToString();
  auto img = Image::Open(out / "e.img");
  ASSERT_TRUE(img.ok()) << img.status().ToString();
  auto iv = MakeImageView(*img);
  EXPECT_EQ(ReadPath(*iv, "/a.txt"), "alpha and more");
  EXPECT_EQ(*iv->readlink(*iv->resolve("/link")), "a.txt");
  EXPECT_EQ(*iv->resolve("/b.txt"), *iv->resolve("/b-hard"));
  EXPECT_EQ(iv->stat(*iv->resolve("/b.txt"))->nlink, 2u);
  EXPECT_TRUE(iv->getxattr(*iv->resolve("/b.txt"), "user.x").ok());
  EXPECT_TRUE(iv->resolve("/dir/inner").status().IsNotFound());
  EXPECT_EQ(ReadPath(*iv, "/sparse"), std::string(1 << 20, '\0') + "end");
  CheckOptions co;
  EXPECT_EQ(CheckImage(**img, co).problems, 0u);
}

TEST_F(BranchTest, BranchTableAndNamesAreChecked) {
  EXPECT_EQ(store().Create("main").status().errno_value(), EEXIST);
  EXPECT_EQ(store().Create("a/b").status().errno_value(), EINVAL);
  EXPECT_EQ(store().Create("x", "nope").status().errno_value(), ENOENT);
  ASSERT_TRUE(store().Create("dup").ok());
  EXPECT_EQ(store().Create("dup").status().errno_value(), EEXIST);
  ASSERT_DAXFS_OK(store().Abort("dup"));
  ASSERT_TRUE(store().Create("dup").ok());  // the name is free again
  auto list = store().List();
  ASSERT_TRUE(list.ok());
  EXPECT_EQ(list->size(), 3u);  // main, aborted dup, active dup
  auto gc = store().Gc();
  ASSERT_TRUE(gc.ok()) << gc.status().ToString();
  EXPECT_EQ(gc->slots_freed, 1u);
  EXPECT_EQ(store().List()->size(), 2u);
}

// Extract takes any FsView: a branch comes out with its own changes (block
// CoW pieces, a sparse tail, xattrs, times) and none of main's later ones.
TEST_F(BranchTest, ExtractABranch) {
  ASSERT_TRUE(store().Create("x").ok());
  auto b = Open("x", true);
  const Ino big = Path(*b, "/big");
  ASSERT_DAXFS_OK(b->write(big, 5000, B("XYZ")));           // inside a base block
  ASSERT_DAXFS_OK(b->write(big, (4u << 20) + 1, B("tail")));  // past a hole
  auto f = b->create(b->root(), "new", 0640);
  ASSERT_TRUE(f.ok()) << f.status().ToString();
  ASSERT_DAXFS_OK(b->write(*f, 0, B("fresh")));
  ASSERT_DAXFS_OK(b->setxattr(*f, "user.k", B("v"), 0));
  ASSERT_DAXFS_OK(b->unlink(b->root(), "a.txt"));
  ASSERT_DAXFS_OK(b->fsync());

  TempDir out;
  ExtractOptions eo;
  eo.owners = false;
  ASSERT_DAXFS_OK(Extract(*b, "/", out / "t", eo));
  std::string want = big_;
  want.replace(5000, 3, "XYZ");
  want.resize((4u << 20) + 1, '\0');
  want += "tail";
  // Times first: reading the file could move its atime (relatime: the
  // extracted file's ctime is newer than the atime it was given).
  struct stat st;
  ASSERT_EQ(lstat((out / "t/new").c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 07777, 0640u);
  auto fa = b->stat(*f);
  ASSERT_TRUE(fa.ok());
  EXPECT_EQ(st.st_mtim.tv_sec, fa->mtime_sec);
  EXPECT_EQ(st.st_atim.tv_sec, fa->atime_sec);
  EXPECT_TRUE(ReadFile(out / "t/big") == want) << "big differs";
  EXPECT_EQ(ReadFile(out / "t/new"), "fresh");
  EXPECT_EQ(ReadFile(out / "t/dir/inner"), "inner");
  EXPECT_NE(lstat((out / "t/a.txt").c_str(), &st), 0) << "unlinked file extracted";
  char v[8];
  if (getxattr((out / "t/new").c_str(), "user.k", v, sizeof v) >= 0) {
    EXPECT_EQ(v[0], 'v');
  }
  // The hole stays a hole (4 MiB of zeros not written out).
  ASSERT_EQ(lstat((out / "t/big").c_str(), &st), 0);
  EXPECT_LT(st.st_blocks * 512, 3 << 20);

  CheckOptions co;
  std::string problems;
  co.report = [&](const std::string& m) { problems += m + "\n"; };
  EXPECT_EQ(CheckView(*b, co).problems, 0u) << problems;
  EXPECT_EQ(CheckView(*b, co).inodes_reached, 7u);  // /, b.txt, dir, inner, empty, big, new

  // main is unchanged, and a subtree comes out alone.
  auto main = Open("main", false);
  ASSERT_DAXFS_OK(Extract(*main, "/dir", out / "m", eo));
  EXPECT_EQ(ReadFile(out / "m/inner"), "inner");
  EXPECT_NE(lstat((out / "m/a.txt").c_str(), &st), 0);
}

}  // namespace
}  // namespace daxfs::testing
