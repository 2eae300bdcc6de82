// daxfs: inspect, verify, extract and load daxfs images.
// Also installed as daxfs-inspect and fsck.daxfs (argv[0] picks the default).
#include <fcntl.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/uio.h>
#include <unistd.h>

#include "common/cli.h"
#include <cstring>
#include <cinttypes>
#include <cstdio>
#include <clocale>
#include <ctime>
#include <vector>

#include "daxfs/check.h"
#include "daxfs/container.h"
#include "daxfs/erofs.h"
#include "daxfs/erofs_format.h"
#include "common/progress.h"
#include "common/quote.h"
#include "common/serve.h"
#include "branch_cmd.h"
#include "json_output.h"
#include "daxfs/branch.h"
#include "daxfs/extract.h"
#include "daxfs/image.h"
#include "daxfs/prefetch.h"

namespace {

using daxfs::Attr;
using daxfs::Image;
using daxfs::Ino;
using daxfs::tools::EscapeControls;
using daxfs::tools::QuoteName;
using daxfs::tools::Quoting;

// The image's region: once its memory went away (bus error), that is the
// error to report, whatever the reader made of the zeros it then saw.
const daxfs::Region* g_region = nullptr;
Quoting g_quoting = Quoting::kLiteral;

int Fail(const daxfs::Status& s) {
  const daxfs::Status lost = g_region ? g_region->status() : daxfs::Status::OK();
  std::fprintf(stderr, "daxfs: %s\n", EscapeControls((lost.ok() ? s : lost).ToString()).c_str());
  return 1;
}

std::string Q(std::string_view name) { return QuoteName(name, g_quoting); }

std::string ModeString(uint32_t mode) {
  static const char* kTypes = "?pc?d?b?-?l?s???";
  std::string s(10, '-');
  s[0] = kTypes[(mode >> 12) & 0xf];
  const char* rwx = "rwxrwxrwx";
  for (int i = 0; i < 9; ++i)
    if (mode & (0400 >> i)) s[1 + i] = rwx[i];
  if (mode & S_ISUID) s[3] = (mode & S_IXUSR) ? 's' : 'S';
  if (mode & S_ISGID) s[6] = (mode & S_IXGRP) ? 's' : 'S';
  if (mode & S_ISVTX) s[9] = (mode & S_IXOTH) ? 't' : 'T';
  return s;
}

std::string TimeString(int64_t sec, uint32_t nsec) {
  time_t t = static_cast<time_t>(sec);
  tm tmv;
  gmtime_r(&t, &tmv);
  char buf[64];
  size_t n = strftime(buf, sizeof buf, "%Y-%m-%d %H:%M:%S", &tmv);
  std::snprintf(buf + n, sizeof buf - n, ".%09u UTC", nsec);
  return buf;
}

void PrintLong(const Image& img, const Attr& a, const std::string& name) {
  std::string size = (S_ISCHR(a.mode) || S_ISBLK(a.mode))
                         ? std::to_string(a.rdev_major) + ", " + std::to_string(a.rdev_minor)
                         : std::to_string(a.size);
  std::printf("%8" PRIu64 " %s %3u %5u %5u %12s %s %s", a.ino, ModeString(a.mode).c_str(),
              a.nlink, a.uid, a.gid, size.c_str(), TimeString(a.mtime_sec, a.mtime_nsec).c_str(),
              Q(name).c_str());
  if (S_ISLNK(a.mode)) {
    auto t = img.readlink(a.ino);
    if (t.ok()) std::printf(" -> %s", Q(*t).c_str());
  }
  std::printf("\n");
}

// A JSON-ish list of strings, for one line.
std::string QuotedList(const std::vector<std::string>& v) {
  std::string out = "[";
  for (size_t k = 0; k < v.size(); ++k) out += (k ? ", \"" : "\"") + Q(v[k]) + "\"";
  return out + "]";
}

bool g_json = false;  // --json: one JSON object instead of text

int CmdInfo(const Image& img, bool config_json) {
  const auto& i = img.info();
  if (g_json && !config_json) {
    daxfs::tools::PrintJson(daxfs::tools::InfoJson(img));
    return 0;
  }
  if (config_json) {
    if (i.container_config.empty()) {
      std::fprintf(stderr, "daxfs: %s: not built from a container image (no config recorded)\n",
                   Q(img.region().name()).c_str());
      return 1;
    }
    std::printf("%s\n", i.container_config.c_str());
    return 0;
  }
  std::printf("image:           %s\n", Q(img.region().name()).c_str());
  std::printf("format:          %s\n",
              i.compact_dirs        ? "daxfs compact (version 6: not readable by the upstream v5 module)"
              : i.daxfs_extensions ? "daxfs v5 + daxfs extensions (upstream-readable)"
                                   : "daxfs v5 (plain upstream)");
  std::printf("region size:     %" PRIu64 "\n", i.region_size);
  std::printf("total size:      %" PRIu64 "\n", i.total_size);
  std::printf("base image:      offset %" PRIu64 ", size %" PRIu64 "\n", i.base_offset, i.base_size);
  std::printf("inodes:          %u\n", i.inode_count);
  std::printf("branch table:    %s\n", i.branching ? "yes" : "no (static image)");
  if (i.objects) {
    std::printf("object dir:      %s\n", Q(i.object_dir).c_str());
    if (i.recorded_object_dir != i.object_dir)
      std::printf("recorded dir:    %s\n", Q(i.recorded_object_dir).c_str());
  }
  {
    const auto bytes = img.region().bytes().first(i.total_size);
    if (daxfs::HasErofsSuperblock(bytes)) {
      daxfs::erofs::SuperBlock sb;
      std::memcpy(&sb, bytes.data() + daxfs::erofs::kSuperOffset, sizeof sb);
      std::printf("EROFS view:      yes (mount -t erofs, through a loop device; %" PRIu64 " inodes, root nid %u)\n",
                  static_cast<uint64_t>(sb.inos), sb.root_nid);
    } else {
      std::printf("EROFS view:      no (mkdaxfs --erofs adds one)\n");
    }
  }
  if (i.daxfs_extensions) {
    std::printf("metadata size:   %" PRIu64 "\n", i.meta_size);
    std::printf("entries:         %" PRIu64 "\n", i.file_count);
    std::printf("features:        %s\n", daxfs::FeatureNames(i).c_str());
    std::printf("built:           %s\n", TimeString(i.build_time, 0).c_str());
    if (!i.label.empty()) std::printf("label:           %s\n", Q(i.label).c_str());
  }
  if (!i.container_config.empty()) {
    auto c = daxfs::ParseContainerConfig(i.container_config);
    if (!c.ok()) {
      std::printf("container:       config recorded, but %s\n", c.status().message().c_str());
    } else {
      std::printf("container:       %s (--config prints the whole config)\n", Q(c->platform).c_str());
      if (!c->entrypoint.empty()) std::printf("  entrypoint:    %s\n", QuotedList(c->entrypoint).c_str());
      if (!c->cmd.empty()) std::printf("  cmd:           %s\n", QuotedList(c->cmd).c_str());
      if (!c->working_dir.empty()) std::printf("  working dir:   %s\n", Q(c->working_dir).c_str());
      if (!c->user.empty()) std::printf("  user:          %s\n", Q(c->user).c_str());
      for (const auto& e : c->env) std::printf("  env:           %s\n", Q(e).c_str());
    }
  }
  return 0;
}

int CmdLs(const Image& img, const std::string& path, bool recursive) {
  auto ino = img.resolve(path);
  if (!ino.ok()) return Fail(ino.status());
  std::vector<std::pair<Ino, std::string>> todo{{*ino, path}};
  for (size_t k = 0; k < todo.size(); ++k) {
    auto [dir, dpath] = todo[k];
    auto d = img.opendir(dir);
    if (!d.ok()) {
      auto a = img.stat(dir);
      if (!a.ok()) return Fail(a.status());
      PrintLong(img, *a, dpath);
      continue;
    }
    if (recursive) std::printf("%s:\n", Q(dpath).c_str());
    for (size_t i = 0; i < d->size(); ++i) {
      auto e = d->entry(i);
      if (!e.ok()) return Fail(e.status());
      auto a = img.stat(e->ino);
      if (!a.ok()) return Fail(a.status());
      PrintLong(img, *a, std::string(e->name));
      if (recursive && S_ISDIR(a->mode))
        todo.emplace_back(e->ino, (dpath == "/" ? "" : dpath) + "/" + std::string(e->name));
    }
  }
  return 0;
}

int CmdStat(const Image& img, const std::string& path) {
  auto ino = img.resolve(path);
  if (!ino.ok()) return Fail(ino.status());
  if (g_json) {
    std::string error;
    auto j = daxfs::tools::StatJson(img, *ino, path, &error);
    if (j.is_null()) {
      std::fprintf(stderr, "daxfs: %s\n", EscapeControls(error).c_str());
      return 1;
    }
    daxfs::tools::PrintJson(j);
    return 0;
  }
  auto a = img.stat(*ino);
  if (!a.ok()) return Fail(a.status());
  PrintLong(img, *a, path);
  auto ext = img.extent(*ino);
  if (auto obj = img.object_path(*ino); obj.ok())
    std::printf("  data: object %s\n", Q(*obj).c_str());
  else if (ext.ok() && ext->length)
    std::printf("  data: region offset %" PRIu64 ", %" PRIu64 " bytes\n", ext->offset, ext->length);
  daxfs::Status st = img.list_xattrs(*ino, [](std::string_view n, std::span<const std::byte> v) {
    std::printf("  xattr %s (%zu bytes)\n", Q(n).c_str(), v.size());
  });
  return st.ok() ? 0 : Fail(st);
}

int CmdCat(const Image& img, const std::string& path) {
  auto ino = img.resolve(path);
  if (!ino.ok()) return Fail(ino.status());
  auto data = img.contents(*ino);
  if (!data.ok()) return Fail(data.status().WithContext(path));
  // Chunk by chunk, each chunk's pages mapped first in one call (Prefetch:
  // no fault per page) or, where that fails, touched one by one: memory that
  // cannot be provided then trips the library's guard here (and is
  // reported) rather than turning into zeros on stdout.
  // Into a pipe, the chunk's pages themselves go into a 1 MiB pipe
  // (vmsplice: no copy, the image never changes); otherwise write(2).
  constexpr size_t kChunk = 1u << 20;
  const size_t page = static_cast<size_t>(sysconf(_SC_PAGESIZE));
  struct stat out_st;
  // (Not from a region the kernel cannot pin, a BAR: vmsplice would EFAULT.)
  bool splice_out = fstat(STDOUT_FILENO, &out_st) == 0 && S_ISFIFO(out_st.st_mode) &&
                    img.region().kernel_can_pin();
  if (splice_out) (void)fcntl(STDOUT_FILENO, F_SETPIPE_SZ, static_cast<int>(kChunk));
  for (size_t start = 0; start < data->size(); start += kChunk) {
    const size_t end = std::min(data->size(), start + kChunk);
    if (!daxfs::Prefetch(img.region(), data->subspan(start, end - start)).ok())
      for (size_t p = start; p < end; p += page) (void)*static_cast<const volatile std::byte*>(data->data() + p);
    if (!img.region().status().ok()) return Fail(img.region().status());
    for (size_t off = start; off < end;) {
      ssize_t n;
      if (splice_out) {
        iovec v{const_cast<std::byte*>(data->data() + off), end - off};
        n = vmsplice(STDOUT_FILENO, &v, 1, 0);
        if (n < 0 && (errno == EINVAL || errno == ENOSYS || errno == EBADF)) {
          splice_out = false;  // not a pipe after all: write
          continue;
        }
      } else {
        n = write(STDOUT_FILENO, data->data() + off, end - off);
      }
      if (n < 0) {
        if (errno == EINTR) continue;
        if (errno == EFAULT)
          return Fail(daxfs::Status::IOError(
              img.region().name() + ": cannot read region offset " +
                  std::to_string(static_cast<uint64_t>(data->data() + off - img.region().bytes().data())) +
                  " (the memory behind the image cannot be provided)", EFAULT));
        return Fail(daxfs::Status::IOError("stdout", errno));
      }
      off += static_cast<size_t>(n);
    }
  }
  return 0;
}

daxfs::ExtractOptions ExtractOpts(bool no_owners) {
  daxfs::ExtractOptions eo;
  eo.owners = !no_owners;
  eo.warn = [](const std::string& m) { std::fprintf(stderr, "daxfs: warning: %s\n", EscapeControls(m).c_str()); };
  return eo;
}

// `daxfs extract REGION DIR --branch NAME`: a live view of the branch; what
// commits meanwhile into its parent is not seen (a branch keeps its snapshot).
int CmdExtractBranch(const std::string& region, const std::string& name, const std::string& path,
                     const std::string& dest, bool no_owners) {
  auto store = daxfs::BranchStore::Open(region);
  if (!store.ok()) return Fail(store.status());
  auto b = (*store)->OpenBranch(name, false);
  if (!b.ok()) return Fail(b.status().WithContext(region + " branch " + name));
  const daxfs::Region& r = (*store)->region();
  daxfs::Status s = daxfs::Extract(**b, path, dest, ExtractOpts(no_owners), [&r] { return r.status(); });
  if (s.ok() && !r.status().ok()) s = r.status();
  return s.ok() ? 0 : Fail(s);
}

int CmdCheck(const std::shared_ptr<const Image>& image, bool no_data, bool quiet) {
  const Image& img = *image;
  daxfs::CheckOptions o;
  o.verify_data = !no_data;
  // Findings about zeros read after a bus error are noise: report only the loss.
  auto intact = [&img] { return img.region().status().ok(); };
  std::vector<std::string> problems, warnings;  // --json
  o.report = [&, intact](const std::string& m) {
    if (!intact()) return;
    if (g_json) problems.push_back(m);
    else std::printf("error: %s\n", EscapeControls(m).c_str());
  };
  o.warn = [&, quiet, intact](const std::string& m) {
    if (!intact()) return;
    if (g_json) warnings.push_back(m);
    else if (!quiet) std::printf("warning: %s\n", EscapeControls(m).c_str());
  };
  auto r = daxfs::CheckImage(img, o);
  // The EROFS view (mkdaxfs --erofs) must describe the same tree.
  r.problems += daxfs::CheckErofsView(image, o).problems;
  if (!img.region().status().ok()) {
    Fail(img.region().status());
    return 8;  // the checks above ran on zeros: no verdict on the image
  }
  if (g_json) {
    daxfs::tools::PrintJson(daxfs::tools::CheckJson(img.region().name(), r.inodes_reached, r.entries, problems, warnings));
    return r.problems ? 4 : 0;
  }
  if (!quiet || r.problems)
    std::printf("%s: %" PRIu64 " inodes, %" PRIu64 " entries checked: %" PRIu64 " problem(s), %" PRIu64 " warning(s)\n",
                EscapeControls(img.region().name()).c_str(), r.inodes_reached, r.entries, r.problems, r.warnings);
  return r.problems ? 4 : 0;  // fsck's "errors left uncorrected"
}

int CmdLoad(const Image& img, const std::string& dest, bool quiet) {
  const uint64_t size = img.info().total_size;
  // memfd:SOCKET names a memfd another process serves; a copy made here
  // would be a memfd nobody can reach once this process exits.
  if (dest.rfind("memfd:", 0) == 0)
    return Fail(daxfs::Status::InvalidArgument(
        dest + ": load cannot fill a memfd served by another process (a served image is sealed read-only); "
               "to share this image as a memfd run: daxfs serve IMAGE " + dest.substr(6)));
  auto region = daxfs::Region::Create(dest, size);
  if (!region.ok()) return Fail(region.status());
  auto src = img.region().bytes().first(size);
  auto dst = (*region)->writable_bytes();
  daxfs::tools::ProgressLine progress(!quiet);
  daxfs::BuildProgress p;
  p.phase = "loading";
  p.bytes_total = size;
  constexpr size_t kChunk = 16u << 20;
  for (uint64_t off = 0; off < size; off += kChunk) {
    const size_t n = static_cast<size_t>(std::min<uint64_t>(kChunk, size - off));
    std::memcpy(dst.data() + off, src.data() + off, n);
    // A source that lost its memory copied zeros: stop before publishing.
    if (!img.region().status().ok()) return Fail(img.region().status());
    if (!(*region)->status().ok()) return Fail((*region)->status());
    p.bytes_done = off + n;
    progress.Update(p);
  }
  progress.Finish();
  // Whatever followed a previous, larger image is cleared (fixed regions).
  if (dst.size() > size) std::memset(dst.data() + size, 0, dst.size() - size);
  daxfs::OpenOptions same_objects;
  same_objects.object_dir = img.info().object_dir;  // object-store images: the same objects
  auto check = Image::Open(*region, same_objects);
  if (!check.ok()) return Fail(check.status().WithContext("verifying the loaded copy"));
  if (auto st = (*region)->Publish(); !st.ok()) return Fail(st);
  if (!quiet)
    std::printf("loaded %s into %s (%" PRIu64 " bytes, region %zu bytes)\n",
                EscapeControls(img.region().name()).c_str(), EscapeControls((*region)->name()).c_str(),
                size, dst.size());
  return 0;
}

int CmdServe(const Image& img, const std::string& socket, bool hugetlb, const std::string& heap,
             bool quiet) {
  if (auto st = daxfs::tools::CheckSocketPath(socket); !st.ok()) return Fail(st);
  auto src = img.region().bytes().first(img.info().total_size);
  // The copy below is made by the kernel, where lost memory is a bare
  // EFAULT: touch every page here first so the guard can say what happened.
  const size_t page = static_cast<size_t>(sysconf(_SC_PAGESIZE));
  for (size_t p = 0; p < src.size(); p += page) (void)*static_cast<const volatile std::byte*>(src.data() + p);
  if (!img.region().status().ok()) return Fail(img.region().status());
  auto region = heap.empty() ? daxfs::Region::SealedMemfd(src, "daxfs:" + img.region().name(), hugetlb)
                             : daxfs::Region::DmaHeapCopy(src, heap);
  if (!region.ok()) return Fail(region.status());
  if (!quiet)
    std::printf("serving %s (%zu bytes%s, %s) on %s; clients use memfd:%s\n",
                EscapeControls(img.region().name()).c_str(), src.size(), hugetlb ? ", huge pages" : "",
                heap.empty() ? "sealed memfd" : ("dma-buf from heap " + EscapeControls(heap)).c_str(),
                EscapeControls(socket).c_str(), EscapeControls(socket).c_str());
  std::fflush(stdout);
  daxfs::Status st = daxfs::tools::ServeUntilInterrupted(**region, socket);
  return st.ok() ? 0 : Fail(st);
}

}  // namespace

int main(int argc, char** argv) {
  std::setlocale(LC_CTYPE, "");  // which characters are printable, for quoting
  // extract holds one descriptor per directory level: allow deep trees.
  if (rlimit rl; getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
    rl.rlim_cur = rl.rlim_max;
    setrlimit(RLIMIT_NOFILE, &rl);
  }
  std::string prog = argv[0];
  prog = prog.substr(prog.rfind('/') + 1);
  const bool as_fsck = prog.rfind("fsck", 0) == 0;

  CLI::App app{"Inspect, verify and extract daxfs images.\n\n"
               "IMAGE may be a file path or a region descriptor (shm:/NAME, hugetlbfs:PATH,\n"
               "dax:/dev/daxX.Y, phys:0xADDR+SIZE, resource:PATH, fd:N, memfd:SOCKET).",
               prog};
  app.require_subcommand(as_fsck ? 0 : 1, 1);
  std::string image, path = "/", dest;
  bool recursive = false, no_data = false, quiet = false, verify = false, no_owners = false;

  auto add_image = [&](CLI::App* sub) { sub->add_option("IMAGE", image, "Image or region")->required(); };
  std::string object_dir;
  app.add_option("--objects", object_dir,
                 "Object directory of an object-store image (default: the one the image records)")
      ->type_name("OBJDIR");
  auto* info = app.add_subcommand("info", "Show the superblock and image summary");
  add_image(info);
  info->add_flag("--verify", verify, "Also verify the metadata checksum");
  info->add_flag("--json", g_json, "One JSON object (schema daxfs.info/1, docs/JSON.md)");
  bool config_json = false;
  info->add_flag("--config", config_json,
                 "Print the container image config recorded by mkdaxfs (OCI image config JSON) and nothing else");
  auto* ls = app.add_subcommand("ls", "List a directory with inode metadata");
  add_image(ls);
  ls->add_option("PATH", path, "Path inside the image (default /)");
  ls->add_flag("-R,--recursive", recursive, "List subdirectories too");
  std::string quoting_style;
  bool escape = false, literal = false;
  auto add_quoting = [&](CLI::App* sub) {
    sub->add_flag("-b,--escape", escape, "Print C-style escapes for nongraphic characters in names");
    sub->add_flag("-N,--literal", literal, "Print names as they are, even on a terminal");
    sub->add_option("--quoting-style", quoting_style,
                    "literal, shell-escape or escape (default: shell-escape on a terminal, else literal)");
  };
  add_quoting(ls);
  auto* st = app.add_subcommand("stat", "Show one inode: metadata, data location, xattrs");
  add_image(st);
  st->add_option("PATH", path, "Path inside the image")->required();
  st->add_flag("--json", g_json, "One JSON object (schema daxfs.stat/1, docs/JSON.md)");
  add_quoting(st);
  auto* cat = app.add_subcommand("cat", "Write a file's contents to stdout");
  add_image(cat);
  cat->add_option("PATH", path, "Path inside the image")->required();
  auto* check = app.add_subcommand("check", "Verify the whole image (fsck); exit 4 on problems");
  add_image(check);
  check->alias("fsck");
  check->add_flag("--no-data", no_data, "Skip the file data checksum");
  check->add_flag("-q,--quiet", quiet, "Print only problems");
  check->add_flag("--json", g_json, "One JSON object with every problem and warning (schema daxfs.check/1, docs/JSON.md)");
  auto* extract = app.add_subcommand("extract", "Write the tree out to a directory with all metadata");
  add_image(extract);
  extract->add_option("DIR", dest, "Destination directory (created if missing)")->required();
  extract->add_option("--path", path, "Extract only this subtree (default /)");
  extract->add_flag("--no-owners", no_owners, "Do not restore uid/gid");
  std::string branch_name;
  extract->add_option("--branch", branch_name,
                      "IMAGE is a branch region: extract this branch (or main) as it is now");

  std::string region_spec, socket;
  bool hugetlb = false;
  auto* load = app.add_subcommand("load", "Copy an image into a region (shm:, hugetlbfs:, dax:, phys:, ...)");
  add_image(load);
  load->add_option("REGION,--to", region_spec, "Destination region descriptor")->required();
  load->add_flag("-q,--quiet", quiet, "No progress or summary");
  auto* serve = app.add_subcommand("serve", "Hold an image in a sealed memfd and hand it out over a Unix socket");
  add_image(serve);
  serve->add_option("SOCKET", socket, "Unix socket path to listen on")->required();
  serve->add_flag("--hugetlb", hugetlb, "Back the memfd with 2 MiB huge pages");
  std::string heap;
  serve->add_option("--dma-heap", heap, "Hold the image in a dma-buf from /dev/dma_heap/NAME instead");
  serve->add_flag("-q,--quiet", quiet, "No banner");

  if (as_fsck) {  // fsck.daxfs IMAGE
    app.add_option("IMAGE", image, "Image to check");
    app.add_flag("-q,--quiet", quiet, "Print only problems");
    app.add_flag("--no-data", no_data, "Skip the file data checksum");
    app.add_flag("--json", g_json, "One JSON object with every problem and warning (schema daxfs.check/1, docs/JSON.md)");
  }
  auto branch = daxfs::tools::AddBranchCommand(app);
  app.set_version_flag("-V,--version", "daxfs 0.1.0");
  DAXFS_PARSE_OR_EXIT(app, argc, argv);
  if (branch.app->parsed()) return branch.run();

  g_quoting = daxfs::tools::DefaultQuoting(STDOUT_FILENO);
  if (!quoting_style.empty() && !daxfs::tools::ParseQuoting(quoting_style, &g_quoting)) {
    std::fprintf(stderr, "daxfs: --quoting-style: expected literal, shell-escape or escape, not %s\n",
                 EscapeControls(quoting_style).c_str());
    return 2;
  }
  if (escape) g_quoting = Quoting::kEscape;
  if (literal) g_quoting = Quoting::kLiteral;

  if (extract->parsed() && !branch_name.empty()) return CmdExtractBranch(image, branch_name, path, dest, no_owners);

  const bool fsck_like = as_fsck || check->parsed();
  daxfs::OpenOptions oo;
  oo.verify_metadata = verify;
  oo.object_dir = object_dir;
  // The region first, so a bus error while opening is reported as such.
  auto region = daxfs::Region::Open(image, daxfs::Access::kReadOnly);
  if (!region.ok()) {
    int rc = Fail(region.status());
    return fsck_like ? 8 : rc;  // fsck: operational error
  }
  g_region = region->get();
  auto img = Image::Open(*region, oo);
  if (!img.ok()) {
    int rc = Fail(img.status());
    return fsck_like ? 8 : rc;
  }
  const Image& i = **img;
  int rc = 0;
  if (info->parsed()) rc = CmdInfo(i, config_json);
  else if (ls->parsed()) rc = CmdLs(i, path, recursive);
  else if (st->parsed()) rc = CmdStat(i, path);
  else if (cat->parsed()) rc = CmdCat(i, path);
  else if (fsck_like && (i.info().features_incompat & daxfs::format::kFeatureBranchRegion)) {
    // The base image alone would pass while a branch log is damaged.
    if (g_json) {
      std::fprintf(stderr, "daxfs: %s is a branch region: its check (daxfs branch check) has no --json yet\n",
                   EscapeControls(image).c_str());
      return 2;
    }
    rc = daxfs::tools::CheckBranchRegion(image, quiet);
  } else if (fsck_like) rc = CmdCheck(*img, no_data, quiet);
  else if (load->parsed()) rc = CmdLoad(i, region_spec, quiet);
  else if (serve->parsed()) rc = CmdServe(i, socket, hugetlb, heap, quiet);
  else if (extract->parsed()) {
    daxfs::Status s = daxfs::Extract(i, path, dest, ExtractOpts(no_owners));
    rc = s.ok() ? 0 : Fail(s);
  }
  // Output made from zeros after a bus error is not a success.
  if (rc == 0 && !g_region->status().ok()) rc = Fail(g_region->status());
  return rc;
}
