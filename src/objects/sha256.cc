#include "objects/sha256.h"

#include <cerrno>
#include <cstring>

namespace daxfs::objects {

Sha256::Sha256() : ctx_(EVP_MD_CTX_new()) {
  failed_ = !ctx_ || EVP_DigestInit_ex(ctx_.get(), EVP_sha256(), nullptr) != 1;
}

void Sha256::Update(std::span<const std::byte> bytes) {
  if (failed_ || bytes.empty()) return;
  failed_ = EVP_DigestUpdate(ctx_.get(), bytes.data(), bytes.size()) != 1;
}

void Sha256::UpdateZeros(uint64_t n) {
  static const std::byte kZeros[64 << 10] = {};
  while (n > 0) {
    const size_t k = n < sizeof kZeros ? static_cast<size_t>(n) : sizeof kZeros;
    Update({kZeros, k});
    n -= k;
  }
}

Result<Digest> Sha256::Final() {
  Digest d;
  unsigned len = 0;
  if (failed_ || EVP_DigestFinal_ex(ctx_.get(), reinterpret_cast<unsigned char*>(d.data()), &len) != 1 ||
      len != d.size()) {
    failed_ = true;
    return Status::IOError("SHA-256: OpenSSL's EVP digest failed (out of memory?)", ENOMEM);
  }
  return d;
}

Result<Digest> HashBytes(std::span<const std::byte> bytes) {
  Sha256 h;
  h.Update(bytes);
  return h.Final();
}

std::string DigestHex(const Digest& d) {
  static constexpr char kHex[] = "0123456789abcdef";
  std::string out;
  out.reserve(64);
  for (std::byte b : d) {
    out.push_back(kHex[std::to_integer<unsigned>(b) >> 4]);
    out.push_back(kHex[std::to_integer<unsigned>(b) & 15]);
  }
  return out;
}

std::string ObjectRelPath(const Digest& d) {
  std::string hex = DigestHex(d);
  return hex.substr(0, 2) + "/" + hex.substr(2);
}

}  // namespace daxfs::objects
