// The safetensors header parser (see include/daxfs/safetensors.h).
#include "daxfs/safetensors.h"

#include <sys/stat.h>

#include <algorithm>
#include <cstring>
#include <unordered_set>

#include "safetensors/json.h"

namespace daxfs::safetensors {
namespace {

struct DTypeEntry {
  DType dtype;
  std::string_view name;
  uint32_t bits;
};

constexpr DTypeEntry kDTypes[] = {
    {DType::kBool, "BOOL", 8},       {DType::kU8, "U8", 8},
    {DType::kI8, "I8", 8},           {DType::kF8_E5M2, "F8_E5M2", 8},
    {DType::kF8_E4M3, "F8_E4M3", 8}, {DType::kF8_E8M0, "F8_E8M0", 8},
    {DType::kI16, "I16", 16},        {DType::kU16, "U16", 16},
    {DType::kF16, "F16", 16},        {DType::kBF16, "BF16", 16},
    {DType::kI32, "I32", 32},        {DType::kU32, "U32", 32},
    {DType::kF32, "F32", 32},        {DType::kC64, "C64", 64},
    {DType::kF64, "F64", 64},        {DType::kI64, "I64", 64},
    {DType::kU64, "U64", 64},        {DType::kF4, "F4", 4},
    {DType::kF6_E2M3, "F6_E2M3", 6}, {DType::kF6_E3M2, "F6_E3M2", 6},
};

std::string Quote(std::string_view s) {
  // Names come from untrusted input: keep messages printable and short.
  std::string out = "'";
  size_t n = 0;
  for (unsigned char c : s) {
    if (++n > 200) {
      out += "...";
      break;
    }
    if (c < 0x20 || c == 0x7f || c == '\\' || c == '\'') {
      static const char kHex[] = "0123456789abcdef";
      out += "\\x";
      out += kHex[c >> 4];
      out += kHex[c & 15];
    } else {
      out += static_cast<char>(c);
    }
  }
  return out + "'";
}

Status Bad(const std::string& msg) { return Status::Corruption("safetensors: " + msg); }

std::string Range(uint64_t b, uint64_t e) {
  return "[" + std::to_string(b) + ", " + std::to_string(e) + ")";
}

Status ParseTensor(const std::string& name, const json::Value& v, const ParseOptions& options,
                   Tensor* t) {
  const std::string what = "tensor " + Quote(name);
  if (v.kind != json::Value::Kind::kObject)
    return Bad(what + ": expected an object, got " + json::KindName(v.kind));
  const json::Value* dtype = v.get("dtype");
  const json::Value* shape = v.get("shape");
  const json::Value* offsets = v.get("data_offsets");
  if (dtype == nullptr) return Bad(what + ": no \"dtype\"");
  if (shape == nullptr) return Bad(what + ": no \"shape\"");
  if (offsets == nullptr) return Bad(what + ": no \"data_offsets\"");
  if (dtype->kind != json::Value::Kind::kString)
    return Bad(what + ": \"dtype\" is " + json::KindName(dtype->kind) + ", not a string");
  auto dt = ParseDType(dtype->text);
  if (!dt) return Bad(what + ": unknown dtype " + Quote(dtype->text));
  if (shape->kind != json::Value::Kind::kArray)
    return Bad(what + ": \"shape\" is " + json::KindName(shape->kind) + ", not an array");
  if (shape->items.size() > options.max_rank)
    return Bad(what + ": absurd shape: " + std::to_string(shape->items.size()) +
               " dimensions (at most " + std::to_string(options.max_rank) + ")");
  t->name = name;
  t->dtype = *dt;
  t->shape.clear();
  uint64_t elements = 1;
  bool overflow = false;
  for (const json::Value& d : shape->items) {
    uint64_t n;
    if (!json::ToUint64(d, &n))
      return Bad(what + ": shape entry " + (d.kind == json::Value::Kind::kNumber ? d.text : json::KindName(d.kind)) +
                 " is not a non-negative 64-bit integer");
    t->shape.push_back(n);
    if (n != 0 && elements > UINT64_MAX / n) overflow = true;
    else elements *= n;
  }
  // A zero dimension makes any product zero, overflow or not.
  if (std::find(t->shape.begin(), t->shape.end(), 0) != t->shape.end()) {
    elements = 0;
    overflow = false;
  }
  const uint64_t bits = DTypeBits(*dt);
  if (overflow || elements > UINT64_MAX / bits)
    return Bad(what + ": absurd shape: the element count overflows 64 bits");
  if (elements * bits % 8 != 0)
    return Bad(what + ": " + std::to_string(elements) + " elements of " + std::to_string(bits) +
               "-bit " + std::string(DTypeName(*dt)) + " do not fill whole bytes");
  t->elements = elements;
  const uint64_t nbytes = elements * bits / 8;
  if (offsets->kind != json::Value::Kind::kArray || offsets->items.size() != 2)
    return Bad(what + ": \"data_offsets\" must be an array [begin, end]");
  if (!json::ToUint64(offsets->items[0], &t->begin) || !json::ToUint64(offsets->items[1], &t->end))
    return Bad(what + ": \"data_offsets\" entries must be non-negative 64-bit integers");
  if (t->begin > t->end)
    return Bad(what + ": data_offsets [" + std::to_string(t->begin) + ", " + std::to_string(t->end) +
               "] out of order (begin after end)");
  if (t->end - t->begin != nbytes)
    return Bad(what + ": shape and dtype give " + std::to_string(nbytes) + " bytes (" +
               std::to_string(elements) + " x " + std::string(DTypeName(*dt)) +
               ") but data_offsets " + Range(t->begin, t->end) + " hold " +
               std::to_string(t->end - t->begin));
  return Status::OK();
}

}  // namespace

std::string_view DTypeName(DType dtype) {
  for (const auto& e : kDTypes)
    if (e.dtype == dtype) return e.name;
  return "?";
}

uint32_t DTypeBits(DType dtype) {
  for (const auto& e : kDTypes)
    if (e.dtype == dtype) return e.bits;
  return 8;
}

std::optional<DType> ParseDType(std::string_view name) {
  for (const auto& e : kDTypes)
    if (e.name == name) return e.dtype;
  return std::nullopt;
}

const Tensor* Header::find(std::string_view name) const {
  for (const auto& t : tensors)
    if (t.name == name) return &t;
  return nullptr;
}

Result<Header> Parse(std::span<const std::byte> file, const ParseOptions& options) {
  if (file.size() < 8)
    return Bad("truncated: " + std::to_string(file.size()) +
               " bytes, a file needs at least the 8-byte header length");
  uint64_t n = 0;
  for (int i = 7; i >= 0; --i) n = (n << 8) | static_cast<uint8_t>(file[static_cast<size_t>(i)]);
  if (n > file.size() - 8)
    return Bad("header length " + std::to_string(n) + " is larger than the file (" +
               std::to_string(file.size()) + " bytes: " + std::to_string(file.size() - 8) +
               " after the length)");
  if (n > options.max_header_length)
    return Bad("header length " + std::to_string(n) + " exceeds the limit of " +
               std::to_string(options.max_header_length) + " bytes");
  if (n < 2) return Bad("header length " + std::to_string(n) + " is too small for a JSON object");
  const std::string_view text(reinterpret_cast<const char*>(file.data()) + 8, static_cast<size_t>(n));
  if (text[0] != '{') return Bad("header does not start with '{' (not a safetensors file?)");
  auto doc = json::Parse(text);
  if (!doc.ok()) return Bad("header JSON: " + doc.status().message() + " of the header");
  if (doc->kind != json::Value::Kind::kObject) return Bad("header is not a JSON object");

  Header h;
  h.header_length = n;
  h.data_offset = 8 + n;
  const uint64_t data_size = file.size() - h.data_offset;
  std::unordered_set<std::string_view> seen;
  bool have_metadata = false;
  for (const auto& [key, value] : doc->members) {
    if (key == "__metadata__") {
      if (have_metadata) return Bad("\"__metadata__\" appears twice");
      have_metadata = true;
      if (value.kind != json::Value::Kind::kObject)
        return Bad("\"__metadata__\" is " + std::string(json::KindName(value.kind)) + ", not an object");
      for (const auto& [mk, mv] : value.members) {
        if (mv.kind != json::Value::Kind::kString)
          return Bad("\"__metadata__\" entry " + Quote(mk) + " is " + json::KindName(mv.kind) +
                     ", not a string");
        h.metadata.emplace_back(mk, mv.text);
      }
      continue;
    }
    Tensor t;
    DAXFS_RETURN_IF_ERROR(ParseTensor(key, value, options, &t));
    h.tensors.push_back(std::move(t));
  }
  for (const auto& t : h.tensors)
    if (!seen.insert(t.name).second) return Bad("tensor " + Quote(t.name) + " appears twice");

  for (const auto& t : h.tensors)
    if (t.end > data_size)
      return Bad("tensor " + Quote(t.name) + ": data_offsets " + Range(t.begin, t.end) +
                 " past the end of the data (" + std::to_string(data_size) + " bytes after the " +
                 std::to_string(h.data_offset) + "-byte header; file truncated?)");
  // The tensors must tile the data area: sorted by offset, each begins where
  // the previous one ended (zero-size tensors sit anywhere on that line).
  std::vector<const Tensor*> order;
  order.reserve(h.tensors.size());
  for (const auto& t : h.tensors) order.push_back(&t);
  std::stable_sort(order.begin(), order.end(), [](const Tensor* a, const Tensor* b) {
    return a->begin != b->begin ? a->begin < b->begin : a->end < b->end;
  });
  uint64_t covered = 0;
  const Tensor* prev = nullptr;
  for (const Tensor* t : order) {
    if (t->begin < covered)
      return Bad("tensors " + Quote(prev->name) + " " + Range(prev->begin, prev->end) + " and " +
                 Quote(t->name) + " " + Range(t->begin, t->end) + " overlap");
    if (t->begin > covered)
      return Bad("gap of " + std::to_string(t->begin - covered) + " bytes in the data before tensor " +
                 Quote(t->name) + " " + Range(t->begin, t->end));
    prev = t;
    covered = std::max(covered, t->end);
  }
  if (covered != data_size)
    return Bad("the tensors cover " + std::to_string(covered) + " bytes of data but the file holds " +
               std::to_string(data_size) + " after the header");
  for (auto& t : h.tensors) {
    t.file_offset = h.data_offset + t.begin;
    t.data = file.subspan(static_cast<size_t>(t.file_offset), static_cast<size_t>(t.end - t.begin));
  }
  return h;
}

Result<Header> ParseFile(const Image& image, std::string_view path, const ParseOptions& options) {
  DAXFS_ASSIGN_OR_RETURN(Ino ino, image.resolve(path));
  DAXFS_ASSIGN_OR_RETURN(Attr attr, image.stat(ino));
  if (!S_ISREG(attr.mode))
    return Status::InvalidArgument(std::string(path) + ": not a regular file");
  DAXFS_ASSIGN_OR_RETURN(auto bytes, image.contents(ino));
  auto h = Parse(bytes, options);
  if (!h.ok()) return h.status().WithContext(std::string(path));
  return h;
}

}  // namespace daxfs::safetensors
