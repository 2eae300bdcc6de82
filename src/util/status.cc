#include "daxfs/status.h"

#include <cstring>

namespace daxfs {

Status Status::IOError(std::string msg, int err) {
  msg += ": ";
  msg += std::strerror(err);
  return Status(Code::kIOError, err, std::move(msg));
}

Status Status::FromErrno(int err, std::string msg) {
  switch (err) {
    case ENOENT: return NotFound(std::move(msg));
    case EINVAL: return InvalidArgument(std::move(msg));
    case EOPNOTSUPP: return NotSupported(std::move(msg));
    case ENOSPC: return NoSpace(std::move(msg));
    case EEXIST: return Exists(std::move(msg));
    case ENOTDIR: return NotDirectory(std::move(msg));
    case EISDIR: return IsDirectory(std::move(msg));
    case EBUSY: return Busy(std::move(msg));
    case ESTALE: return Stale(std::move(msg));
    case EUCLEAN: return Corruption(std::move(msg));
    case EACCES: case EPERM: return Status(Code::kPermission, err, std::move(msg));
    default: return Status(Code::kIOError, err, std::move(msg));
  }
}

const std::string& Status::message() const {
  static const std::string kEmpty;
  return state_ ? state_->msg : kEmpty;
}

std::string Status::ToString() const {
  if (!state_) return "OK";
  const char* kind = "";
  switch (state_->code) {
    case Code::kOk: kind = "OK"; break;
    case Code::kNotFound: kind = "Not found"; break;
    case Code::kCorruption: kind = "Corrupt image"; break;
    case Code::kInvalidArgument: kind = "Invalid argument"; break;
    case Code::kIOError: {
      // Errnos without a code of their own (EROFS, ENOTEMPTY, ENAMETOOLONG,
      // ...) are named by their own text, not as I/O errors.
      const int e = state_->err;
      if (e == 0 || e == EIO) {
        kind = "I/O error";
      } else {
        kind = std::strerror(e);
        if (state_->msg.find(kind) != std::string::npos) kind = "Error";
      }
      break;
    }
    case Code::kNotSupported: kind = "Not supported"; break;
    case Code::kNoSpace: kind = "No space"; break;
    case Code::kExists: kind = "Already exists"; break;
    case Code::kNotDirectory: kind = "Not a directory"; break;
    case Code::kIsDirectory: kind = "Is a directory"; break;
    case Code::kBusy: kind = "Busy"; break;
    case Code::kStale: kind = "Stale"; break;
    case Code::kPermission: kind = "Permission denied"; break;
  }
  return std::string(kind) + ": " + state_->msg;
}

Status Status::WithContext(const std::string& context) const {
  if (!state_) return Status();
  return Status(state_->code, state_->err, context + ": " + state_->msg);
}

}  // namespace daxfs
