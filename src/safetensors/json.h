// A small strict JSON parser (RFC 8259) for safetensors headers: the input
// must be valid UTF-8, strings may not hold raw control characters or lone
// surrogates, nesting is bounded, numbers are kept as their text (callers
// convert what they need). Errors name the byte offset.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "daxfs/status.h"

namespace daxfs::json {

struct Value {
  struct Member;
  enum class Kind : uint8_t { kNull, kBool, kNumber, kString, kArray, kObject };
  Kind kind = Kind::kNull;
  bool boolean = false;
  size_t offset = 0;   // where the value starts in the input
  std::string text;    // kString: decoded UTF-8; kNumber: the literal
  std::vector<Value> items;                            // kArray
  std::vector<Member> members;  // kObject, in input order

  // The member named `key` of an object, or nullptr.
  const Value* get(std::string_view key) const;
};

struct Value::Member {
  std::string key;
  Value value;
};

const char* KindName(Value::Kind kind);

// Offset of the first byte that is not valid UTF-8, or -1 when all is.
int64_t FirstInvalidUtf8(std::string_view s);

// Parses `text` as one JSON value, surrounded by optional whitespace.
// Errors are InvalidArgument("... at byte N").
Result<Value> Parse(std::string_view text, size_t max_depth = 64);

// A non-negative integer literal (no sign, fraction or exponent) that fits
// in 64 bits.
bool ToUint64(const Value& v, uint64_t* out);

}  // namespace daxfs::json
