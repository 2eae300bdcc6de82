// Status and Result<T>: how every libdaxfs call reports success or failure.
//
// A Status is cheap when OK (a null pointer) and carries an errno-style code
// plus a human-readable message when not, so the FUSE layer can answer a
// request with one fuse_reply_err(req, status.errno_value()).
#pragma once

#include <cerrno>
#include <memory>
#include <string>
#include <utility>
#include <variant>

#include "daxfs/export.h"

namespace daxfs {

class DAXFS_EXPORT Status {
 public:
  enum class Code : int {
    kOk = 0,
    kNotFound,         // ENOENT
    kCorruption,       // EUCLEAN: the image is malformed
    kInvalidArgument,  // EINVAL
    kIOError,          // errno from the OS
    kNotSupported,     // EOPNOTSUPP
    kNoSpace,          // ENOSPC / EFBIG
    kExists,           // EEXIST
    kNotDirectory,     // ENOTDIR
    kIsDirectory,      // EISDIR
    kBusy,             // EBUSY
    kStale,            // ESTALE
    kPermission,       // EACCES / EPERM
  };

  Status() = default;
  Status(const Status& other)
      : state_(other.state_ ? std::make_unique<State>(*other.state_) : nullptr) {}
  Status& operator=(const Status& other) {
    if (this != &other) state_ = other.state_ ? std::make_unique<State>(*other.state_) : nullptr;
    return *this;
  }
  Status(Status&&) noexcept = default;
  Status& operator=(Status&&) noexcept = default;

  static Status OK() { return Status(); }
  static Status NotFound(std::string msg) { return Status(Code::kNotFound, ENOENT, std::move(msg)); }
  static Status Corruption(std::string msg) { return Status(Code::kCorruption, EUCLEAN, std::move(msg)); }
  static Status InvalidArgument(std::string msg) { return Status(Code::kInvalidArgument, EINVAL, std::move(msg)); }
  static Status NotSupported(std::string msg) { return Status(Code::kNotSupported, EOPNOTSUPP, std::move(msg)); }
  static Status NoSpace(std::string msg) { return Status(Code::kNoSpace, ENOSPC, std::move(msg)); }
  static Status Exists(std::string msg) { return Status(Code::kExists, EEXIST, std::move(msg)); }
  static Status NotDirectory(std::string msg) { return Status(Code::kNotDirectory, ENOTDIR, std::move(msg)); }
  static Status IsDirectory(std::string msg) { return Status(Code::kIsDirectory, EISDIR, std::move(msg)); }
  static Status Busy(std::string msg) { return Status(Code::kBusy, EBUSY, std::move(msg)); }
  static Status Stale(std::string msg) { return Status(Code::kStale, ESTALE, std::move(msg)); }
  static Status Permission(std::string msg) { return Status(Code::kPermission, EACCES, std::move(msg)); }
  // An OS error: `err` is the errno value, the message says what was attempted.
  static Status IOError(std::string msg, int err);
  // Builds a status from an errno value, choosing the matching Code.
  static Status FromErrno(int err, std::string msg);

  bool ok() const { return state_ == nullptr; }
  Code code() const { return state_ ? state_->code : Code::kOk; }
  bool IsNotFound() const { return code() == Code::kNotFound; }
  bool IsCorruption() const { return code() == Code::kCorruption; }
  // Positive errno for the failure (0 when OK).
  int errno_value() const { return state_ ? state_->err : 0; }
  const std::string& message() const;
  // "Corruption: <message>" or "OK".
  std::string ToString() const;

  // Returns a copy whose message is prefixed with `context: `.
  Status WithContext(const std::string& context) const;

 private:
  struct State {
    Code code;
    int err;
    std::string msg;
  };
  Status(Code code, int err, std::string msg)
      : state_(std::make_unique<State>(State{code, err, std::move(msg)})) {}

  std::unique_ptr<State> state_;
};

// Either a value or a non-OK Status. A minimal stand-in for std::expected,
// which g++ 12 does not have.
template <typename T>
class [[nodiscard]] Result {
 public:
  Result(T value) : v_(std::move(value)) {}  // NOLINT: implicit by design
  Result(Status status) : v_(std::move(status)) {}  // NOLINT: implicit by design

  bool ok() const { return std::holds_alternative<T>(v_); }
  // OK when a value is held.
  const Status& status() const& {
    static const Status kOk;
    return ok() ? kOk : std::get<Status>(v_);
  }
  Status status() && { return ok() ? Status::OK() : std::get<Status>(std::move(v_)); }
  // REQUIRES: ok()
  T& value() & { return std::get<T>(v_); }
  const T& value() const& { return std::get<T>(v_); }
  T&& value() && { return std::get<T>(std::move(v_)); }
  T& operator*() & { return value(); }
  const T& operator*() const& { return value(); }
  T* operator->() { return &value(); }
  const T* operator->() const { return &value(); }

 private:
  std::variant<T, Status> v_;
};

}  // namespace daxfs

// Early-return helpers for code that propagates errors.
#define DAXFS_RETURN_IF_ERROR(expr)              \
  do {                                           \
    ::daxfs::Status _daxfs_st = (expr);          \
    if (!_daxfs_st.ok()) return _daxfs_st;       \
  } while (0)

#define DAXFS_CONCAT_INNER(a, b) a##b
#define DAXFS_CONCAT(a, b) DAXFS_CONCAT_INNER(a, b)
#define DAXFS_ASSIGN_OR_RETURN(lhs, expr) \
  DAXFS_ASSIGN_OR_RETURN_IMPL(DAXFS_CONCAT(_daxfs_r, __LINE__), lhs, expr)
#define DAXFS_ASSIGN_OR_RETURN_IMPL(tmp, lhs, expr) \
  auto tmp = (expr);                                \
  if (!tmp.ok()) return std::move(tmp).status();    \
  lhs = std::move(tmp).value()
