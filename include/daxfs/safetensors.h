// safetensors: zero-copy access to the tensors of a .safetensors file held in
// memory (typically a file inside a daxfs image), without the safetensors
// library.
//
// File layout (https://github.com/huggingface/safetensors): an 8-byte
// little-endian header length N, N bytes of UTF-8 JSON (an object mapping
// tensor names to {"dtype", "shape", "data_offsets": [begin, end]} plus an
// optional "__metadata__" object of strings, possibly padded with trailing
// spaces), then the data area; offsets are relative to the data area.
//
// Parse() is strict in the way the reference implementation is, and checks
// everything before handing out a span: the header length against the file,
// UTF-8, JSON syntax (nesting depth bounded), known dtypes, element counts
// without overflow, bytes = elements x dtype size, data_offsets in order,
// inside the data area, neither overlapping nor leaving gaps, and covering
// the data area exactly. A malformed file yields Status::Corruption whose
// message says what is wrong and where; nothing reads outside `file`.
//
// Lazy: Parse reads the 8 + N header bytes only. The tensors' spans point
// into `file` and are not touched, so "opening" a 100 GB model costs the
// header. Tensor data is valid while `file` is (for an Image: while the
// Image lives).
//
// Alignment: a tensor starts at file offset 8 + N + begin. In a daxfs image
// a file of 4 KiB or more starts 4 KiB-aligned, so a tensor's address modulo
// any power of two up to 4096 is (8 + N + begin) modulo it; writers such as
// the safetensors library pad the header with spaces so that 8 + N is a
// multiple of 8. See docs/PYTHON.md.
#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "daxfs/export.h"
#include "daxfs/image.h"
#include "daxfs/status.h"

namespace daxfs::safetensors {

// Every dtype the safetensors format defines.
enum class DType : uint8_t {
  kBool, kU8, kI8, kF8_E5M2, kF8_E4M3, kF8_E8M0, kI16, kU16, kF16, kBF16,
  kI32, kU32, kF32, kC64, kF64, kI64, kU64, kF4, kF6_E2M3, kF6_E3M2,
};

// "F32", "BF16", ... as written in headers.
DAXFS_EXPORT std::string_view DTypeName(DType dtype);
// Bits per element (4 for F4, 6 for the F6 types, 8 x bytes otherwise).
uint32_t DTypeBits(DType dtype);
// The dtype named `name`, if the format defines it.
DAXFS_EXPORT std::optional<DType> ParseDType(std::string_view name);

struct Tensor {
  std::string name;
  DType dtype = DType::kU8;
  std::vector<uint64_t> shape;
  uint64_t elements = 0;    // product of shape (1 for a scalar)
  uint64_t begin = 0;       // data_offsets, relative to the data area
  uint64_t end = 0;
  uint64_t file_offset = 0; // 8 + N + begin: where the bytes start in the file
  std::span<const std::byte> data;  // [file_offset, file_offset + end - begin)
};

struct DAXFS_EXPORT Header {
  uint64_t header_length = 0;  // N
  uint64_t data_offset = 0;    // 8 + N
  std::vector<Tensor> tensors; // in header order
  std::vector<std::pair<std::string, std::string>> metadata;  // "__metadata__", in order

  // The tensor named `name`, or nullptr.
  const Tensor* find(std::string_view name) const;
};

struct ParseOptions {
  // Longest header accepted (the reference implementation's limit).
  uint64_t max_header_length = 100ull << 20;
  // Most dimensions accepted for one tensor.
  size_t max_rank = 64;
};

// Parses the safetensors file whose bytes are `file`.
DAXFS_EXPORT Result<Header> Parse(std::span<const std::byte> file, const ParseOptions& options = {});

// Parses the regular file at `path` inside `image`; spans point into the
// image's mapping.
DAXFS_EXPORT Result<Header> ParseFile(const Image& image, std::string_view path,
                                      const ParseOptions& options = {});

}  // namespace daxfs::safetensors
