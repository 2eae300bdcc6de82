// mkdaxfs: build a daxfs image from a directory or a tar archive.
#include <sys/stat.h>

#include "common/cli.h"
#include <chrono>
#include <clocale>
#include <cstdio>
#include <cstdlib>
#include <cstring>

#include "common/progress.h"
#include "common/quote.h"
#include "daxfs/branch.h"
#include "daxfs/builder.h"
#include "daxfs/format.h"
#include "daxfs/fs_view.h"
#include "daxfs/image.h"

namespace {

bool ParseTime(const std::string& s, int64_t* out) {
  char* end = nullptr;
  errno = 0;
  long long v = std::strtoll(s.c_str(), &end, 10);
  if (errno != 0 || end == s.c_str() || *end != '\0') return false;
  *out = v;
  return true;
}

// Whether `path` is a daxfs image (to be converted) rather than an archive.
bool IsDaxfsImage(const std::string& path) {
  FILE* f = std::fopen(path.c_str(), "rb");
  if (f == nullptr) return false;
  uint32_t magic = 0;
  const bool got = std::fread(&magic, sizeof magic, 1, f) == 1;
  std::fclose(f);
  return got && magic == daxfs::format::kSuperMagic;
}

// Rebuilds an existing image (any form) with these options.
daxfs::Result<daxfs::BuildStats> ConvertImage(const std::string& source, const std::string& output,
                                              const daxfs::BuildOptions& opts) {
  DAXFS_ASSIGN_OR_RETURN(auto image, daxfs::Image::Open(source));
  return daxfs::ExportView(*daxfs::MakeImageView(image), output, opts);
}

}  // namespace

int main(int argc, char** argv) {
  std::setlocale(LC_CTYPE, "");  // which characters are printable in messages
  CLI::App app{
      "Build a daxfs image from a directory, a tar archive or a container image.\n\n"
      "Files of 4 KiB and more start on a 4 KiB boundary so they can be mapped\n"
      "in place; smaller files are packed together and identical contents are\n"
      "stored once. Directories use the compact layout unless --upstream-readable\n"
      "or --upstream asks for images the upstream daxfs v5 kernel module reads.\n"
      "Output is reproducible: the same input gives the same bytes (set\n"
      "SOURCE_DATE_EPOCH or --all-time to pin timestamps).\n\n"
      "Container images (the root filesystem, layers applied with their\n"
      "whiteouts, every blob checked against its digest, the config recorded):\n"
      "  mkdaxfs app.img oci-archive:app.tar        podman save --format oci-archive\n"
      "  mkdaxfs app.img docker-archive:app.tar     docker save, podman save\n"
      "  mkdaxfs app.img oci:DIR[:REF]              an OCI layout (skopeo copy ... oci:DIR)",
      "mkdaxfs"};
  std::string output, source, label;
  bool tar = false, quiet = false, no_xattrs = false, upstream = false, all_root = false;
  bool upstream_readable = false, no_pack = false, no_dedup = false, erofs = false, no_erofs = false;
  std::string all_time, uid, gid, object_dir, platform;
  app.add_option("IMAGE", output, "Image file to write (replaced atomically)")->required();
  app.add_option("SOURCE", source,
                 "Directory, tar archive (.tar, .tar.gz, .tar.zst, ...), container image "
                 "(oci:DIR[:REF], oci-archive:FILE[:REF], docker-archive:FILE[:REPO:TAG]) or a daxfs "
                 "image to convert (e.g. to the object-store form)")
      ->required();
  app.add_flag("--tar", tar, "Treat SOURCE as a tar archive (default: guessed from SOURCE)");
  bool per_layer = false;
  app.add_flag("--per-layer", per_layer,
               "Container images: one image per layer in the directory IMAGE (named by the layer's digest; "
               "whiteouts kept as OverlayFS whiteouts; layers already there are reused), to be stacked with "
               "OverlayFS, instead of one image of the whole tree");
  app.add_option("--platform", platform,
                 "Container images: the platform to take from a multi-platform image, OS/ARCH[/VARIANT] "
                 "(default: this machine's, e.g. linux/amd64)");
  app.add_option("-L,--label", label, "Volume label (up to 63 bytes)");
  app.add_option("-T,--all-time", all_time,
                 "Set every mtime to this UNIX time (default: keep; SOURCE_DATE_EPOCH clamps)");
  app.add_flag("--all-root", all_root, "Make every file owned by root (uid 0, gid 0)");
  app.add_option("--force-uid", uid, "Make every file owned by this uid");
  app.add_option("--force-gid", gid, "Make every file owned by this gid");
  app.add_flag("--no-xattrs", no_xattrs, "Do not store extended attributes");
  app.add_flag("--upstream-readable", upstream_readable,
               "Use upstream v5 directories (272 bytes per entry) so the upstream daxfs kernel "
               "module can read the image; daxfs extensions are kept in reserved fields");
  app.add_flag("--upstream", upstream,
               "Write a plain upstream v5 image (no mtimes, xattrs, device numbers, checksums)");
  app.add_flag("--no-pack", no_pack,
               "Give every file its own 4 KiB blocks (every file mappable in place)");
  app.add_flag("--no-dedup", no_dedup, "Store identical file contents once per file");
  auto* erofs_flag = app.add_flag("--erofs", erofs,
               "Write the EROFS view whatever it costs (by default it is written where it adds at most "
               "5% to the image: the kernel's EROFS driver then mounts the same image with mount -t erofs, "
               "sharing every file's bytes with daxfs); fail if the tree cannot have one");
  app.add_flag("--no-erofs", no_erofs, "Do not write the EROFS view")->excludes(erofs_flag);
  app.add_option("--objects", object_dir,
                 "Object-store form: write each file's contents to OBJDIR/ab/cdef... (named by "
                 "its SHA-256, shared with other images there) and only metadata to IMAGE; "
                 "IMAGE records OBJDIR's absolute path")
      ->type_name("OBJDIR");
  app.add_flag("-q,--quiet", quiet, "No progress display and no summary");
  app.set_version_flag("-V,--version", "mkdaxfs 0.1.0");
  DAXFS_PARSE_OR_EXIT(app, argc, argv);

  daxfs::BuildOptions opts;
  opts.label = label;
  opts.xattrs = !no_xattrs;
  opts.upstream_only = upstream;
  opts.compact_dirs = !upstream && !upstream_readable;
  opts.pack_small_files = !no_pack;
  opts.dedup = !no_dedup;
  opts.erofs = erofs      ? daxfs::BuildOptions::Erofs::kAlways
               : no_erofs ? daxfs::BuildOptions::Erofs::kNever
                          : daxfs::BuildOptions::Erofs::kAuto;
  opts.object_dir = object_dir;
  if (app.count("--objects") && object_dir.empty()) {
    std::fprintf(stderr, "mkdaxfs: --objects: the object directory path is empty\n");
    return 2;
  }
  if (label.size() > 63) {
    std::fprintf(stderr, "mkdaxfs: label longer than 63 bytes\n");
    return 2;
  }
  int64_t t;
  if (!all_time.empty()) {
    if (!ParseTime(all_time, &t)) {
      std::fprintf(stderr, "mkdaxfs: --all-time: not a UNIX time: %s\n", all_time.c_str());
      return 2;
    }
    opts.all_time = t;
  }
  if (const char* sde = std::getenv("SOURCE_DATE_EPOCH"); sde != nullptr && *sde != '\0') {
    if (!ParseTime(sde, &t)) {
      std::fprintf(stderr, "mkdaxfs: SOURCE_DATE_EPOCH is not a UNIX time: %s\n", sde);
      return 2;
    }
    opts.clamp_time = t;
  }
  auto parse_id = [](const std::string& s, const char* what, std::optional<uint32_t>* out) {
    int64_t v;
    if (!ParseTime(s, &v) || v < 0 || v > UINT32_MAX) {
      std::fprintf(stderr, "mkdaxfs: %s: not a numeric id: %s\n", what, s.c_str());
      return false;
    }
    *out = static_cast<uint32_t>(v);
    return true;
  };
  if (all_root) opts.force_uid = opts.force_gid = 0u;
  if (!uid.empty() && !parse_id(uid, "--force-uid", &opts.force_uid)) return 2;
  if (!gid.empty() && !parse_id(gid, "--force-gid", &opts.force_gid)) return 2;

  opts.platform = platform;
  const bool container = daxfs::IsContainerImageRef(source);
  struct stat st;
  if (container) {
    st = {};
    st.st_mode = S_IFDIR;  // neither a tar nor an image to convert
  } else if (stat(source.c_str(), &st) != 0) {
    std::fprintf(stderr, "mkdaxfs: %s: %s\n", daxfs::tools::EscapeControls(source).c_str(),
                 std::strerror(errno));
    return 1;
  }
  if (!S_ISDIR(st.st_mode)) tar = true;
  // Only a regular file is probed: opening a FIFO would block.
  const bool image_source = S_ISREG(st.st_mode) && IsDaxfsImage(source);

  if (per_layer) {
    if (!container) {
      std::fprintf(stderr, "mkdaxfs: --per-layer takes a container image (oci:, oci-archive:, docker-archive:)\n");
      return 2;
    }
    daxfs::tools::ProgressLine progress(!quiet);
    opts.progress = [&](const daxfs::BuildProgress& p) { progress.Update(p); };
    auto layers = daxfs::BuildLayerImages(source, output, opts);
    progress.Finish();
    if (!layers.ok()) {
      std::fprintf(stderr, "mkdaxfs: %s\n", daxfs::tools::EscapeControls(layers.status().ToString()).c_str());
      return 1;
    }
    if (!quiet) {
      std::string lower;
      for (size_t i = 0; i < layers->size(); ++i) {
        const auto& l = (*layers)[i];
        std::printf("layer %zu: %s (%s)\n", i + 1, daxfs::tools::EscapeControls(l.path).c_str(),
                    l.reused ? "already there" : (daxfs::tools::HumanBytes(l.stats.image_size) + " written").c_str());
        lower = "/mnt/layer" + std::to_string(i + 1) + (lower.empty() ? "" : ":") + lower;
      }
      std::printf("stack them: mount -t erofs -o ro,loop LAYER.img /mnt/layerN (or daxfs-mount), then\n"
                  "  mount -t overlay overlay -o lowerdir=%s,upperdir=U,workdir=W /mnt/root\n", lower.c_str());
    }
    return 0;
  }
  daxfs::tools::ProgressLine progress(!quiet);
  opts.progress = [&](const daxfs::BuildProgress& p) { progress.Update(p); };
  const auto start = std::chrono::steady_clock::now();
  auto result = container      ? daxfs::BuildFromContainerImage(source, output, opts)
                : image_source ? ConvertImage(source, output, opts)
                : tar        ? daxfs::BuildFromTar(source, output, opts)
                             : daxfs::BuildFromDirectory(source, output, opts);
  progress.Finish();
  if (!result.ok()) {
    std::fprintf(stderr, "mkdaxfs: %s\n", daxfs::tools::EscapeControls(result.status().ToString()).c_str());
    return 1;
  }
  // A tree that cannot have the EROFS view (default: written when possible).
  if (!quiet && !result->erofs_skipped.empty() && !upstream)
    std::fprintf(stderr, "mkdaxfs: note: no EROFS view: %s\n",
                 daxfs::tools::EscapeControls(result->erofs_skipped).c_str());
  if (!quiet) {
    const double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
    const auto& s = *result;
    using daxfs::tools::HumanBytes;
    std::printf("%s: %llu inodes (%llu files, %llu dirs, %llu symlinks, %llu special, %llu extra hard links)\n",
                daxfs::tools::EscapeControls(output).c_str(), (unsigned long long)s.inodes, (unsigned long long)s.regular_files,
                (unsigned long long)s.directories, (unsigned long long)s.symlinks,
                (unsigned long long)s.special_files, (unsigned long long)s.hardlinks);
    if (!s.container_image.empty())
      std::printf("  from %s: %llu layers\n", daxfs::tools::EscapeControls(s.container_image).c_str(),
                  (unsigned long long)s.layers);
    std::printf("  file data %s, metadata %s, image %s, built in %.2fs\n",
                HumanBytes(s.file_bytes).c_str(), HumanBytes(s.metadata_size).c_str(),
                HumanBytes(s.image_size).c_str(), secs);
    std::printf("  %llu small files packed, %llu duplicate files stored once (%s saved)\n",
                (unsigned long long)s.packed_files, (unsigned long long)s.duplicate_files,
                HumanBytes(s.duplicate_bytes).c_str());
    if (s.erofs_bytes)
      std::printf("  EROFS view: %s more (inodes and directories; %s of small files stored inline)\n",
                  HumanBytes(s.erofs_bytes).c_str(), HumanBytes(s.inline_bytes).c_str());
    if (!opts.object_dir.empty())
      std::printf("  objects: %llu written (%s), %llu already there (%s)\n",
                  (unsigned long long)s.objects_written, HumanBytes(s.object_bytes_written).c_str(),
                  (unsigned long long)s.objects_reused, HumanBytes(s.object_bytes_reused).c_str());
  }
  return 0;
}
