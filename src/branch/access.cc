// Who may control a branch: the rule of include/daxfs/branch.h, shared by
// the mount (for its callers), the CLI and library users.
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cstdio>

#include "daxfs/branch.h"

namespace daxfs {

Credentials Credentials::OfThisProcess() {
  Credentials c;
  c.uid = geteuid();
  c.gid = getegid();
  const int n = getgroups(0, nullptr);
  if (n > 0) {
    std::vector<gid_t> g(static_cast<size_t>(n));
    const int got = getgroups(n, g.data());
    for (int i = 0; i < got; ++i) c.groups.push_back(g[static_cast<size_t>(i)]);
  }
  return c;
}

Status MayWriteRoot(const FsView& view, const Credentials& who, const std::string& what) {
  if (who.uid == 0) return Status::OK();
  DAXFS_ASSIGN_OR_RETURN(FsAttr a, view.stat(view.root()));
  unsigned bits;
  if (a.uid == who.uid) {
    bits = (a.mode >> 6) & 7;
  } else if (a.gid == who.gid || std::count(who.groups.begin(), who.groups.end(), a.gid)) {
    bits = (a.mode >> 3) & 7;
  } else {
    bits = a.mode & 7;
  }
  if ((bits & 3) == 3) return Status::OK();  // write and search
  return Status::Permission(what + ": needs write permission on the branch's root directory (mode " +
                            [&] {
                              char m[8];
                              std::snprintf(m, sizeof m, "%04o", a.mode & 07777);
                              return std::string(m);
                            }() +
                            ", owner " + std::to_string(a.uid) + ":" + std::to_string(a.gid) + ")");
}

Status BranchStore::MayControl(std::string_view name, BranchControl op, const Credentials& who) {
  if (who.uid == 0) return Status::OK();
  const std::string n(name);
  const char* verb = op == BranchControl::kCreateChild ? "create a branch of '"
                     : op == BranchControl::kCommit     ? "commit '"
                                                        : "abort '";
  const std::string what = std::string(verb) + n + "'";
  DAXFS_ASSIGN_OR_RETURN(auto view, OpenBranch(n, false));
  DAXFS_RETURN_IF_ERROR(MayWriteRoot(*view, who, what));
  if (op == BranchControl::kCommit) {
    DAXFS_ASSIGN_OR_RETURN(BranchInfo info, Info(n));
    if (!info.parent.empty()) {
      DAXFS_ASSIGN_OR_RETURN(auto parent, OpenBranch(info.parent, false));
      DAXFS_RETURN_IF_ERROR(MayWriteRoot(*parent, who, what + " into '" + info.parent + "'"));
    }
  }
  return Status::OK();
}

}  // namespace daxfs
