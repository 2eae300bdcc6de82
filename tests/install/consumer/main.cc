// Prints one file of a daxfs image to stdout, read in place (a span into
// the image's mapping): daxfs_consumer IMAGE PATH.
#include <cstdio>

#include <daxfs/image.h>

int main(int argc, char** argv) {
  if (argc != 3) {
    std::fprintf(stderr, "usage: %s IMAGE PATH\n", argv[0]);
    return 2;
  }
  auto image = daxfs::Image::Open(argv[1]);
  if (!image.ok()) {
    std::fprintf(stderr, "%s\n", image.status().ToString().c_str());
    return 1;
  }
  auto ino = (*image)->resolve(argv[2]);
  if (!ino.ok()) {
    std::fprintf(stderr, "%s\n", ino.status().ToString().c_str());
    return 1;
  }
  auto data = (*image)->pin(*ino);
  if (!data.ok()) {
    std::fprintf(stderr, "%s\n", data.status().ToString().c_str());
    return 1;
  }
  std::fwrite(data->bytes.data(), 1, data->bytes.size(), stdout);
  return 0;
}
