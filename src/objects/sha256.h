// SHA-256 through OpenSSL's EVP interface: the strong hash that names
// objects (a collision would let one file's bytes stand in for another's).
#pragma once

#include <openssl/evp.h>

#include <array>
#include <cstddef>
#include <memory>
#include <span>
#include <string>

#include "daxfs/status.h"

namespace daxfs::objects {

using Digest = std::array<std::byte, 32>;

// EVP fails only when OpenSSL cannot allocate or is broken, never because
// of the data; such a failure is remembered and reported by Final(), so that
// no wrong digest is ever returned.
class Sha256 {
 public:
  Sha256();
  void Update(std::span<const std::byte> bytes);
  void UpdateZeros(uint64_t n);
  Result<Digest> Final();

 private:
  struct Free {
    void operator()(EVP_MD_CTX* c) const { EVP_MD_CTX_free(c); }
  };
  std::unique_ptr<EVP_MD_CTX, Free> ctx_;
  bool failed_ = false;
};

Result<Digest> HashBytes(std::span<const std::byte> bytes);

// 64 lowercase hex digits.
std::string DigestHex(const Digest& d);
// Where an object lives inside the object directory: "ab/cdef..." (the
// first byte names a subdirectory, as composefs and ostree do, so that no
// directory holds millions of entries).
std::string ObjectRelPath(const Digest& d);

}  // namespace daxfs::objects
