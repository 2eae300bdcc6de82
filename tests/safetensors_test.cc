// The safetensors parser (daxfs/safetensors.h) and its JSON reader: valid
// files of every dtype, then every kind of malformed header, each of which
// must be a Corruption status with a message naming the problem. The fuzz
// corpus and regressions (fuzz/corpus_safetensors, fuzz/regressions_safetensors)
// are replayed too.
#include "daxfs/safetensors.h"

#include <gtest/gtest.h>

#include <cstring>
#include <filesystem>
#include <string>
#include <vector>

#include "daxfs/prefetch.h"
#include "daxfs/builder.h"
#include "safetensors/json.h"
#include "test_util.h"

namespace daxfs::safetensors {
namespace {

std::vector<std::byte> File(const std::string& header, const std::string& data = "",
                            int64_t forged_length = -1) {
  const uint64_t n = forged_length < 0 ? header.size() : static_cast<uint64_t>(forged_length);
  std::vector<std::byte> out(8);
  for (int i = 0; i < 8; ++i) out[static_cast<size_t>(i)] = static_cast<std::byte>((n >> (8 * i)) & 0xff);
  for (char c : header) out.push_back(static_cast<std::byte>(c));
  for (char c : data) out.push_back(static_cast<std::byte>(c));
  return out;
}

// Expects a Corruption whose message contains `needle`.
void ExpectBad(const std::vector<std::byte>& file, const std::string& needle) {
  auto r = Parse(file);
  ASSERT_FALSE(r.ok()) << "accepted; expected: " << needle;
  EXPECT_TRUE(r.status().IsCorruption()) << r.status().ToString();
  EXPECT_NE(r.status().message().find(needle), std::string::npos)
      << "message: " << r.status().message() << "\nexpected to contain: " << needle;
}

TEST(Safetensors, ParsesTensorsMetadataAndSpans) {
  const std::string header =
      R"({"__metadata__":{"format":"pt","k":"v\u00e9"},)"
      R"("b":{"dtype":"F32","shape":[2,2],"data_offsets":[4,20]},)"
      R"("a":{"dtype":"I16","shape":[2],"data_offsets":[0,4]},)"
      R"("s":{"dtype":"F64","shape":[],"data_offsets":[20,28]},)"
      R"("e":{"dtype":"BF16","shape":[0,7],"data_offsets":[28,28],"extra":[1,{"x":null}]}}   )";
  std::string data(28, '\0');
  for (size_t i = 0; i < data.size(); ++i) data[i] = static_cast<char>(i);
  auto f = File(header, data);
  auto h = Parse(f);
  ASSERT_TRUE(h.ok()) << h.status().ToString();
  EXPECT_EQ(h->header_length, header.size());
  EXPECT_EQ(h->data_offset, 8 + header.size());
  ASSERT_EQ(h->tensors.size(), 4u);
  EXPECT_EQ(h->tensors[0].name, "b");  // header order
  EXPECT_EQ(h->tensors[0].dtype, DType::kF32);
  EXPECT_EQ(h->tensors[0].shape, (std::vector<uint64_t>{2, 2}));
  EXPECT_EQ(h->tensors[0].elements, 4u);
  EXPECT_EQ(h->tensors[0].data.data(), f.data() + h->data_offset + 4);
  EXPECT_EQ(h->tensors[0].data.size(), 16u);
  const Tensor* s = h->find("s");
  ASSERT_NE(s, nullptr);
  EXPECT_TRUE(s->shape.empty());
  EXPECT_EQ(s->elements, 1u);
  EXPECT_EQ(s->file_offset, h->data_offset + 20);
  EXPECT_EQ(h->find("e")->elements, 0u);
  EXPECT_EQ(h->find("nope"), nullptr);
  ASSERT_EQ(h->metadata.size(), 2u);
  EXPECT_EQ(h->metadata[1].second, "v\xc3\xa9");
}

TEST(Safetensors, EveryDType) {
  const std::pair<const char*, uint32_t> kAll[] = {
      {"BOOL", 8}, {"U8", 8}, {"I8", 8}, {"F8_E5M2", 8}, {"F8_E4M3", 8}, {"F8_E8M0", 8},
      {"I16", 16}, {"U16", 16}, {"F16", 16}, {"BF16", 16}, {"I32", 32}, {"U32", 32},
      {"F32", 32}, {"C64", 64}, {"F64", 64}, {"I64", 64}, {"U64", 64}, {"F4", 4},
      {"F6_E2M3", 6}, {"F6_E3M2", 6}};
  for (const auto& [name, bits] : kAll) {
    auto dt = ParseDType(name);
    ASSERT_TRUE(dt.has_value()) << name;
    EXPECT_EQ(DTypeName(*dt), name);
    EXPECT_EQ(DTypeBits(*dt), bits);
    // 8 elements: whole bytes for every dtype.
    const uint64_t n = 8 * bits / 8;
    auto f = File(std::string(R"({"t":{"dtype":")") + name + R"(","shape":[2,4],"data_offsets":[0,)" +
                      std::to_string(n) + "]}}",
                  std::string(n, 'x'));
    auto h = Parse(f);
    ASSERT_TRUE(h.ok()) << name << ": " << h.status().ToString();
    EXPECT_EQ(h->tensors[0].data.size(), n);
  }
  EXPECT_FALSE(ParseDType("F128").has_value());
  ExpectBad(File(R"({"t":{"dtype":"F4","shape":[3],"data_offsets":[0,1]}})", "x"),
            "do not fill whole bytes");
}

TEST(Safetensors, EmptyAndMinimal) {
  auto h = Parse(File("{}"));
  ASSERT_TRUE(h.ok()) << h.status().ToString();
  EXPECT_TRUE(h->tensors.empty());
  h = Parse(File("{ }       "));
  ASSERT_TRUE(h.ok()) << h.status().ToString();
}

TEST(Safetensors, Truncated) {
  ExpectBad({}, "truncated: 0 bytes");
  ExpectBad(std::vector<std::byte>(5), "truncated: 5 bytes");
  // Header cut short.
  auto f = File(R"({"t":{"dtype":"U8","shape":[1],"data_offsets":[0,1]}})", "x");
  f.resize(30);
  ExpectBad(f, "larger than the file");
  // Data cut short.
  ExpectBad(File(R"({"t":{"dtype":"U8","shape":[4],"data_offsets":[0,4]}})", "xy"),
            "past the end of the data");
  ExpectBad(File(R"({"t":{"dtype":"U8","shape":[4],"data_offsets":[0,4]})"), "header JSON");
}

TEST(Safetensors, HeaderLength) {
  ExpectBad(File("{}", "", 1000), "header length 1000 is larger than the file (10 bytes");
  auto huge = File("{}");
  for (size_t i = 0; i < 8; ++i) huge[i] = std::byte{0xff};  // 2^64 - 1
  ExpectBad(huge, "header length 18446744073709551615 is larger than the file");
  ExpectBad(File("{}", "", 0), "too small");
  ParseOptions o;
  o.max_header_length = 4;
  auto r = Parse(File("{ }  "), o);
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.status().message().find("exceeds the limit"), std::string::npos);
}

TEST(Safetensors, OffsetsPastEnd) {
  ExpectBad(File(R"({"t":{"dtype":"U8","shape":[2],"data_offsets":[18446744073709551614,18446744073709551616]}})"),
            "non-negative 64-bit integers");
  ExpectBad(File(R"({"t":{"dtype":"U8","shape":[2],"data_offsets":[100,102]}})", "xx"),
            "past the end of the data (2 bytes");
}

TEST(Safetensors, OverlapGapOrderAndCoverage) {
  ExpectBad(File(R"({"a":{"dtype":"U8","shape":[4],"data_offsets":[0,4]},)"
                 R"("b":{"dtype":"U8","shape":[4],"data_offsets":[2,6]}})", "xxxxxx"),
            "tensors 'a' [0, 4) and 'b' [2, 6) overlap");
  ExpectBad(File(R"({"a":{"dtype":"U8","shape":[4],"data_offsets":[0,4]},)"
                 R"("b":{"dtype":"U8","shape":[4],"data_offsets":[0,4]}})", "xxxx"),
            "overlap");
  ExpectBad(File(R"({"a":{"dtype":"U8","shape":[2],"data_offsets":[0,2]},)"
                 R"("b":{"dtype":"U8","shape":[2],"data_offsets":[4,6]}})", "xxxxxx"),
            "gap of 2 bytes");
  ExpectBad(File(R"({"a":{"dtype":"U8","shape":[2],"data_offsets":[2,4]}})", "xxxx"), "gap of 2 bytes");
  ExpectBad(File(R"({"a":{"dtype":"U8","shape":[0],"data_offsets":[4,2]}})", "xxxx"),
            "out of order");
  ExpectBad(File(R"({"a":{"dtype":"U8","shape":[2],"data_offsets":[0,2]}})", "xxxx"),
            "cover 2 bytes of data but the file holds 4");
  // Header order need not be offset order (the reference accepts this too).
  auto ok = Parse(File(R"({"b":{"dtype":"U8","shape":[2],"data_offsets":[2,4]},)"
                       R"("a":{"dtype":"U8","shape":[2],"data_offsets":[0,2]}})", "xxxx"));
  EXPECT_TRUE(ok.ok()) << ok.status().ToString();
}

TEST(Safetensors, ShapesAndSizes) {
  ExpectBad(File(R"({"a":{"dtype":"F32","shape":[4294967296,4294967296],"data_offsets":[0,4]}})", "xxxx"),
            "absurd shape: the element count overflows");
  ExpectBad(File(R"({"a":{"dtype":"F64","shape":[4611686018427387904],"data_offsets":[0,4]}})", "xxxx"),
            "absurd shape");
  std::string deep = R"({"a":{"dtype":"U8","shape":[)";
  for (int i = 0; i < 65; ++i) deep += i ? ",1" : "1";
  ExpectBad(File(deep + R"(],"data_offsets":[0,1]}})", "x"), "65 dimensions");
  ExpectBad(File(R"({"a":{"dtype":"F32","shape":[3],"data_offsets":[0,8]}})", "xxxxxxxx"),
            "shape and dtype give 12 bytes (3 x F32) but data_offsets [0, 8) hold 8");
  ExpectBad(File(R"({"a":{"dtype":"F32","shape":[-1],"data_offsets":[0,4]}})", "xxxx"), "shape entry -1");
  ExpectBad(File(R"({"a":{"dtype":"F32","shape":[1.5],"data_offsets":[0,4]}})", "xxxx"), "shape entry 1.5");
  ExpectBad(File(R"({"a":{"dtype":"F32","shape":["1"],"data_offsets":[0,4]}})", "xxxx"), "shape entry a string");
  // A zero dimension makes overflowing others harmless.
  EXPECT_TRUE(Parse(File(R"({"a":{"dtype":"F32","shape":[0,18446744073709551615,3],"data_offsets":[0,0]}})")).ok());
}

TEST(Safetensors, SchemaErrors) {
  ExpectBad(File(R"({"a":{"shape":[1],"data_offsets":[0,1]}})", "x"), "no \"dtype\"");
  ExpectBad(File(R"({"a":{"dtype":"U8","data_offsets":[0,1]}})", "x"), "no \"shape\"");
  ExpectBad(File(R"({"a":{"dtype":"U8","shape":[1]}})", "x"), "no \"data_offsets\"");
  ExpectBad(File(R"({"a":{"dtype":"Q8","shape":[1],"data_offsets":[0,1]}})", "x"), "unknown dtype 'Q8'");
  ExpectBad(File(R"({"a":{"dtype":8,"shape":[1],"data_offsets":[0,1]}})", "x"), "not a string");
  ExpectBad(File(R"({"a":{"dtype":"U8","shape":1,"data_offsets":[0,1]}})", "x"), "not an array");
  ExpectBad(File(R"({"a":{"dtype":"U8","shape":[1],"data_offsets":[0]}})", "x"), "[begin, end]");
  ExpectBad(File(R"({"a":[1]})"), "expected an object, got an array");
  ExpectBad(File(R"({"__metadata__":{"k":1}})"), "entry 'k' is a number, not a string");
  ExpectBad(File(R"({"__metadata__":[]})"), "not an object");
  ExpectBad(File(R"({"a":{"dtype":"U8","shape":[1],"data_offsets":[0,1]},)"
                 R"("a":{"dtype":"U8","shape":[1],"data_offsets":[1,2]}})", "xx"),
            "tensor 'a' appears twice");
  ExpectBad(File("[1]"), "does not start with '{'");
  ExpectBad(File("\x89PNG\r\n\x1a\n...."), "does not start with '{'");
}

TEST(Safetensors, JsonSyntaxAndUtf8) {
  ExpectBad(File("{\"a\xff\":1}"), "invalid UTF-8 at byte 3");
  ExpectBad(File("{\"\xc0\xaf\":1}"), "invalid UTF-8");        // overlong '/'
  ExpectBad(File("{\"\xed\xa0\x80\":1}"), "invalid UTF-8");    // encoded surrogate
  ExpectBad(File(R"({"\ud800":1})"), "lone high surrogate");
  ExpectBad(File(R"({"\udc00":1})"), "lone low surrogate");
  ExpectBad(File("{\"a\nb\":1}"), "control character");
  ExpectBad(File(R"({"a":01})"), "leading zero");
  ExpectBad(File(R"({"a":1,})"), "expected a string key");
  ExpectBad(File(R"({"a":1} x)"), "after the JSON value");
  ExpectBad(File(R"({"a":tru})"), "invalid literal");
  ExpectBad(File(R"({"a":"\q"})"), "invalid escape");
  std::string deep = "{\"a\":";
  for (int i = 0; i < 200; ++i) deep += "[";
  ExpectBad(File(deep), "nested deeper than 64");
  // Escapes decode: a name with an escaped quote and a 4-byte character.
  auto h = Parse(File(R"({"q\"\ud83d\ude00":{"dtype":"U8","shape":[1],"data_offsets":[0,1]}})", "x"));
  ASSERT_TRUE(h.ok()) << h.status().ToString();
  EXPECT_EQ(h->tensors[0].name, "q\"\xf0\x9f\x98\x80");
}

TEST(Safetensors, MessagesAreBoundedAndPrintable) {
  const std::string name = "a\x01" + std::string(1000, 'n');
  auto r = Parse(File("{\"" + std::string("a\\u0001") + std::string(1000, 'n') +
                      R"(":{"dtype":"Q","shape":[],"data_offsets":[0,0]}})"));
  ASSERT_FALSE(r.ok());
  EXPECT_LT(r.status().message().size(), 400u);
  EXPECT_NE(r.status().message().find("a\\x01nnn"), std::string::npos) << r.status().message();
}

TEST(Safetensors, JsonToUint64) {
  auto v = json::Parse("[0, 18446744073709551615, 18446744073709551616, 1e3, -0]");
  ASSERT_TRUE(v.ok());
  uint64_t x = 7;
  EXPECT_TRUE(json::ToUint64(v->items[0], &x));
  EXPECT_EQ(x, 0u);
  EXPECT_TRUE(json::ToUint64(v->items[1], &x));
  EXPECT_EQ(x, UINT64_MAX);
  EXPECT_FALSE(json::ToUint64(v->items[2], &x));
  EXPECT_FALSE(json::ToUint64(v->items[3], &x));
  EXPECT_FALSE(json::ToUint64(v->items[4], &x));
}

// A safetensors file inside an image: spans point into the mapping, a data
// area of 4 KiB or more starts page-aligned in the file, and prefetch works.
TEST(Safetensors, InsideAnImage) {
  testing::TempDir dir;
  std::filesystem::create_directories(dir / "src/m");
  const std::string header = R"({"w":{"dtype":"F32","shape":[2048],"data_offsets":[0,8192]}})";
  std::string data(8192, '\0');
  for (size_t i = 0; i < data.size(); ++i) data[i] = static_cast<char>(i * 7);
  auto f = File(header, data);
  testing::WriteFile(dir / "src/m/x.safetensors",
                     std::string(reinterpret_cast<const char*>(f.data()), f.size()));
  testing::WriteFile(dir / "src/small", "tiny");
  BuildOptions o;
  ASSERT_DAXFS_OK(BuildFromDirectory(dir / "src", dir / "img", o).status());
  auto image = testing::OpenOrDie(dir / "img");
  auto h = ParseFile(*image, "/m/x.safetensors");
  ASSERT_TRUE(h.ok()) << h.status().ToString();
  const auto region = image->region().bytes();
  const auto& t = h->tensors[0];
  EXPECT_GE(t.data.data(), region.data());
  EXPECT_LE(t.data.data() + t.data.size(), region.data() + region.size());
  EXPECT_EQ(reinterpret_cast<uintptr_t>(t.data.data()) % 4096, (8 + header.size()) % 4096);
  EXPECT_EQ(std::memcmp(t.data.data(), data.data(), data.size()), 0);
  ASSERT_DAXFS_OK(Prefetch(*image, *image->resolve("/m/x.safetensors")));
  ASSERT_DAXFS_OK(Prefetch(*image, *image->resolve("/small"), PrefetchMode::kWillNeed));
  ASSERT_DAXFS_OK(Prefetch(image->region(), region.subspan(1, 5)));
  EXPECT_FALSE(Prefetch(image->region(),
                        std::span<const std::byte>(reinterpret_cast<const std::byte*>(data.data()), 10)).ok());
  EXPECT_FALSE(Prefetch(*image, image->root()).ok());  // a directory

  auto bad = ParseFile(*image, "/small");
  ASSERT_FALSE(bad.ok());
  EXPECT_NE(bad.status().message().find("/small: safetensors: truncated"), std::string::npos)
      << bad.status().message();
  EXPECT_TRUE(ParseFile(*image, "/nope").status().IsNotFound());
  EXPECT_FALSE(ParseFile(*image, "/m").ok());
}

// Replays the fuzz corpus and any regression inputs: no crash, and an
// accepted file's spans lie inside it.
TEST(Safetensors, FuzzCorpusAndRegressions) {
  size_t files = 0;
  for (const char* sub : {"fuzz/corpus_safetensors", "fuzz/regressions_safetensors"}) {
    const std::filesystem::path d = std::filesystem::path(DAXFS_SOURCE_DIR) / sub;
    if (!std::filesystem::exists(d)) continue;
    for (const auto& e : std::filesystem::directory_iterator(d)) {
      if (!e.is_regular_file() || e.path().filename().string()[0] == '.') continue;
      auto bytes = testing::ReadBytes(e.path());
      auto h = Parse(bytes);
      ++files;
      if (!h.ok()) continue;
      for (const auto& t : h->tensors) {
        EXPECT_GE(t.data.data(), bytes.data());
        EXPECT_LE(t.data.data() + t.data.size(), bytes.data() + bytes.size());
      }
    }
  }
  EXPECT_GT(files, 0u);
}

}  // namespace
}  // namespace daxfs::safetensors
