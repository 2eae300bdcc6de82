// libFuzzer target: parse arbitrary bytes as a safetensors file. An accepted
// file's tensors must tile its data area exactly and every byte of every
// tensor is read (ASan flags any span outside the input).
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <vector>

#include "daxfs/safetensors.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  // An exactly sized heap copy, so ASan flags any read past the end.
  std::vector<std::byte> copy(reinterpret_cast<const std::byte*>(data),
                              reinterpret_cast<const std::byte*>(data) + size);
  auto h = daxfs::safetensors::Parse(copy);
  if (!h.ok()) return 0;
  uint64_t total = 0;
  unsigned sum = 0;
  for (const auto& t : h->tensors) {
    total += t.data.size();
    for (std::byte b : t.data) sum += static_cast<unsigned>(b);
    if (t.data.size() != t.end - t.begin || t.file_offset != h->data_offset + t.begin) abort();
  }
  if (h->data_offset + total != size) abort();
  (void)sum;
  return 0;
}
