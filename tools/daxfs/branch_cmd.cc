// `daxfs branch ...`: branchable regions from the command line.
#include "branch_cmd.h"
#include "json_output.h"

#include <sys/stat.h>
#include <unistd.h>

#include <cinttypes>
#include <cstdio>
#include <ctime>
#include <vector>

#include "daxfs/branch.h"
#include "daxfs/branch_format.h"
#include "common/quote.h"
#include "common/serve.h"
#include "daxfs/check.h"
#include "util/file_io.h"

namespace daxfs::tools {
namespace {

struct Args {
  std::string image, region, name, parent = "main", path, path2, output, delta = "", siblings = "merge";
  bool upstream_readable = false, recursive = false, quiet = false, no_erofs = false, json = false;
  double lease_timeout = 0;  // seconds; 0 = the default
};
Args g;

int Fail(const Status& s) {
  std::fprintf(stderr, "daxfs branch: %s\n", EscapeControls(s.ToString()).c_str());
  return 1;
}

Result<uint64_t> ParseSize(const std::string& s) {
  char* end = nullptr;
  const double v = std::strtod(s.c_str(), &end);
  if (end == s.c_str() || !(v > 0)) return Status::InvalidArgument("bad size '" + s + "'");
  uint64_t mul = 1;
  switch (*end) {
    case 'k': case 'K': mul = 1ull << 10; break;
    case 'm': case 'M': mul = 1ull << 20; break;
    case 'g': case 'G': mul = 1ull << 30; break;
    case 't': case 'T': mul = 1ull << 40; break;
    case '\0': break;
    default: return Status::InvalidArgument("bad size suffix in '" + s + "' (use K, M, G, T)");
  }
  if (*end != '\0' && end[1] != '\0' && !(end[1] == 'i' && (end[2] == 'B' && end[3] == '\0')) &&
      !(end[1] == 'B' && end[2] == '\0'))
    return Status::InvalidArgument("bad size suffix in '" + s + "' (use K, M, G, T)");
  if (v * static_cast<double>(mul) >= 18446744073709551616.0)  // 2^64: would not fit
    return Status::InvalidArgument("size '" + s + "' is too large");
  return static_cast<uint64_t>(v * static_cast<double>(mul));
}

Result<std::shared_ptr<BranchStore>> OpenStore() { return BranchStore::Open(g.region); }

Result<std::shared_ptr<Branch>> OpenB(bool write) {
  DAXFS_ASSIGN_OR_RETURN(auto s, OpenStore());
  auto b = s->OpenBranch(g.name, write);
  if (!b.ok()) return b.status();
  return *b;
}

Status WriteOut(std::span<const std::byte> s) { return WriteAll(STDOUT_FILENO, s, "stdout"); }

// Every name and message printed comes from the region or the command line,
// which anyone may have written: control characters are escaped.
std::string E(std::string_view text) { return EscapeControls(text); }

std::string Where(const std::string& p) { return g.region + " branch " + g.name + ": " + p; }

// A region made in a memfd lives as long as this process: hand its
// descriptor to every client of the socket until SIGINT/SIGTERM.
int ServeNewMemfd(std::shared_ptr<BranchStore> store) {
  const std::string socket = g.region.substr(std::string("memfd:").size());
  // Keep the memfd, but detach from the region: an attached server would
  // make every client's gc wait for it.
  auto keep = Region::Open("fd:" + std::to_string(store->region().fd()), Access::kReadWrite);
  if (!keep.ok()) return Fail(keep.status());
  store.reset();
  if (!g.quiet)
    std::printf("serving the branch region on %s; clients use memfd:%s (it ends with this process)\n",
                E(socket).c_str(), E(socket).c_str());
  std::fflush(stdout);
  Status st = ServeUntilInterrupted(**keep, socket);
  return st.ok() ? 0 : Fail(st);
}

int CmdInit() {
  auto size = ParseSize(g.delta);
  if (!size.ok()) return Fail(size.status());
  if (g.lease_timeout < 0 || g.lease_timeout > 600)
    return Fail(Status::InvalidArgument("--lease-timeout must be 0.2 to 600 seconds"));
  auto s = BranchStore::Init(g.image, g.region, *size, static_cast<uint32_t>(g.lease_timeout * 1000 + 0.5));
  if (!s.ok()) return Fail(s.status());
  if (!g.quiet) {
    auto u = (*s)->Usage();
    std::printf("made branch region %s from %s: delta area %" PRIu64 " bytes; branch 'main' = the image\n",
                E((*s)->region().name()).c_str(), E(g.image).c_str(), u.delta_size);
  }
  if (g.region.rfind("memfd:", 0) == 0) return ServeNewMemfd(std::move(*s));
  return 0;
}

int CmdList() {
  auto s = OpenStore();
  if (!s.ok()) return Fail(s.status());
  auto l = (*s)->List();
  if (!l.ok()) return Fail(l.status());
  if (g.json) {
    PrintJson(BranchListJson(*l, (*s)->Usage()));
    return 0;
  }
  std::printf("%-24s %-10s %-16s %10s %8s %8s %s\n", "BRANCH", "STATE", "PARENT", "LOG", "WRITER", "CHILDREN",
              "SIBLINGS");
  for (const auto& b : *l)
    std::printf("%-24s %-10s %-16s %10" PRIu64 " %8s %8u %s\n", E(b.name).c_str(), b.state.c_str(),
                b.parent.empty() ? "-" : E(b.parent).c_str(), b.log_bytes,
                b.writer ? std::to_string(b.writer).c_str() : "-", b.children,
                b.parent.empty() ? "-" : b.siblings.c_str());
  auto u = (*s)->Usage();
  std::printf("delta area: %" PRIu64 " of %" PRIu64 " bytes used, %" PRIu64
              " freed by gc for reuse; %u slots used; %u process(es) attached\n",
              u.delta_used, u.delta_size, u.delta_free, u.slots_used, u.attached);
  return 0;
}

int CmdCreate() {
  auto s = OpenStore();
  if (!s.ok()) return Fail(s.status());
  if (Status st = (*s)->MayControl(g.parent, BranchControl::kCreateChild, Credentials::OfThisProcess()); !st.ok())
    return Fail(st);
  auto b = (*s)->Create(g.name, g.parent,
                        g.siblings == "first-wins" ? SiblingPolicy::kFirstWins : SiblingPolicy::kMerge);
  if (!b.ok()) return Fail(b.status());
  if (!g.quiet) std::printf("created branch '%s' of '%s'\n", E(b->name).c_str(), E(b->parent).c_str());
  return 0;
}

int CmdCommit() {
  auto s = OpenStore();
  if (!s.ok()) return Fail(s.status());
  if (Status st = (*s)->MayControl(g.name, BranchControl::kCommit, Credentials::OfThisProcess()); !st.ok())
    return Fail(st);
  std::vector<std::string> conflicts;
  Status st = (*s)->Commit(g.name, &conflicts);
  if (!st.ok()) {
    Fail(st);
    for (const auto& c : conflicts) std::fprintf(stderr, "conflict: %s\n", E(c).c_str());
    return st.errno_value() == ESTALE ? 3 : 1;
  }
  return 0;
}

int CmdAbort() {
  auto s = OpenStore();
  if (!s.ok()) return Fail(s.status());
  if (Status st = (*s)->MayControl(g.name, BranchControl::kAbort, Credentials::OfThisProcess()); !st.ok())
    return Fail(st);
  Status st = (*s)->Abort(g.name);
  return st.ok() ? 0 : Fail(st);
}

int CmdUpgrade() {
  Status st = BranchStore::Upgrade(g.region);
  if (!st.ok()) return Fail(st);
  if (!g.quiet) std::printf("%s: a version %u branch region (atomics alone)\n", E(g.region).c_str(), format::branch::kControlVersion);
  return 0;
}

int CmdGc() {
  auto s = OpenStore();
  if (!s.ok()) return Fail(s.status());
  auto r = (*s)->Gc();
  if (!r.ok()) return Fail(r.status());
  if (!g.quiet)
    std::printf("freed %u branch slot(s), reclaimed %" PRIu64 " bytes; delta area: %" PRIu64
                " bytes in use, %" PRIu64 " free for reuse\nnote: %s\n",
                r->slots_freed, r->bytes_reclaimed, r->bytes_used, r->bytes_free, E(r->note).c_str());
  return 0;
}

int CmdCheck() {
  auto s = OpenStore();
  if (!s.ok() && s.status().errno_value() == EACCES) {
    Fail(s.status().WithContext("checking the branches needs write access to the region (it "
                                "registers as a reader)"));
    return 8;
  }
  if (!s.ok()) {
    Fail(s.status());
    return 8;
  }
  uint64_t n = (*s)->Check([](const std::string& m) { std::printf("error: %s\n", E(m).c_str()); });
  // Then the tree of main and of every active branch, as each reads now.
  std::vector<std::string> views{"main"};
  if (auto list = (*s)->List(); list.ok()) {
    for (const auto& b : *list)
      if (b.state == "active" && b.name != "main") views.push_back(b.name);
  } else {
    std::printf("error: %s\n", E(list.status().ToString()).c_str());
    ++n;
  }
  for (const auto& name : views) {
    auto b = (*s)->OpenBranch(name, false);
    if (!b.ok()) {
      std::printf("error: branch %s: %s\n", E(name).c_str(), E(b.status().ToString()).c_str());
      ++n;
      continue;
    }
    CheckOptions o;
    o.report = [&name](const std::string& m) { std::printf("error: branch %s: %s\n", E(name).c_str(), E(m).c_str()); };
    const CheckResult r = CheckView(**b, o);
    n += r.problems;
    if (!g.quiet)
      std::printf("branch %s: %" PRIu64 " inodes, %" PRIu64 " entries checked: %" PRIu64 " problem(s)\n",
                  E(name).c_str(), r.inodes_reached, r.entries, r.problems);
  }
  if (!g.quiet || n) std::printf("%s: %" PRIu64 " problem(s)\n", E(g.region).c_str(), n);
  return n ? 4 : 0;
}

int CmdExport() {
  auto store = OpenStore();
  if (!store.ok()) return Fail(store.status());
  // The export replaces OUTPUT: never the region it reads from.
  struct stat out, reg;
  if (stat(g.output.c_str(), &out) == 0 && (*store)->region().fd() >= 0 &&
      fstat((*store)->region().fd(), &reg) == 0 && out.st_dev == reg.st_dev && out.st_ino == reg.st_ino)
    return Fail(Status::InvalidArgument(g.output + ": is the branch region " + g.region +
                                        " itself; exporting over it would destroy every branch (choose another file)"));
  auto b = (*store)->OpenBranch(g.name, false);
  if (!b.ok()) return Fail(b.status());
  BuildOptions options;
  options.compact_dirs = !g.upstream_readable;
  options.erofs = g.no_erofs ? BuildOptions::Erofs::kNever : BuildOptions::Erofs::kAuto;
  // A container's branch exported is still that container image's tree.
  if (auto base = (*store)->base()) options.container_config = base->info().container_config;
  auto r = ExportView(**b, g.output, options);
  if (!r.ok()) return Fail(r.status().WithContext(Where("export to " + g.output)));
  if (!g.quiet)
    std::printf("exported branch '%s' to %s (%" PRIu64 " inodes, %" PRIu64 " bytes%s)\n", E(g.name).c_str(),
                E(g.output).c_str(), r->inodes, r->image_size,
                r->erofs_skipped.empty() ? (g.no_erofs ? "" : ", EROFS view") : (", no EROFS view: " + E(r->erofs_skipped)).c_str());
  return 0;
}

int CmdLs() {
  auto b = OpenB(false);
  if (!b.ok()) return Fail(b.status());
  auto& v = **b;
  auto ino = v.resolve(g.path);
  if (!ino.ok()) return Fail(ino.status().WithContext(Where(g.path)));
  std::vector<std::pair<Ino, std::string>> todo{{*ino, g.path}};
  for (size_t k = 0; k < todo.size(); ++k) {
    auto [dir, dpath] = todo[k];
    auto cur = v.opendir(dir);
    if (!cur.ok()) {
      auto a = v.stat(dir);
      if (!a.ok()) return Fail(a.status());
      std::printf("%8" PRIu64 " %06o %3u %5u %5u %12" PRIu64 " %s\n", a->ino, a->mode, a->nlink, a->uid,
                  a->gid, a->size, E(dpath).c_str());
      continue;
    }
    if (g.recursive) std::printf("%s:\n", E(dpath).c_str());
    for (;;) {
      auto e = (*cur)->next();
      if (!e.ok()) return Fail(e.status());
      if (!*e) break;
      auto a = v.stat((*e)->ino);
      if (!a.ok()) return Fail(a.status());
      std::string line = (*e)->name;
      if (S_ISLNK(a->mode)) {
        auto t = v.readlink((*e)->ino);
        if (t.ok()) line += " -> " + *t;
      }
      std::printf("%8" PRIu64 " %06o %3u %5u %5u %12" PRIu64 " %s\n", a->ino, a->mode, a->nlink, a->uid,
                  a->gid, a->size, E(line).c_str());
      if (g.recursive && S_ISDIR(a->mode))
        todo.emplace_back((*e)->ino, (dpath == "/" ? "" : dpath) + "/" + (*e)->name);
    }
  }
  return 0;
}

int CmdCat() {
  auto b = OpenB(false);
  if (!b.ok()) return Fail(b.status());
  auto ino = (*b)->resolve(g.path);
  if (!ino.ok()) return Fail(ino.status().WithContext(Where(g.path)));
  for (uint64_t off = 0;;) {
    auto s = (*b)->read(*ino, off, 1 << 20);
    if (!s.ok()) return Fail(s.status().WithContext(Where(g.path)));
    if (s->empty()) break;
    Status st = WriteOut(*s);
    if (!st.ok()) return Fail(st);
    off += s->size();
  }
  return 0;
}

int CmdWrite() {
  auto b = OpenB(true);
  if (!b.ok()) return Fail(b.status());
  auto& w = **b;
  auto ino = w.resolve(g.path);
  if (!ino.ok()) {
    auto pl = w.parent_of(g.path);
    if (!pl.ok()) return Fail(pl.status().WithContext(Where(g.path)));
    ino = w.create(pl->first, pl->second, 0644, getuid(), getgid());
    if (!ino.ok()) return Fail(ino.status().WithContext(Where(g.path)));
  } else {
    Status st = w.truncate(*ino, 0);
    if (!st.ok()) return Fail(st.WithContext(Where(g.path)));
  }
  std::vector<std::byte> buf(1 << 20);
  uint64_t off = 0;
  for (;;) {
    ssize_t n = ::read(STDIN_FILENO, buf.data(), buf.size());
    if (n < 0) {
      if (errno == EINTR) continue;
      return Fail(Status::IOError("stdin", errno));
    }
    if (n == 0) break;
    Status st = w.write(*ino, off, {buf.data(), static_cast<size_t>(n)});
    if (!st.ok()) return Fail(st.WithContext(Where(g.path)));
    off += static_cast<uint64_t>(n);
  }
  Status st = w.fsync();
  return st.ok() ? 0 : Fail(st);
}

int CmdMkdir() {
  auto b = OpenB(true);
  if (!b.ok()) return Fail(b.status());
  auto pl = (*b)->parent_of(g.path);
  if (!pl.ok()) return Fail(pl.status().WithContext(Where(g.path)));
  auto r = (*b)->mkdir(pl->first, pl->second, 0755, getuid(), getgid());
  return r.ok() ? 0 : Fail(r.status().WithContext(Where(g.path)));
}

int CmdRm() {
  auto b = OpenB(true);
  if (!b.ok()) return Fail(b.status());
  auto pl = (*b)->parent_of(g.path);
  if (!pl.ok()) return Fail(pl.status().WithContext(Where(g.path)));
  auto ino = (*b)->lookup(pl->first, pl->second);
  if (!ino.ok()) return Fail(ino.status().WithContext(Where(g.path)));
  auto a = (*b)->stat(*ino);
  Status st = a.ok() && S_ISDIR(a->mode) ? (*b)->rmdir(pl->first, pl->second)
                                          : (*b)->unlink(pl->first, pl->second);
  return st.ok() ? 0 : Fail(st.WithContext(Where(g.path)));
}

int CmdMv() {
  auto b = OpenB(true);
  if (!b.ok()) return Fail(b.status());
  auto s = (*b)->parent_of(g.path);
  if (!s.ok()) return Fail(s.status().WithContext(Where(g.path)));
  auto d = (*b)->parent_of(g.path2);
  if (!d.ok()) return Fail(d.status().WithContext(Where(g.path2)));
  Status st = (*b)->rename(s->first, s->second, d->first, d->second);
  return st.ok() ? 0 : Fail(st.WithContext(Where(g.path + " -> " + g.path2)));
}

int CmdSymlink() {
  auto b = OpenB(true);
  if (!b.ok()) return Fail(b.status());
  auto pl = (*b)->parent_of(g.path2);
  if (!pl.ok()) return Fail(pl.status().WithContext(Where(g.path2)));
  auto r = (*b)->symlink(pl->first, pl->second, g.path, getuid(), getgid());
  return r.ok() ? 0 : Fail(r.status().WithContext(Where(g.path2)));
}

}  // namespace

int CheckBranchRegion(const std::string& region, bool quiet) {
  g.region = region;
  g.quiet = quiet;
  return CmdCheck();
}

BranchCommand AddBranchCommand(CLI::App& app) {
  auto* br = app.add_subcommand(
      "branch",
      "Copy-on-write branches in a shared region (init, list, create, commit, abort, export, gc,\n"
      "check, and ls/cat/write/mkdir/rm/mv/symlink inside a branch)");
  br->require_subcommand(1, 1);
  std::vector<std::pair<CLI::App*, int (*)()>> cmds;
  auto region = [](CLI::App* c) { c->add_option("REGION", g.region, "Branch region (file, shm:/x, hugetlbfs:, dax:, fd:, memfd:SOCKET)")->required(); };
  auto name = [](CLI::App* c) { c->add_option("BRANCH", g.name, "Branch name")->required(); };

  auto* init = br->add_subcommand(
      "init",
      "Make a branchable region from an image: main = the image. With REGION memfd:SOCKET, the "
      "region is a new memfd served on SOCKET until SIGINT/SIGTERM (clients: memfd:SOCKET)");
  init->add_option("IMAGE", g.image, "Source image")->required();
  region(init);
  init->add_option("--delta", g.delta, "Bytes for branch logs and data (K, M, G suffixes)")->required();
  init->add_option("--lease-timeout", g.lease_timeout,
                   "Seconds a user's heartbeat may stand still before others take over its leases "
                   "(a process or VM that died or is stopped; default 5)");
  init->add_flag("-q,--quiet", g.quiet, "No summary");
  cmds.emplace_back(init, CmdInit);
  auto* upgrade = br->add_subcommand(
      "upgrade", "Convert a branch region made by an older daxfs (a process-shared mutex) to the current "
                 "version (atomics alone), in place; nothing else may use it meanwhile");
  region(upgrade);
  upgrade->add_flag("-q,--quiet", g.quiet, "No summary");
  cmds.emplace_back(upgrade, CmdUpgrade);
  auto* list = br->add_subcommand("list", "List branches, their state, parent, log size and writer");
  region(list);
  list->add_flag("--json", g.json, "One JSON object (schema daxfs.branch-list/1, docs/JSON.md)");
  cmds.emplace_back(list, CmdList);
  auto* create = br->add_subcommand("create", "Create a branch (of main, or --parent)");
  region(create);
  name(create);
  create->add_option("-p,--parent", g.parent, "Parent branch (default main)");
  create->add_option("--siblings", g.siblings,
                     "merge (default): commit unless it touched what the parent changed meanwhile; "
                     "first-wins: fail (exit 3) once a sibling committed first")
      ->check(CLI::IsMember({"merge", "first-wins"}));
  create->add_flag("-q,--quiet", g.quiet, "No message");
  cmds.emplace_back(create, CmdCreate);
  auto* commit = br->add_subcommand("commit", "Merge a leaf branch into its parent atomically (exit 3 on a conflict)");
  region(commit);
  name(commit);
  commit->add_flag("-q,--quiet", g.quiet, "No message (a commit says nothing when it succeeds)");
  cmds.emplace_back(commit, CmdCommit);
  auto* abort = br->add_subcommand("abort", "Discard a branch");
  region(abort);
  name(abort);
  abort->add_flag("-q,--quiet", g.quiet, "No message (an abort says nothing when it succeeds)");
  cmds.emplace_back(abort, CmdAbort);
  auto* exp = br->add_subcommand("export", "Write a branch (or main) as a new read-only image");
  region(exp);
  name(exp);
  exp->add_option("OUTPUT", g.output, "Image file to write")->required();
  exp->add_flag("--upstream-readable", g.upstream_readable, "Upstream v5 directory layout");
  exp->add_flag("--no-erofs", g.no_erofs, "Leave out the EROFS view (written by default, as by mkdaxfs)");
  exp->add_flag("-q,--quiet", g.quiet, "No summary");
  cmds.emplace_back(exp, CmdExport);
  auto* gc = br->add_subcommand("gc", "Reclaim ended branches online (with others attached: what no live process views); alone on the region also what dead writers leaked");
  region(gc);
  gc->add_flag("-q,--quiet", g.quiet, "No summary");
  cmds.emplace_back(gc, CmdGc);
  auto* check = br->add_subcommand("check", "Verify the base image, the branch table, every live branch's log and the tree of main and of every active branch");
  region(check);
  check->add_flag("-q,--quiet", g.quiet, "Print only problems");
  cmds.emplace_back(check, CmdCheck);
  auto* ls = br->add_subcommand("ls", "List a directory of a branch");
  region(ls);
  name(ls);
  ls->add_option("PATH", g.path, "Path (default /)");
  ls->add_flag("-R,--recursive", g.recursive, "Recurse");
  cmds.emplace_back(ls, CmdLs);
  auto* cat = br->add_subcommand("cat", "Write a branch file to stdout");
  region(cat);
  name(cat);
  cat->add_option("PATH", g.path, "Path")->required();
  cmds.emplace_back(cat, CmdCat);
  auto* write = br->add_subcommand("write", "Replace (or create) a branch file with stdin");
  region(write);
  name(write);
  write->add_option("PATH", g.path, "Path")->required();
  cmds.emplace_back(write, CmdWrite);
  auto* mkd = br->add_subcommand("mkdir", "Make a directory in a branch");
  region(mkd);
  name(mkd);
  mkd->add_option("PATH", g.path, "Path")->required();
  cmds.emplace_back(mkd, CmdMkdir);
  auto* rm = br->add_subcommand("rm", "Remove a file or an empty directory from a branch");
  region(rm);
  name(rm);
  rm->add_option("PATH", g.path, "Path")->required();
  cmds.emplace_back(rm, CmdRm);
  auto* mv = br->add_subcommand("mv", "Rename inside a branch (replaces the target like rename(2))");
  region(mv);
  name(mv);
  mv->add_option("FROM", g.path, "Source path")->required();
  mv->add_option("TO", g.path2, "Destination path")->required();
  cmds.emplace_back(mv, CmdMv);
  auto* sl = br->add_subcommand("symlink", "Make a symlink in a branch");
  region(sl);
  name(sl);
  sl->add_option("TARGET", g.path, "Link target")->required();
  sl->add_option("PATH", g.path2, "Path of the link")->required();
  cmds.emplace_back(sl, CmdSymlink);
  g.path = "/";
  return BranchCommand{br, [cmds]() {
                         for (auto& [c, fn] : cmds)
                           if (c->parsed()) return fn();
                         return 2;
                       }};
}

}  // namespace daxfs::tools
